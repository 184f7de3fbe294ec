// Per-call overhead and multi-runner throughput of a kiln model.so (dlopen'ed).
//
//   overhead <add16.so> [--calls 100000] [--batch 100]
//     Times kiln_run_minimal and kiln_run on a model whose inputs and outputs are all static
//     float32 (add16: y = a + b, 16 floats): calls are timed in batches of --batch calls
//     (steady_clock around each batch) and the median batch time / batch is reported, over
//     --calls calls in all, after 10k warm-up calls. One runner, one thread per run.
//   overhead --throughput <model.so> --runners 1,2,4 [--clients 4] [--seconds 10]
//     --clients threads call kiln_run in a loop on one container with N runners and
//     threads_per_run = hardware threads / N; reports runs per second for each N.
#include <kiln/model.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Api {
  void (*options_init)(kiln_container_options *);
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  const char *(*last_error)(void);
  int (*num_inputs)(const kiln_container *, int32_t *);
  int (*num_outputs)(const kiln_container *, int32_t *);
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
  int (*run_minimal)(kiln_container *, void *const *, void *const *);
};

Api load(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    std::exit(1);
  }
  Api a{};
  auto sym = [&](auto &fn, const char *name) {
    *reinterpret_cast<void **>(&fn) = dlsym(h, name);
    if (!fn) {
      std::fprintf(stderr, "%s does not export %s\n", path, name);
      std::exit(1);
    }
  };
  sym(a.options_init, "kiln_container_options_init");
  sym(a.create, "kiln_container_create");
  sym(a.destroy, "kiln_container_destroy");
  sym(a.last_error, "kiln_last_error");
  sym(a.num_inputs, "kiln_num_inputs");
  sym(a.num_outputs, "kiln_num_outputs");
  sym(a.input_info, "kiln_input_info");
  sym(a.output_info, "kiln_output_info");
  sym(a.run, "kiln_run");
  sym(a.run_minimal, "kiln_run_minimal");
  return a;
}

// Caller-side tensors for every input and output of the model (static dims; symbolic dims
// at their minimum), filled with small values.
struct Io {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<char>> storage;
  std::vector<DLTensor> in, out;
  std::vector<void *> inPtr, outPtr;
};

void fill(const Api &a, kiln_container *c, bool input, Io &io) {
  int32_t n = 0;
  (input ? a.num_inputs : a.num_outputs)(c, &n);
  for (int32_t i = 0; i < n; ++i) {
    kiln_tensor_info info{};
    info.struct_size = sizeof info;
    (input ? a.input_info : a.output_info)(c, i, &info);
    std::vector<int64_t> shape(info.ndim);
    size_t count = 1;
    for (int32_t d = 0; d < info.ndim; ++d) {
      shape[d] = info.dims[d] >= 0 ? info.dims[d] : info.dim_min[d];
      count *= shape[d];
    }
    size_t bytes = count * ((info.dtype.bits * info.dtype.lanes + 7) / 8);
    io.storage.emplace_back(bytes + 64, 0);
    char *p = io.storage.back().data();
    p += (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
    if (info.dtype.code == kDLFloat && info.dtype.bits == 32)
      for (size_t e = 0; e < count; ++e)
        reinterpret_cast<float *>(p)[e] = 0.001f * static_cast<float>(e % 1000);
    io.shapes.push_back(shape);
    DLTensor t{};
    t.data = p;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = info.ndim;
    t.dtype = info.dtype;
    (input ? io.in : io.out).push_back(t);
    (input ? io.inPtr : io.outPtr).push_back(p);
  }
  // Shapes last: the vectors above stopped moving.
  size_t base = input ? 0 : io.in.size();
  auto &ts = input ? io.in : io.out;
  for (size_t i = 0; i < ts.size(); ++i)
    ts[i].shape = io.shapes[base + i].data();
}

template <typename F> double medianNsPerCall(F &&call, int calls, int batch) {
  for (int i = 0; i < 10000; ++i)
    call();
  std::vector<double> per;
  per.reserve(calls / batch);
  for (int b = 0; b < calls / batch; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i)
      call();
    auto t1 = Clock::now();
    per.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / batch);
  }
  std::nth_element(per.begin(), per.begin() + per.size() / 2, per.end());
  return per[per.size() / 2];
}

int overhead(const char *path, int calls, int batch) {
  Api a = load(path);
  kiln_container_options o;
  a.options_init(&o);
  o.num_runners = 1;
  o.threads_per_run = 1;
  kiln_container *c = nullptr;
  if (a.create(&o, &c) != KILN_OK) {
    std::fprintf(stderr, "create: %s\n", a.last_error());
    return 1;
  }
  Io io;
  fill(a, c, true, io);
  fill(a, c, false, io);
  int bad = 0;
  double minimal = medianNsPerCall(
      [&] { bad |= a.run_minimal(c, io.inPtr.data(), io.outPtr.data()); }, calls, batch);
  double run = medianNsPerCall(
      [&] {
        bad |= a.run(c, io.in.data(), int32_t(io.in.size()), io.out.data(), int32_t(io.out.size()));
      },
      calls, batch);
  if (bad) {
    std::fprintf(stderr, "a run failed: %s\n", a.last_error());
    return 1;
  }
  std::printf("%s: median per call over %d calls (batches of %d), 1 runner, 1 thread\n", path,
              calls, batch);
  std::printf("  kiln_run_minimal  %8.1f ns\n", minimal);
  std::printf("  kiln_run          %8.1f ns\n", run);
  a.destroy(c);
  return 0;
}

int throughput(const char *path, const std::vector<int> &runners, int clients, double seconds) {
  Api a = load(path);
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  std::printf("%s: %d client threads, %u hardware threads, %.0f s per point\n", path, clients, hw,
              seconds);
  for (int n : runners) {
    kiln_container_options o;
    a.options_init(&o);
    o.num_runners = n;
    o.threads_per_run = std::max(1, int(hw) / n);
    kiln_container *c = nullptr;
    if (a.create(&o, &c) != KILN_OK) {
      std::fprintf(stderr, "create: %s\n", a.last_error());
      return 1;
    }
    std::vector<Io> ios(clients);
    for (Io &io : ios) {
      fill(a, c, true, io);
      fill(a, c, false, io);
    }
    // Warm every runner (primitive creation, weight reorders) before timing.
    {
      std::vector<std::thread> warm;
      for (int t = 0; t < clients; ++t)
        warm.emplace_back([&, t] {
          for (int i = 0; i < 2; ++i)
            a.run(c, ios[t].in.data(), int32_t(ios[t].in.size()), ios[t].out.data(),
                  int32_t(ios[t].out.size()));
        });
      for (auto &w : warm)
        w.join();
    }
    std::atomic<bool> stop{false};
    std::atomic<long> done{0}, failed{0};
    std::vector<std::thread> ts;
    auto t0 = Clock::now();
    for (int t = 0; t < clients; ++t)
      ts.emplace_back([&, t] {
        while (!stop.load(std::memory_order_relaxed)) {
          int st = a.run(c, ios[t].in.data(), int32_t(ios[t].in.size()), ios[t].out.data(),
                         int32_t(ios[t].out.size()));
          (st == KILN_OK ? done : failed).fetch_add(1);
        }
      });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto &t : ts)
      t.join();
    double el = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("  runners %d (threads/run %d): %7.2f runs/s  (%ld runs, %ld failed, %.1f s)\n", n,
                o.threads_per_run, done / el, done.load(), failed.load(), el);
    a.destroy(c);
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: overhead <add16.so> [--calls N] [--batch B]\n"
                         "       overhead --throughput <model.so> --runners 1,2,4 "
                         "[--clients 4] [--seconds 10]\n");
    return 2;
  }
  int calls = 100000, batch = 100, clients = 4;
  double seconds = 10;
  std::vector<int> runners = {1, 2, 4};
  const char *model = nullptr;
  bool tp = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? argv[++i] : (std::exit(2), ""); };
    if (a == "--calls")
      calls = std::atoi(next());
    else if (a == "--batch")
      batch = std::atoi(next());
    else if (a == "--clients")
      clients = std::atoi(next());
    else if (a == "--seconds")
      seconds = std::atof(next());
    else if (a == "--throughput")
      tp = true;
    else if (a == "--runners") {
      runners.clear();
      std::string s = next();
      for (size_t p = 0; p < s.size();) {
        size_t q = s.find(',', p);
        runners.push_back(std::atoi(s.substr(p, q - p).c_str()));
        p = q == std::string::npos ? s.size() : q + 1;
      }
    } else
      model = argv[i];
  }
  if (!model) return 2;
  return tp ? throughput(model, runners, clients, seconds) : overhead(model, calls, batch);
}
