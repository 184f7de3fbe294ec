#include "kernel_timing.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace kiln::rt::cuda {

namespace {

struct Totals {
  long calls = 0;
  double ms = 0;
};

std::mutex mu;
std::map<CUfunction, std::string> names;
std::map<std::string, Totals> totals;

const char *timingPath() {
  static const char *path = [] {
    const char *p = std::getenv("KILN_CUDA_KERNEL_TIMES");
    return p && *p ? p : nullptr;
  }();
  return path;
}

} // namespace

bool kernelTimingOn() {
  return timingPath() != nullptr;
}

void timingRegister(CUfunction f, const char *name) {
  std::lock_guard<std::mutex> l(mu);
  names[f] = name;
}

CUresult timedLaunch(const Driver &d, CUfunction f, uint32_t gx, uint32_t gy, uint32_t gz,
                     uint32_t bx, uint32_t by, uint32_t bz, uint32_t shared, CUstream stream,
                     void **args) {
  CUevent start = nullptr, end = nullptr;
  CUresult r = d.cuEventCreate(&start, CU_EVENT_DEFAULT);
  if (r == CUDA_SUCCESS) r = d.cuEventCreate(&end, CU_EVENT_DEFAULT);
  if (r == CUDA_SUCCESS) r = d.cuEventRecord(start, stream);
  if (r == CUDA_SUCCESS)
    r = d.cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, args, nullptr);
  if (r == CUDA_SUCCESS) r = d.cuEventRecord(end, stream);
  if (r == CUDA_SUCCESS) r = d.cuEventSynchronize(end);
  float ms = 0;
  if (r == CUDA_SUCCESS) r = d.cuEventElapsedTime(&ms, start, end);
  if (start) d.cuEventDestroy(start);
  if (end) d.cuEventDestroy(end);
  if (r == CUDA_SUCCESS) {
    std::lock_guard<std::mutex> l(mu);
    auto it = names.find(f);
    Totals &t = totals[it != names.end() ? it->second : "unnamed"];
    ++t.calls;
    t.ms += ms;
  }
  return r;
}

void timingFlush() {
  const char *path = timingPath();
  if (!path) return;
  std::lock_guard<std::mutex> l(mu);
  if (FILE *f = std::fopen(path, "w")) {
    std::fprintf(f, "{\"kernels\": {");
    const char *sep = "";
    for (auto &[name, t] : totals) { // kernel names are C identifiers: no escaping needed
      std::fprintf(f, "%s\n \"%s\": {\"calls\": %ld, \"ms\": %.6f}", sep, name.c_str(), t.calls,
                   t.ms);
      sep = ",";
    }
    std::fprintf(f, "\n}}\n");
    std::fclose(f);
  }
  totals.clear();
}

} // namespace kiln::rt::cuda
