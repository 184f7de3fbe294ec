// Loads a compiled model.so and creates (then destroys) one container through the model's own
// C API: what a host program does first. Shared by the CPU-check tests.
#pragma once

#include <kiln/model.h>

#include <dlfcn.h>

#include <stdexcept>
#include <string>

namespace kiln::test {

/// kiln_container_create's status for the model at `path` (default options). The library
/// stays loaded: a refused model's error text lives there.
inline int containerCreateStatus(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) throw std::runtime_error(std::string("dlopen: ") + dlerror());
  auto create = reinterpret_cast<int (*)(const kiln_container_options *, kiln_container **)>(
      dlsym(lib, "kiln_container_create"));
  auto destroy = reinterpret_cast<int (*)(kiln_container *)>(dlsym(lib, "kiln_container_destroy"));
  if (!create || !destroy) throw std::runtime_error(std::string(path) + " lacks the model API");
  kiln_container *container = nullptr;
  const int status = create(nullptr, &container);
  if (container) destroy(container);
  return status;
}

} // namespace kiln::test
