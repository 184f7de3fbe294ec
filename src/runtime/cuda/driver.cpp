// Loads the driver once per process. model.so and libkiln_rt never link libcuda, so a
// machine without a driver fails here with a message, not in the dynamic loader.
#include "driver.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace kiln::rt::cuda {

namespace {

// The driver API version whose function variants we ask for: CUDA 12.0, so any driver from
// 12.0 on serves the plugin (all functions used here have the same ABI since then).
constexpr int kApiVersion = 12000;

struct Loaded {
  Driver drv;
  const Driver *ok = nullptr;
  char why[768] = "";
};

using GetProcAddress = CUresult (*)(const char *, void **, int, cuuint64_t,
                                    CUdriverProcAddressQueryResult *);

void load(Loaded &l) {
  const char *mock = std::getenv("KILN_CUDA_DRIVER_MOCK");
  const char *path = mock && *mock ? mock : "libcuda.so.1";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::snprintf(l.why, sizeof l.why,
                  "cannot load the CUDA driver (%s): %s; is the NVIDIA driver installed?", path,
                  dlerror());
    return;
  }
  auto get = reinterpret_cast<GetProcAddress>(dlsym(lib, "cuGetProcAddress_v2"));
  if (!get) {
    std::snprintf(l.why, sizeof l.why,
                  "the CUDA driver %s has no cuGetProcAddress_v2; kiln needs a driver for CUDA "
                  "12.0 or newer",
                  path);
    return;
  }
  const char *missing = nullptr;
#define KILN_CU_LOAD(name)                                                                         \
  {                                                                                                \
    void *p = nullptr;                                                                             \
    CUdriverProcAddressQueryResult q{};                                                            \
    if (get(#name, &p, kApiVersion, CU_GET_PROC_ADDRESS_DEFAULT, &q) != CUDA_SUCCESS || !p) {      \
      if (!missing) missing = #name;                                                               \
    } else {                                                                                       \
      l.drv.name = reinterpret_cast<decltype(l.drv.name)>(p);                                      \
    }                                                                                              \
  }
  KILN_CU_FUNCTIONS(KILN_CU_LOAD)
#undef KILN_CU_LOAD
  if (missing) {
    std::snprintf(l.why, sizeof l.why,
                  "the CUDA driver %s lacks %s (needs a driver for CUDA 12.0 or newer)", path,
                  missing);
    return;
  }
  CUresult r = l.drv.cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char *text = nullptr;
    l.drv.cuGetErrorString(r, &text);
    std::snprintf(l.why, sizeof l.why, "cuInit failed (%d: %s); no usable NVIDIA GPU or driver",
                  static_cast<int>(r), text ? text : "unknown error");
    return;
  }
  l.ok = &l.drv;
}

Loaded &loaded() {
  static Loaded l;
  static std::once_flag once;
  std::call_once(once, [] { load(l); });
  return l;
}

} // namespace

const Driver *driver(const char **why) {
  Loaded &l = loaded();
  if (why) *why = l.why;
  return l.ok;
}

const char *errorText(CUresult r) {
  const Driver *d = loaded().ok;
  const char *text = nullptr;
  if (d && d->cuGetErrorString(r, &text) == CUDA_SUCCESS && text) return text;
  return "unknown CUDA error";
}

} // namespace kiln::rt::cuda
