// One dlopen'ed model.so and one kiln container over it, as the extension's `_Model`.
// Every method is safe from many Python threads at once: runs release the GIL and the
// container itself is thread-safe (model.h).
#pragma once

#include "tensors.h"

#define KILN_HPP_NO_LINKED
#include <kiln/kiln.hpp>

#include <optional>
#include <string>

namespace kiln::python {

struct LoadOptions {
  std::string device = "cpu";
  int runners = 0; // 0 = the runtime's default
  int threads = 0;
  std::optional<std::string> weights; // external weights file
};

class LoadedModel {
public:
  LoadedModel(const std::string &path, const LoadOptions &options);
  ~LoadedModel();
  LoadedModel(const LoadedModel &) = delete;
  LoadedModel &operator=(const LoadedModel &) = delete;

  // [(name, dtype, dims, ranges)]: dims hold an int (static), the symbol's name, or None
  // (derived from symbols); ranges hold (min, max), max None when unknown.
  py::list inputs() const { return infos(api_.num_inputs, api_.input_info); }
  py::list outputs() const { return infos(api_.num_outputs, api_.output_info); }
  py::list constants() const;
  std::string device() const { return device_; }
  uint32_t abiVersion() const { return api_.abi_version(); }

  // Inputs in model order; returns the outputs in model order (runtime-allocated).
  py::list run(const py::sequence &inputs);
  // Writes into caller-allocated outputs (NumPy arrays or DLPack tensors, e.g. torch).
  void runInto(const py::sequence &inputs, const py::sequence &outputs);

  void updateConstants(const py::dict &values, bool inactive, bool requireAll);
  void swapConstants();
  void freeInactiveConstants();
  // Into out when given (any writable tensor), else into a new NumPy array.
  py::object readConstant(const std::string &name, bool inactive, const py::object &out);

private:
  using CountFn = int (*)(const kiln_container *, int32_t *);
  using InfoFn = int (*)(const kiln_container *, int32_t, kiln_tensor_info *);

  py::list infos(CountFn count, InfoFn info) const;
  kiln_tensor_info infoAt(InfoFn info, int32_t index) const;
  std::vector<BorrowedTensor> borrowAll(const py::sequence &objects, CountFn count, InfoFn info,
                                        const char *kind, bool writable) const;
  void check(int status) const; // throws StatusError with the thread's last error
  template <typename F> F need(F fn, const char *name) const;

  kiln::Api api_;
  std::string device_;
  kiln_container *container_ = nullptr;
  // ABI 4 (nullptr for older model.so files): runs on the legacy default stream, synchronous.
  int (*runV2_)(kiln_container *, const kiln_run_options *, const DLTensor *, int32_t, DLTensor *,
                int32_t) = nullptr;
  int (*runAllocV2_)(kiln_container *, const kiln_run_options *, const DLTensor *, int32_t,
                     DLManagedTensor **, int32_t) = nullptr;
  void (*runOptionsInit_)(kiln_run_options *) = nullptr;
};

} // namespace kiln::python
