// A compiled model.so opened by the kiln command (run, bench, inspect): dlopen with checks
// that name the problem (an ONNX file, a directory, not a kiln model), the model.h
// functions looked up with dlsym, and the descriptor read without creating a container.
#pragma once

#include "kiln/model.h"
#include "kiln/model_desc.h"

#include <string>
#include <vector>

namespace kiln::cli {

// The model.h functions the kiln command uses.
#define KILN_CLI_FUNCTIONS(X)                                                                      \
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

// ABI-4 functions (GPU runs); older models lack them.
#define KILN_CLI_OPTIONAL_FUNCTIONS(X)                                                             \
  X(kiln_alloc_tensor)                                                                             \
  X(kiln_copy_tensor)                                                                              \
  X(kiln_set_profiler)

/// Fails with a message naming `path` when it is missing, a directory, or an
/// ONNX model where a compiled model.so is wanted.
void requireModelLibrary(const std::string &path);

struct ModelLib {
  std::string path;
  void *handle = nullptr;
#define KILN_FN(name) decltype(&::name) name = nullptr;
  KILN_CLI_FUNCTIONS(KILN_FN)
  KILN_CLI_OPTIONAL_FUNCTIONS(KILN_FN)
#undef KILN_FN
  const kiln_model_desc_v1 *(*kiln_model_descriptor)() = nullptr;
  // Why the embedded weights did not load, or NULL (model.so files since session 27).
  const char *(*kiln_model_weights_error)() = nullptr;

  explicit ModelLib(const std::string &path);
  ModelLib(const ModelLib &) = delete;
  ModelLib &operator=(const ModelLib &) = delete;

  /// The descriptor; nullptr for a model without one (not built by kiln).
  const kiln_model_desc_v1 *descriptor() const;
  /// The device the model was compiled for ("cpu" when the descriptor says nothing).
  std::string modelDevice() const;
  /// A descriptor field appended after ABI 4, or nullptr/0 when the model predates it.
  const char *cpuIsa() const;
  std::string summary() const; // "cpu, built for native (znver3)" / "cuda (sm_90), host ..."
  /// Fails with `what` and the model's message unless st is KILN_OK.
  void check(int st, const char *what) const;
};

/// A container with the command's options; runtime messages that name C fields are
/// reworded with the CLI flags (`--threads`, `--weights`, `--device`).
struct ContainerOptions {
  std::string device;  // empty: the model's own
  std::string weights; // empty: <model>.weights when it exists, else embedded
  int threads = 0;     // 0: the cores this process may use
  int runners = 1;
};
kiln_container *createContainer(const ModelLib &lib, const ContainerOptions &o);

/// The number of CPUs this process may run on (its affinity mask).
int availableCpus();

/// "[batch=1..64, 3, 224, 224]": an input's dims with names and ranges.
std::string describeDims(const kiln_tensor_info &info);
std::string dtypeText(const DLDataType &t);

} // namespace kiln::cli
