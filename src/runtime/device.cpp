// Device strings, loading the CUDA plugin, and a CUDA container's device and constants.
#include "device.h"

#include "container.h"
#include "error.h"

#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace kiln::rt {

int parseDevice(const char *text, DeviceSpec &out) {
  out = DeviceSpec{};
  if (std::strcmp(text, "cpu") == 0 || std::strcmp(text, "cpu:0") == 0) return KILN_OK;
  if (std::strcmp(text, "cuda") == 0) {
    out.cuda = true;
    return KILN_OK;
  }
  if (std::strncmp(text, "cuda:", 5) == 0 && text[5] >= '0' && text[5] <= '9') {
    char *end = nullptr;
    errno = 0;
    long n = std::strtol(text + 5, &end, 10);
    if (*end == '\0' && errno == 0 && n <= INT32_MAX) {
      out.cuda = true;
      out.ordinal = static_cast<int32_t>(n);
      return KILN_OK;
    }
  }
  return fail(KILN_ERR_INVALID_ARGUMENT,
              "unknown device '%s'; expected \"cpu\", \"cuda\" or \"cuda:N\"", text);
}

namespace {

struct PluginLoad {
  const kiln_device_plugin_v1 *plugin = nullptr;
  std::string why;
};

void *openPlugin(std::string &why) {
  // First next to libkiln_rt itself, so an installed pair always matches.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&cudaPlugin), &info) && info.dli_fname) {
    std::string path = info.dli_fname;
    size_t slash = path.rfind('/');
    path = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
           KILN_DEVICE_PLUGIN_FILE;
    if (void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    why = path + ": " + dlerror() + "; ";
  }
  if (void *h = dlopen(KILN_DEVICE_PLUGIN_FILE, RTLD_NOW | RTLD_LOCAL)) return h;
  why += std::string(KILN_DEVICE_PLUGIN_FILE) + ": " + dlerror();
  return nullptr;
}

PluginLoad &pluginLoad() {
  static PluginLoad p;
  static std::once_flag once;
  std::call_once(once, [] {
    void *h = openPlugin(p.why);
    if (!h) return;
    auto entry = reinterpret_cast<kiln_device_plugin_entry_fn>(dlsym(h, KILN_DEVICE_PLUGIN_ENTRY));
    const kiln_device_plugin_v1 *t = entry ? entry() : nullptr;
    if (!t || t->struct_size < sizeof(kiln_device_plugin_v1)) {
      p.why = "the CUDA plugin found does not match this libkiln_rt (missing " +
              std::string(KILN_DEVICE_PLUGIN_ENTRY) + " or an older table)";
      return;
    }
    p.plugin = t;
  });
  return p;
}

} // namespace

const kiln_device_plugin_v1 *cudaPlugin() {
  PluginLoad &p = pluginLoad();
  if (!p.plugin)
    fail(KILN_ERR_DEVICE,
         "CUDA is not available: the CUDA runtime plugin could not be loaded (%s); this "
         "libkiln_rt was built without CUDA or %s is not installed next to it",
         p.why.c_str(), KILN_DEVICE_PLUGIN_FILE);
  return p.plugin;
}

DeviceState::~DeviceState() {
  if (module) plugin->unload_module(device, module);
}

int DeviceState::copy(void *dst, bool dstOnDevice, const void *src, bool srcOnDevice, size_t bytes,
                      const char *what) const {
  char err[512] = {};
  int st = plugin->copy_sync(device, dst, dstOnDevice, src, srcOnDevice, bytes, err, sizeof err);
  return st ? fail(st, "%s: %s", what, err) : KILN_OK;
}

int DeviceState::alloc(size_t bytes, void **ptr, const char *what) const {
  char err[512] = {};
  int st = plugin->mem_alloc(device, bytes, ptr, err, sizeof err);
  return st ? fail(st, "%s: %s", what, err) : KILN_OK;
}

void DeviceState::free(void *ptr) const {
  plugin->mem_free(device, ptr);
}

int openCudaDevice(const kiln_model_desc_v1 &desc, int32_t ordinal,
                   std::unique_ptr<DeviceState> &out) {
  const kiln_device_plugin_v1 *plugin = cudaPlugin();
  if (!plugin) return KILN_ERR_DEVICE;
  auto dev = std::make_unique<DeviceState>();
  dev->plugin = plugin;
  dev->ordinal = ordinal;
  char err[768] = {};
  if (int st = plugin->open_device(ordinal, &dev->device, err, sizeof err))
    return fail(st, "%s", err);
  if (int st = plugin->load_module(dev->device, desc.cuda_fatbin, desc.cuda_fatbin_size,
                                   desc.num_cuda_kernels, desc.cuda_kernel_names, &dev->module,
                                   &dev->functions, err, sizeof err))
    return fail(st, "%s (model built for %s)", err, desc.cuda_arch ? desc.cuda_arch : "?");
  out = std::move(dev);
  return KILN_OK;
}

int uploadConstants(const DeviceState &dev, const kiln_model_desc_v1 &desc, ConstantSet &set) {
  uint64_t size = 0;
  for (int32_t i = 0; i < desc.num_constants; ++i)
    size = std::max<uint64_t>(size, desc.constants[i].offset + desc.constants[i].nbytes);
  void *mem = nullptr;
  if (int st = dev.alloc(size, &mem, "uploading the model's constants")) return st;
  if (int st = dev.copy(mem, true, set.base, false, size, "uploading the model's constants")) {
    dev.free(mem);
    return st;
  }
  char *base = static_cast<char *>(mem);
  for (int32_t i = 0; i < desc.num_constants; ++i)
    set.ptrs[i] = base + desc.constants[i].offset;
  set.base = base;
  set.size = size;
  set.owned = base;
  set.device = &dev;
  return KILN_OK;
}

DeviceName deviceName(DLDevice d) {
  DeviceName n;
  switch (deviceTypeOf(d)) {
  case kDLCPU:
    std::snprintf(n.text, sizeof n.text, "cpu");
    break;
  case kDLCUDA:
    std::snprintf(n.text, sizeof n.text, "cuda:%d", d.device_id);
    break;
  case kDLCUDAHost:
    std::snprintf(n.text, sizeof n.text, "cuda_host (pinned host memory)");
    break;
  default:
    std::snprintf(n.text, sizeof n.text, "DLPack device type %d:%d", deviceTypeOf(d), d.device_id);
  }
  return n;
}

} // namespace kiln::rt
