// A mock CUDA driver: exports cuGetProcAddress_v2 and hands out host-side fakes that count
// what they are asked to do (see mock_driver.h). Just enough for the plugin and the fake
// CUDA model (tests/gpu/fake_cuda_model).
#include "mock_driver.h"

#include <cuda.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

std::mutex mu;
std::condition_variable cv;
kiln_mock_stats counters{};
kiln_mock_launch lastLaunch{};
bool haveLaunch = false;
bool autoComplete = true;
// One primary context per device: a context's address says which device it belongs to.
int contextDummy[KILN_MOCK_MAX_DEVICES], deviceCount = 1;

// Each thread's context stack, as the driver keeps it: calls that need a context fail with
// CUDA_ERROR_INVALID_CONTEXT on a thread with none current (the plugin must push its own).
thread_local std::vector<CUcontext> contexts;
#define NEED_CONTEXT()                                                                             \
  if (contexts.empty() || !contexts.back()) return CUDA_ERROR_INVALID_CONTEXT

struct Event {
  bool pending = false;
  size_t launchesBefore = 0; // launches recorded when the event was recorded
};
std::vector<Event *> events;
std::vector<double> launchMs; // per launch: its time under the time model

// KILN_MOCK_TIME_MODEL=1: elapsed times between events are the sum of the launches' modelled
// times, a launch of G blocks of B threads taking B/128 + 2*G microseconds (a larger block
// costs more to start but needs fewer blocks). Small grids then favour 128 threads, large
// ones 512, so autotune on the mock finds per-size winners. Else every elapsed time is 1 us.
bool timeModel() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_MOCK_TIME_MODEL");
    return v && std::strcmp(v, "1") == 0;
  }();
  return on;
}
double modelledMs(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
  return 0.001 * (double(bx) * by * bz / 128 + 2.0 * gx * gy * gz);
}

struct Function {
  std::string name;
};
struct Module {
  std::vector<Function *> functions;
};

#define MOCK_API extern "C" __attribute__((visibility("default")))

CUresult mInit(unsigned) {
  return CUDA_SUCCESS;
}
CUresult mGetErrorString(CUresult r, const char **s) {
  *s = r == CUDA_ERROR_NOT_READY ? "mock: not ready" : "mock error";
  return CUDA_SUCCESS;
}
CUresult mDeviceGetCount(int *n) {
  *n = deviceCount;
  return CUDA_SUCCESS;
}
CUresult mDeviceGet(CUdevice *d, int ordinal) {
  *d = ordinal;
  return ordinal >= 0 && ordinal < deviceCount ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}
CUresult mPrimaryCtxRetain(CUcontext *c, CUdevice d) {
  if (d < 0 || d >= deviceCount) return CUDA_ERROR_INVALID_DEVICE;
  *c = reinterpret_cast<CUcontext>(&contextDummy[d]);
  return CUDA_SUCCESS;
}
// The device of the calling thread's current context (-1: none or not a primary context).
int currentDevice() {
  if (contexts.empty()) return -1;
  auto *p = reinterpret_cast<int *>(contexts.back());
  return p >= contextDummy && p < contextDummy + KILN_MOCK_MAX_DEVICES
             ? static_cast<int>(p - contextDummy)
             : -1;
}
CUresult mCtxPush(CUcontext c) {
  contexts.push_back(c);
  std::lock_guard<std::mutex> l(mu);
  ++counters.ctx_pushes;
  return CUDA_SUCCESS;
}
CUresult mCtxPop(CUcontext *c) {
  if (contexts.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (c) *c = contexts.back();
  contexts.pop_back();
  std::lock_guard<std::mutex> l(mu);
  ++counters.ctx_pops;
  return CUDA_SUCCESS;
}
CUresult mModuleLoadData(CUmodule *m, const void *image) {
  NEED_CONTEXT();
  std::lock_guard<std::mutex> l(mu);
  ++counters.module_loads;
  *m = reinterpret_cast<CUmodule>(new Module());
  return image ? CUDA_SUCCESS : CUDA_ERROR_INVALID_IMAGE;
}
CUresult mModuleGetFunction(CUfunction *f, CUmodule m, const char *name) {
  auto *mod = reinterpret_cast<Module *>(m);
  if (std::strncmp(name, "kiln_", 5) != 0) return CUDA_ERROR_NOT_FOUND;
  mod->functions.push_back(new Function{name});
  *f = reinterpret_cast<CUfunction>(mod->functions.back());
  return CUDA_SUCCESS;
}
CUresult mModuleUnload(CUmodule m) {
  auto *mod = reinterpret_cast<Module *>(m);
  std::lock_guard<std::mutex> l(mu);
  ++counters.module_unloads;
  for (Function *f : mod->functions)
    delete f;
  delete mod;
  return CUDA_SUCCESS;
}
CUresult mMemAlloc(CUdeviceptr *p, size_t bytes) {
  NEED_CONTEXT();
  void *mem = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!mem) return CUDA_ERROR_OUT_OF_MEMORY;
  int dev = currentDevice();
  std::lock_guard<std::mutex> l(mu);
  ++counters.allocs;
  ++counters.live_allocs;
  if (dev >= 0) ++counters.allocs_on[dev];
  *p = reinterpret_cast<CUdeviceptr>(mem);
  return CUDA_SUCCESS;
}
CUresult mMemFree(CUdeviceptr p) {
  NEED_CONTEXT();
  std::free(reinterpret_cast<void *>(p));
  std::lock_guard<std::mutex> l(mu);
  ++counters.frees;
  --counters.live_allocs;
  return CUDA_SUCCESS;
}
CUresult mHtoD(CUdeviceptr d, const void *s, size_t n, CUstream) {
  NEED_CONTEXT();
  std::memcpy(reinterpret_cast<void *>(d), s, n);
  return CUDA_SUCCESS;
}
CUresult mDtoH(void *d, CUdeviceptr s, size_t n, CUstream) {
  NEED_CONTEXT();
  std::memcpy(d, reinterpret_cast<void *>(s), n);
  return CUDA_SUCCESS;
}
CUresult mDtoD(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream) {
  NEED_CONTEXT();
  std::memmove(reinterpret_cast<void *>(d), reinterpret_cast<void *>(s), n);
  return CUDA_SUCCESS;
}
CUresult mMemsetD8(CUdeviceptr d, unsigned char v, size_t n, CUstream) {
  NEED_CONTEXT();
  std::memset(reinterpret_cast<void *>(d), v, n);
  return CUDA_SUCCESS;
}
CUresult mStreamCreate(CUstream *s, unsigned) {
  NEED_CONTEXT();
  *s = reinterpret_cast<CUstream>(new int(0));
  return CUDA_SUCCESS;
}
CUresult mStreamDestroy(CUstream s) {
  delete reinterpret_cast<int *>(s);
  return CUDA_SUCCESS;
}
CUresult mStreamSynchronize(CUstream) {
  std::lock_guard<std::mutex> l(mu);
  ++counters.syncs;
  return CUDA_SUCCESS;
}
CUresult mStreamWaitEvent(CUstream, CUevent, unsigned) {
  NEED_CONTEXT();
  std::lock_guard<std::mutex> l(mu);
  ++counters.stream_waits;
  return CUDA_SUCCESS;
}
CUresult mEventCreate(CUevent *e, unsigned) {
  NEED_CONTEXT();
  std::lock_guard<std::mutex> l(mu);
  events.push_back(new Event());
  *e = reinterpret_cast<CUevent>(events.back());
  return CUDA_SUCCESS;
}
CUresult mEventDestroy(CUevent e) {
  std::lock_guard<std::mutex> l(mu);
  auto *ev = reinterpret_cast<Event *>(e);
  events.erase(std::remove(events.begin(), events.end(), ev), events.end());
  delete ev;
  return CUDA_SUCCESS;
}
CUresult mEventRecord(CUevent e, CUstream) {
  NEED_CONTEXT();
  std::lock_guard<std::mutex> l(mu);
  ++counters.event_records;
  reinterpret_cast<Event *>(e)->pending = !autoComplete;
  reinterpret_cast<Event *>(e)->launchesBefore = launchMs.size();
  return CUDA_SUCCESS;
}
CUresult mEventQuery(CUevent e) {
  std::lock_guard<std::mutex> l(mu);
  ++counters.event_queries;
  return reinterpret_cast<Event *>(e)->pending ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}
CUresult mEventElapsedTime(float *ms, CUevent start, CUevent end) {
  *ms = 0.001f; // host "kernels" take no GPU time
  if (!timeModel()) return CUDA_SUCCESS;
  std::lock_guard<std::mutex> l(mu);
  double sum = 0;
  for (size_t i = reinterpret_cast<Event *>(start)->launchesBefore;
       i < reinterpret_cast<Event *>(end)->launchesBefore && i < launchMs.size(); ++i)
    sum += launchMs[i];
  *ms = static_cast<float>(sum);
  return CUDA_SUCCESS;
}
CUresult mEventSynchronize(CUevent e) {
  std::unique_lock<std::mutex> l(mu);
  ++counters.syncs;
  auto *ev = reinterpret_cast<Event *>(e);
  cv.wait(l, [&] { return !ev->pending; });
  return CUDA_SUCCESS;
}

// The fake model's kernel, run on the host: y[i] = 2 x[i] + w[i % 256].
void runScaleAdd(void **args) {
  auto *x = *static_cast<const float **>(args[0]);
  auto *w = *static_cast<const float **>(args[1]);
  auto *y = *static_cast<float **>(args[2]);
  int64_t n = *static_cast<int64_t *>(args[3]);
  for (int64_t i = 0; i < n; ++i)
    y[i] = 2.0f * x[i] + w[i % 256];
}

CUresult mLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned shared, CUstream s, void **args,
                       void **extra) {
  NEED_CONTEXT();
  auto *fn = reinterpret_cast<Function *>(f);
  {
    std::lock_guard<std::mutex> l(mu);
    ++counters.launches;
    launchMs.push_back(timeModel() ? modelledMs(gx, gy, gz, bx, by, bz) : 0.0);
    kiln_mock_launch &L = lastLaunch;
    std::snprintf(L.name, sizeof L.name, "%s", fn->name.c_str());
    L.grid[0] = gx, L.grid[1] = gy, L.grid[2] = gz;
    L.block[0] = bx, L.block[1] = by, L.block[2] = bz;
    L.shared_bytes = shared;
    L.stream = s;
    L.device = currentDevice();
    // Only the fake kernel is known to take four 8-byte arguments; a compiled model's kernel
    // may take fewer (reading past its args[] would be out of bounds).
    bool fake = fn->name == "kiln_fake_scale_add";
    for (int i = 0; i < 4; ++i)
      if (fake)
        std::memcpy(&L.args[i], args[i], 8);
      else
        L.args[i] = 0;
    haveLaunch = true;
    // KILN_MOCK_LAUNCH_LOG=<file>: one line per launch, "name gx gy gz bx by bz shared"
    // (tests of compiled models check which kernel ran with which grid).
    if (const char *log = std::getenv("KILN_MOCK_LAUNCH_LOG"); log && *log)
      if (std::FILE *out = std::fopen(log, "a")) {
        std::fprintf(out, "%s %u %u %u %u %u %u %u\n", fn->name.c_str(), gx, gy, gz, bx, by, bz,
                     shared);
        std::fclose(out);
      }
  }
  if (fn->name == "kiln_fake_scale_add") runScaleAdd(args);
  return CUDA_SUCCESS;
}

struct Entry {
  const char *name;
  void *fn;
};
const Entry kEntries[] = {
    {"cuInit", (void *)mInit},
    {"cuGetErrorString", (void *)mGetErrorString},
    {"cuDeviceGetCount", (void *)mDeviceGetCount},
    {"cuDeviceGet", (void *)mDeviceGet},
    {"cuDevicePrimaryCtxRetain", (void *)mPrimaryCtxRetain},
    {"cuCtxPushCurrent", (void *)mCtxPush},
    {"cuCtxPopCurrent", (void *)mCtxPop},
    {"cuModuleLoadData", (void *)mModuleLoadData},
    {"cuModuleGetFunction", (void *)mModuleGetFunction},
    {"cuModuleUnload", (void *)mModuleUnload},
    {"cuMemAlloc", (void *)mMemAlloc},
    {"cuMemFree", (void *)mMemFree},
    {"cuMemcpyHtoDAsync", (void *)mHtoD},
    {"cuMemcpyDtoHAsync", (void *)mDtoH},
    {"cuMemcpyDtoDAsync", (void *)mDtoD},
    {"cuMemsetD8Async", (void *)mMemsetD8},
    {"cuStreamCreate", (void *)mStreamCreate},
    {"cuStreamDestroy", (void *)mStreamDestroy},
    {"cuStreamSynchronize", (void *)mStreamSynchronize},
    {"cuStreamWaitEvent", (void *)mStreamWaitEvent},
    {"cuEventCreate", (void *)mEventCreate},
    {"cuEventDestroy", (void *)mEventDestroy},
    {"cuEventRecord", (void *)mEventRecord},
    {"cuEventQuery", (void *)mEventQuery},
    {"cuEventSynchronize", (void *)mEventSynchronize},
    {"cuEventElapsedTime", (void *)mEventElapsedTime},
    {"cuLaunchKernel", (void *)mLaunchKernel},
};

} // namespace

MOCK_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int, cuuint64_t,
                                      CUdriverProcAddressQueryResult *status) {
  for (const Entry &e : kEntries)
    if (std::strcmp(e.name, symbol) == 0) {
      *pfn = e.fn;
      if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
      return CUDA_SUCCESS;
    }
  *pfn = nullptr;
  if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  return CUDA_ERROR_NOT_FOUND;
}

MOCK_API void kiln_mock_counters(kiln_mock_stats *out) {
  std::lock_guard<std::mutex> l(mu);
  *out = counters;
}

MOCK_API int kiln_mock_last_launch(kiln_mock_launch *out) {
  std::lock_guard<std::mutex> l(mu);
  *out = lastLaunch;
  return haveLaunch;
}

MOCK_API void kiln_mock_set_device_count(int n) {
  std::lock_guard<std::mutex> l(mu);
  deviceCount = std::clamp(n, 0, KILN_MOCK_MAX_DEVICES);
}

MOCK_API void kiln_mock_set_auto_complete(int on) {
  std::lock_guard<std::mutex> l(mu);
  autoComplete = on != 0;
}

MOCK_API void kiln_mock_complete_events(void) {
  {
    std::lock_guard<std::mutex> l(mu);
    for (Event *e : events)
      e->pending = false;
  }
  cv.notify_all();
}

MOCK_API int kiln_mock_pending_events(void) {
  std::lock_guard<std::mutex> l(mu);
  int n = 0;
  for (Event *e : events)
    n += e->pending;
  return n;
}

// Plain exports of what a host program calls itself (tests/gpu's smoke host creates its own
// stream), so the mock can stand in as libcuda.so.1 on a machine without a GPU.
MOCK_API CUresult cuInit(unsigned flags) {
  return mInit(flags);
}
MOCK_API CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  return mDeviceGet(d, ordinal);
}
MOCK_API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
  return mPrimaryCtxRetain(c, d);
}
MOCK_API CUresult cuCtxSetCurrent(CUcontext c) {
  if (contexts.empty())
    contexts.push_back(c);
  else
    contexts.back() = c;
  return CUDA_SUCCESS;
}
MOCK_API CUresult cuStreamCreate(CUstream *s, unsigned flags) {
  return mStreamCreate(s, flags);
}
MOCK_API CUresult cuStreamSynchronize(CUstream s) {
  return mStreamSynchronize(s);
}
