// `kiln run`: loads a model.so with dlopen, feeds .npy inputs, writes .npy outputs and
// reports latency (optionally a benchmark: warm-up then median of repeated runs).
#include "cli/commands.h"
#include "cli/npy.h"
#include "kiln/model.h"
#include "kiln/model_desc.h"
#include "support/error.h"

#include <algorithm>
#include <chrono>
#include <dlfcn.h>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>

namespace kiln::cli {

namespace {

// The model.h functions `kiln run` uses, looked up with dlsym.
#define KILN_RUN_FUNCTIONS(X)                                                                      \
  X(kiln_container_options_init)                                                                   \
  X(kiln_container_create)                                                                         \
  X(kiln_container_destroy)                                                                        \
  X(kiln_last_error)                                                                               \
  X(kiln_num_inputs)                                                                               \
  X(kiln_num_outputs)                                                                              \
  X(kiln_input_info)                                                                               \
  X(kiln_output_info)                                                                              \
  X(kiln_run)                                                                                      \
  X(kiln_run_alloc)                                                                                \
  X(kiln_output_dims)

// ABI-4 functions (GPU runs) and the descriptor; older models lack them.
#define KILN_RUN_OPTIONAL_FUNCTIONS(X)                                                             \
  X(kiln_alloc_tensor)                                                                             \
  X(kiln_copy_tensor)

struct ModelLib {
  void *handle = nullptr;
#define KILN_FN(name) decltype(&::name) name = nullptr;
  KILN_RUN_FUNCTIONS(KILN_FN)
  KILN_RUN_OPTIONAL_FUNCTIONS(KILN_FN)
#undef KILN_FN
  const kiln_model_desc_v1 *(*kiln_model_descriptor)() = nullptr;

  explicit ModelLib(const std::string &path) {
    std::string p = std::filesystem::absolute(path).string();
    handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) fail("cannot load '{}': {}", path, dlerror());
#define KILN_FN(name)                                                                              \
  name = reinterpret_cast<decltype(name)>(dlsym(handle, #name));                                   \
  if (!name) fail("'{}' is not a kiln model: symbol {} missing", path, #name);
    KILN_RUN_FUNCTIONS(KILN_FN)
#undef KILN_FN
#define KILN_FN(name) name = reinterpret_cast<decltype(name)>(dlsym(handle, #name));
    KILN_RUN_OPTIONAL_FUNCTIONS(KILN_FN)
    KILN_FN(kiln_model_descriptor)
#undef KILN_FN
  }
  // The device the model was compiled for ("cpu" when the descriptor says nothing).
  std::string modelDevice() const {
    const kiln_model_desc_v1 *d = kiln_model_descriptor ? kiln_model_descriptor() : nullptr;
    return d && d->device ? d->device : "cpu";
  }
  void check(int st, const char *what) const {
    if (st != KILN_OK) fail("{} failed (status {}): {}", what, st, kiln_last_error());
  }
};

std::string safeFileName(const std::string &name) {
  std::string r;
  for (char c : name)
    r +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return r.empty() ? "output" : r;
}

struct Aligned {
  void *p = nullptr;
  explicit Aligned(size_t n) {
    p = std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64));
  }
  ~Aligned() { std::free(p); }
  Aligned(const Aligned &) = delete;
};

} // namespace

void addRunCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("run", "run a compiled model on .npy inputs");
  struct Opts {
    std::string lib, outDir, weights;
    std::vector<std::string> inputs;
    int bench = 0, warmup = 3, threads = 0, runners = 1;
    bool json = false;
    std::string device;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("model", o->lib, "model.so")->required();
  cmd->add_option("--input", o->inputs,
                  "name=file.npy (repeat per input); a bfloat16 input takes a uint16 .npy "
                  "holding the raw bf16 bits");
  cmd->add_option("--output-dir", o->outDir,
                  "write one .npy per output here (bfloat16 outputs as uint16 raw bits)");
  cmd->add_option("--bench", o->bench, "timed runs (after warm-up); prints median latency");
  cmd->add_option("--warmup", o->warmup, "warm-up runs before timing");
  cmd->add_option("--threads", o->threads, "threads per run (default: all)");
  cmd->add_option("--weights", o->weights,
                  "external weights file (default: <model>.weights when it exists)");
  cmd->add_flag("--json", o->json, "print timing as one JSON line");
  cmd->add_option("--device", o->device,
                  "cpu, cuda or cuda:N (default: the device the model was compiled for); on a "
                  "GPU, .npy inputs are copied to it and outputs back");
  cmd->callback([o] {
    ModelLib lib(o->lib);
    const std::string device = o->device.empty() ? lib.modelDevice() : o->device;
    const bool gpu = device.rfind("cuda", 0) == 0;
    if (gpu && (!lib.kiln_alloc_tensor || !lib.kiln_copy_tensor))
      fail("'{}' predates kiln ABI 4 (no kiln_alloc_tensor): it cannot run on {}", o->lib, device);
    kiln_container_options opts;
    lib.kiln_container_options_init(&opts);
    opts.device = device.c_str();
    opts.num_runners = o->runners;
    opts.threads_per_run = o->threads;
    std::string weights = o->weights;
    if (weights.empty() && std::filesystem::exists(o->lib + ".weights"))
      weights = o->lib + ".weights"; // written by `kiln compile --weights external`
    if (!weights.empty()) opts.weights_path = weights.c_str();
    kiln_container *c = nullptr;
    lib.check(lib.kiln_container_create(&opts, &c), "creating the container");
    std::unique_ptr<kiln_container, decltype(lib.kiln_container_destroy)> guard(
        c, lib.kiln_container_destroy);
    int32_t nin = 0, nout = 0;
    lib.check(lib.kiln_num_inputs(c, &nin), "kiln_num_inputs");
    lib.check(lib.kiln_num_outputs(c, &nout), "kiln_num_outputs");
    std::map<std::string, std::string> files;
    for (const std::string &spec : o->inputs) {
      auto eq = spec.find('=');
      if (eq == std::string::npos) fail("--input '{}': expected name=file.npy", spec);
      files[spec.substr(0, eq)] = spec.substr(eq + 1);
    }
    std::vector<NpyArray> arrays(nin);
    std::vector<std::unique_ptr<Aligned>> inBufs;
    std::vector<DLTensor> ins(nin);
    for (int32_t i = 0; i < nin; ++i) {
      kiln_tensor_info info{sizeof(kiln_tensor_info)};
      lib.check(lib.kiln_input_info(c, i, &info), "kiln_input_info");
      auto it = files.find(info.name);
      if (it == files.end())
        fail("model input '{}' has no --input {}=file.npy", info.name, info.name);
      arrays[i] = readNpy(it->second);
      // numpy has no bfloat16: a bfloat16 input comes as a uint16 .npy of raw bf16 bits.
      if (info.dtype.code == kDLBfloat && info.dtype.bits == 16) {
        if (arrays[i].dtype.code != kDLUInt || arrays[i].dtype.bits != 16)
          fail("input '{}' is bfloat16: give a uint16 .npy of raw bf16 bits ('{}' has {})",
               info.name, it->second, dtypeDescr(arrays[i].dtype));
        arrays[i].dtype = info.dtype;
      }
      files.erase(it);
      inBufs.push_back(std::make_unique<Aligned>(arrays[i].data.size()));
      std::memcpy(inBufs.back()->p, arrays[i].data.data(), arrays[i].data.size());
      ins[i] = DLTensor{inBufs.back()->p,
                        {kDLCPU, 0},
                        static_cast<int32_t>(arrays[i].shape.size()),
                        arrays[i].dtype,
                        arrays[i].shape.data(),
                        nullptr,
                        0};
    }
    if (!files.empty())
      fail("--input '{}': the model has no input with that name", files.begin()->first);
    // On a GPU the run reads and writes device tensors; the host buffers stay the .npy side,
    // copied in once and out after the runs.
    std::vector<DLManagedTensor *> deviceTensors;
    std::shared_ptr<void> freeDevice(nullptr, [&](void *) {
      for (DLManagedTensor *m : deviceTensors)
        m->deleter(m);
    });
    auto toDevice = [&](DLTensor &t, bool copy) {
      DLManagedTensor *m = nullptr;
      lib.check(lib.kiln_alloc_tensor(c, t.dtype, t.ndim, t.shape, &m), "kiln_alloc_tensor");
      deviceTensors.push_back(m);
      if (copy)
        lib.check(lib.kiln_copy_tensor(c, &m->dl_tensor, &t), "copying an input to the GPU");
      t.data = m->dl_tensor.data;
      t.device = m->dl_tensor.device;
    };
    if (gpu)
      for (DLTensor &t : ins)
        toDevice(t, true);
    std::vector<std::vector<int64_t>> outDims(nout);
    std::vector<int64_t *> dimPtrs(nout);
    std::vector<kiln_tensor_info> outInfo(nout);
    for (int32_t i = 0; i < nout; ++i) {
      outInfo[i] = kiln_tensor_info{sizeof(kiln_tensor_info)};
      lib.check(lib.kiln_output_info(c, i, &outInfo[i]), "kiln_output_info");
      outDims[i].resize(std::max(outInfo[i].ndim, 1));
      dimPtrs[i] = outDims[i].data();
    }
    lib.check(lib.kiln_output_dims(c, ins.data(), nin, dimPtrs.data()), "computing output dims");
    std::vector<std::unique_ptr<Aligned>> outBufs;
    std::vector<DLTensor> outs(nout);
    for (int32_t i = 0; i < nout; ++i) {
      outDims[i].resize(outInfo[i].ndim);
      int64_t n = 1;
      for (int64_t d : outDims[i])
        n *= d;
      size_t bytes = static_cast<size_t>(n) * ((outInfo[i].dtype.bits + 7) / 8);
      outBufs.push_back(std::make_unique<Aligned>(bytes));
      outs[i] = DLTensor{outBufs.back()->p,
                         {kDLCPU, 0},
                         outInfo[i].ndim,
                         outInfo[i].dtype,
                         outDims[i].data(),
                         nullptr,
                         0};
    }
    const std::vector<DLTensor> hostOuts = outs;
    if (gpu)
      for (DLTensor &t : outs)
        toDevice(t, false);
    // kiln_run writes the actual dims of data-dependent outputs (NonZero, Unique, ...)
    // into their shapes; each run starts again from the bounds kiln_output_dims gave.
    const std::vector<std::vector<int64_t>> boundDims = outDims;
    // String outputs need runtime-owned text: such models run through kiln_run_alloc.
    bool anyString = false;
    for (int32_t i = 0; i < nout; ++i)
      anyString |= outInfo[i].dtype.code == kDLOpaqueHandle && outInfo[i].dtype.bits == 64;
    std::vector<DLManagedTensor *> managed(nout, nullptr);
    auto freeManaged = [&] {
      for (DLManagedTensor *&m : managed)
        if (m) {
          m->deleter(m);
          m = nullptr;
        }
    };
    std::shared_ptr<void> freeAtExit(nullptr, [&](void *) { freeManaged(); });
    auto runOnce = [&] {
      for (int32_t i = 0; i < nout; ++i)
        std::copy(boundDims[i].begin(), boundDims[i].end(), outDims[i].begin());
      auto t0 = std::chrono::steady_clock::now();
      if (anyString) {
        freeManaged();
        lib.check(lib.kiln_run_alloc(c, ins.data(), nin, managed.data(), nout), "kiln_run_alloc");
        for (int32_t i = 0; i < nout; ++i) {
          std::copy(managed[i]->dl_tensor.shape, managed[i]->dl_tensor.shape + outInfo[i].ndim,
                    outDims[i].begin());
          outs[i].data = managed[i]->dl_tensor.data;
        }
      } else {
        // On a GPU kiln_run returns once the work is done, so the host clock times it.
        lib.check(lib.kiln_run(c, ins.data(), nin, outs.data(), nout), "kiln_run");
      }
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
          .count();
    };
    double first = runOnce();
    std::vector<double> times;
    if (o->bench > 0) {
      for (int i = 0; i < o->warmup; ++i)
        runOnce();
      for (int i = 0; i < o->bench; ++i)
        times.push_back(runOnce());
      std::sort(times.begin(), times.end());
    } else {
      times.push_back(first);
    }
    auto pct = [&](double q) {
      return times[std::min(times.size() - 1, size_t(q * (times.size() - 1) + 0.5))];
    };
    if (gpu && !anyString) // string outputs never live on a GPU
      for (int32_t i = 0; i < nout; ++i) {
        DLTensor h = hostOuts[i];
        h.shape = outDims[i].data();
        lib.check(lib.kiln_copy_tensor(c, &h, &outs[i]), "copying an output from the GPU");
        outs[i].data = h.data;
      }
    if (!o->outDir.empty()) {
      std::filesystem::create_directories(o->outDir);
      for (int32_t i = 0; i < nout; ++i)
        writeNpy(
            (std::filesystem::path(o->outDir) / (safeFileName(outInfo[i].name) + ".npy")).string(),
            outInfo[i].dtype, outDims[i], outs[i].data);
    }
    if (o->json)
      std::cout << fmt::format("{{\"median_ms\": {:.4f}, \"p10_ms\": {:.4f}, \"p90_ms\": {:.4f}, "
                               "\"first_ms\": {:.4f}, \"runs\": {}}}\n",
                               pct(0.5), pct(0.1), pct(0.9), first, times.size());
    else
      std::cout << fmt::format(
          "latency: median {:.3f} ms (p10 {:.3f}, p90 {:.3f}; first run {:.3f} "
          "ms; {} timed runs)\n",
          pct(0.5), pct(0.1), pct(0.9), first, times.size());
  });
}

} // namespace kiln::cli
