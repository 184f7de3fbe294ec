#include "cli/model_lib.h"

#include "aot/install_paths.h"
#include "cli/npy.h"
#include "cli/openmp_spin.h"
#include "support/error.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sched.h>
#include <thread>

namespace kiln::cli {

namespace fs = std::filesystem;

void requireModelLibrary(const std::string &path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    fail("'{}' is a directory; give the compiled model file (kiln compile ... -o model.so)", path);
  if (!fs::exists(path, ec)) fail("'{}': no such file", path);
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  in.read(magic, 4);
  if (std::memcmp(magic,
                  "\x7f"
                  "ELF",
                  4) == 0)
    return;
  if (fs::path(path).extension() == ".onnx")
    fail("'{}' is an ONNX model; compile it first: kiln compile {} -o model.so, then use "
         "model.so",
         path, path);
  fail("'{}' is not a compiled kiln model (not a shared library); compile an ONNX model with "
       "kiln compile MODEL.onnx -o model.so",
       path);
}

namespace {

/// kiln's own libkiln_rt, loaded first so a model.so whose RUNPATH ($ORIGIN) and the normal
/// library path lack one still loads (the model's NEEDED entry matches it by SONAME).
void preloadRuntime() {
  static const bool once = [] {
    boundOpenMpSpin(); // before the first model pulls libgomp in
    fs::path dir = aot::kilnPaths().runtimeLibDir;
    for (const char *name : {"libkiln_rt.so.1", "libkiln_rt.so"})
      if (dlopen((dir / name).c_str(), RTLD_NOW | RTLD_GLOBAL)) return true;
    return false; // then the model's RUNPATH and the library path must provide it
  }();
  (void)once;
}

} // namespace

ModelLib::ModelLib(const std::string &p) : path(p) {
  requireModelLibrary(path);
  preloadRuntime();
  std::string abs = fs::absolute(path).string();
  handle = dlopen(abs.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) fail("cannot load '{}': {}", path, dlerror());
#define KILN_FN(name)                                                                              \
  name = reinterpret_cast<decltype(name)>(dlsym(handle, #name));                                   \
  if (!name) fail("'{}' is not a kiln model: it does not export {}", path, #name);
  KILN_CLI_FUNCTIONS(KILN_FN)
#undef KILN_FN
#define KILN_FN(name) name = reinterpret_cast<decltype(name)>(dlsym(handle, #name));
  KILN_CLI_OPTIONAL_FUNCTIONS(KILN_FN)
  KILN_FN(kiln_model_descriptor)
  KILN_FN(kiln_model_weights_error)
#undef KILN_FN
}

const kiln_model_desc_v1 *ModelLib::descriptor() const {
  return kiln_model_descriptor ? kiln_model_descriptor() : nullptr;
}

std::string ModelLib::modelDevice() const {
  const kiln_model_desc_v1 *d = descriptor();
  return d && d->device ? d->device : "cpu";
}

const char *ModelLib::cpuIsa() const {
  const kiln_model_desc_v1 *d = descriptor();
  if (!d || d->struct_size < offsetof(kiln_model_desc_v1, cpu_isa) + sizeof(d->cpu_isa))
    return nullptr;
  return d->cpu_isa;
}

std::string ModelLib::summary() const {
  const kiln_model_desc_v1 *d = descriptor();
  std::string device = modelDevice();
  if (device == "cuda" && d && d->cuda_arch) device += fmt::format(" ({})", d->cuda_arch);
  const char *isa = cpuIsa();
  return fmt::format("{}; host code for CPU {}", device,
                     isa ? isa : "unknown (built before kiln recorded it)");
}

void ModelLib::check(int st, const char *what) const {
  if (st == KILN_OK) return;
  fail("{}: {}", what, kiln_last_error());
}

int availableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

kiln_container *createContainer(const ModelLib &lib, const ContainerOptions &o) {
  const std::string device = o.device.empty() ? lib.modelDevice() : o.device;
  bool gpu = device.rfind("cuda", 0) == 0;
  if (gpu && (!lib.kiln_alloc_tensor || !lib.kiln_copy_tensor))
    fail("'{}' predates kiln ABI 4 (no kiln_alloc_tensor): it cannot run on {}", lib.path, device);
  kiln_container_options opts;
  lib.kiln_container_options_init(&opts);
  opts.device = device.c_str();
  opts.num_runners = o.runners;
  int cpus = availableCpus();
  opts.threads_per_run = o.threads > 0 ? o.threads : cpus;
  if (o.threads > cpus)
    std::cerr << fmt::format("kiln: warning: --threads {} is more than the {} CPU(s) this process "
                             "may use; runs will be slower, not faster\n",
                             o.threads, cpus);
  std::string weights = o.weights;
  std::error_code ec;
  if (!weights.empty()) {
    if (fs::is_directory(weights, ec))
      fail("--weights '{}' is a directory; give the .weights file kiln compile --weights "
           "external wrote",
           weights);
    if (!fs::exists(weights, ec)) fail("--weights '{}': no such file", weights);
  } else if (fs::exists(lib.path + ".weights", ec)) {
    weights = lib.path + ".weights"; // written by `kiln compile --weights external`
  }
  if (!weights.empty()) opts.weights_path = weights.c_str();
  kiln_container *c = nullptr;
  if (lib.kiln_container_create(&opts, &c) == KILN_OK) return c;
  std::string msg = lib.kiln_last_error();
  // The runtime speaks of option fields; the user gave flags.
  for (auto [field, flag] : {std::pair{"kiln_container_options.threads_per_run", "--threads"},
                             {"kiln_container_options.num_runners", "--runners"},
                             {"kiln_container_options.weights_path", "--weights FILE"},
                             {"kiln_container_options.device", "--device"}})
    for (size_t at; (at = msg.find(field)) != std::string::npos;)
      msg.replace(at, std::strlen(field), flag);
  fail("cannot create the model ('{}'): {}", lib.path, msg);
}

std::string dtypeText(const DLDataType &t) {
  switch (t.code) {
  case kDLFloat:
    return fmt::format("float{}", t.bits);
  case kDLInt:
    return fmt::format("int{}", t.bits);
  case kDLUInt:
    return fmt::format("uint{}", t.bits);
  case kDLBfloat:
    return "bfloat16";
  case 10: // DLPack 1.1's float8/float4 codes (Debian's dlpack.h predates them)
    return "float8e4m3fn";
  case 11:
    return "float8e4m3fnuz";
  case 12:
    return "float8e5m2";
  case 13:
    return "float8e5m2fnuz";
  case 14:
    return "float8e8m0";
  case 17:
    return "float4e2m1";
  case kDLOpaqueHandle:
    return "string";
  case 6:
    return "bool";
  default:
    return fmt::format("dtype(code {}, {} bits)", t.code, t.bits);
  }
}

std::string describeDims(const kiln_tensor_info &info) {
  std::string s = "[";
  for (int32_t d = 0; d < info.ndim; ++d) {
    if (d) s += ", ";
    if (info.dims[d] >= 0) {
      s += std::to_string(info.dims[d]);
    } else if (info.dim_names && info.dim_names[d]) {
      s += fmt::format("{}={}..{}", info.dim_names[d], info.dim_min[d], info.dim_max[d]);
    } else {
      s += "?"; // a derived dim (e.g. 2*seq): fixed by the other inputs
    }
  }
  return s + "]";
}

} // namespace kiln::cli
