// Peak RSS of one container running N runs at once (N runners, one thread each): what a
// server with N workers on one model holds. Inputs are zeros; symbolic dims are given.
//
//   g++ -O2 -std=c++17 -I include bench/rss/concurrent_rss.cpp -o concurrent_rss -ldl -pthread
//   LD_LIBRARY_PATH=build/release/src/runtime ./concurrent_rss model.so RUNNERS RUNS [SYM=V ...]
//
// Prints one JSON line: runners, runs per runner, VmHWM (peak RSS) and VmRSS at the end, MiB.
#include <kiln/model.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

template <class F> F load(void *lib, const char *name) {
  void *f = dlsym(lib, name);
  if (!f) {
    std::fprintf(stderr, "concurrent_rss: %s not found\n", name);
    std::exit(2);
  }
  return reinterpret_cast<F>(f);
}

double statusMiB(const char *key) {
  FILE *f = std::fopen("/proc/self/status", "r");
  char line[256];
  double kb = -1;
  while (f && std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, std::strlen(key)) == 0) kb = std::atof(line + std::strlen(key));
  if (f) std::fclose(f);
  return kb / 1024.0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s model.so RUNNERS RUNS [SYMBOL=VALUE ...]\n", argv[0]);
    return 2;
  }
  const int runners = std::atoi(argv[2]), runs = std::atoi(argv[3]);
  std::map<std::string, int64_t> symbols;
  for (int i = 4; i < argc; ++i) {
    const char *eq = std::strchr(argv[i], '=');
    if (!eq) return std::fprintf(stderr, "bad symbol '%s'\n", argv[i]), 2;
    symbols[std::string(argv[i], eq - argv[i])] = std::atoll(eq + 1);
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::fprintf(stderr, "%s\n", dlerror()), 1;
  auto optionsInit = load<void (*)(kiln_container_options *)>(lib, "kiln_container_options_init");
  auto create = load<int (*)(const kiln_container_options *, kiln_container **)>(
      lib, "kiln_container_create");
  auto numInputs = load<int (*)(const kiln_container *, int32_t *)>(lib, "kiln_num_inputs");
  auto numOutputs = load<int (*)(const kiln_container *, int32_t *)>(lib, "kiln_num_outputs");
  auto inputInfo =
      load<int (*)(const kiln_container *, int32_t, kiln_tensor_info *)>(lib, "kiln_input_info");
  auto runAlloc =
      load<int (*)(kiln_container *, const DLTensor *, int32_t, DLManagedTensor **, int32_t)>(
          lib, "kiln_run_alloc");
  auto lastError = load<const char *(*)()>(lib, "kiln_last_error");

  kiln_container_options o;
  optionsInit(&o);
  o.num_runners = runners;
  o.threads_per_run = 1;
  kiln_container *c = nullptr;
  if (create(&o, &c) != 0) return std::fprintf(stderr, "create: %s\n", lastError()), 1;
  int32_t nIn = 0, nOut = 0;
  numInputs(c, &nIn);
  numOutputs(c, &nOut);
  std::vector<std::vector<int64_t>> shapes(nIn);
  std::vector<std::vector<char>> data(nIn);
  std::vector<DLTensor> inputs(nIn);
  for (int32_t i = 0; i < nIn; ++i) {
    kiln_tensor_info info{};
    info.struct_size = sizeof info;
    inputInfo(c, i, &info);
    size_t n = 1;
    for (int32_t d = 0; d < info.ndim; ++d) {
      int64_t v = info.dims[d];
      if (v < 0) {
        auto it = info.dim_names[d] ? symbols.find(info.dim_names[d]) : symbols.end();
        if (it == symbols.end())
          return std::fprintf(stderr, "give %s=VALUE\n",
                              info.dim_names[d] ? info.dim_names[d] : "a derived dim"),
                 2;
        v = it->second;
      }
      shapes[i].push_back(v);
      n *= static_cast<size_t>(v);
    }
    data[i].assign(n * ((info.dtype.bits + 7) / 8), 0);
    inputs[i] =
        DLTensor{data[i].data(), {kDLCPU, 0}, info.ndim, info.dtype, shapes[i].data(), nullptr, 0};
  }
  int failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < runners; ++t)
    threads.emplace_back([&] {
      std::vector<DLManagedTensor *> out(nOut);
      for (int r = 0; r < runs; ++r) {
        if (runAlloc(c, inputs.data(), nIn, out.data(), nOut) != 0) {
          std::fprintf(stderr, "run: %s\n", lastError());
          __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
          return;
        }
        for (DLManagedTensor *m : out)
          if (m && m->deleter) m->deleter(m);
      }
    });
  for (auto &t : threads)
    t.join();
  std::printf("{\"runners\": %d, \"runs\": %d, \"peak_rss_mb\": %.1f, \"end_rss_mb\": %.1f}\n",
              runners, runs, statusMiB("VmHWM:"), statusMiB("VmRSS:"));
  return failures ? 1 : 0;
}
