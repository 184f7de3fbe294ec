// Tensors crossing between Python and the kiln C API: borrowing a NumPy array or any DLPack
// producer as a DLTensor (no copy), and handing runtime-allocated outputs back to Python as
// NumPy arrays or DLPack producers that own the runtime's memory (no copy either).
#pragma once

#include "status_error.h"

#include <dlpack/dlpack.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

namespace kiln::python {

namespace py = pybind11;

// DLPack 0.6 (Debian's libdlpack-dev) predates kDLBool; kiln uses its later value for ONNX bool.
inline constexpr uint8_t kDLBoolCode = 6;

// "float32", "int64", "bool", "bfloat16", "string", ... (the names NumPy and torch use).
std::string dtypeName(DLDataType dtype);

// A Python object viewed as a DLTensor for the duration of one call. Keeps the object (or the
// DLPack capsule taken from it) alive; a consumed capsule's deleter runs on destruction.
class BorrowedTensor {
public:
  BorrowedTensor() = default;
  BorrowedTensor(BorrowedTensor &&o) noexcept;
  BorrowedTensor &operator=(BorrowedTensor &&) = delete;
  BorrowedTensor(const BorrowedTensor &) = delete;
  ~BorrowedTensor();

  const DLTensor &dl() const { return tensor_; }

  // what names the tensor in errors ("input 'x'"). writable: the tensor will be written
  // (caller-allocated outputs, constant reads). NumPy arrays that are not C-contiguous are
  // copied (inputs only); DLPack producers are used as they are.
  static BorrowedTensor borrow(py::handle object, const std::string &what, bool writable);

private:
  static BorrowedTensor fromNumpy(py::array array, const std::string &what, bool writable);
  static BorrowedTensor fromDlpack(py::handle object, const std::string &what);

  DLTensor tensor_{};
  std::vector<int64_t> shape_;         // NumPy path: shape in elements (tensor_.shape points here)
  std::vector<const char *> strs_;     // NumPy string arrays: one UTF-8 pointer per item
  std::vector<std::string> utf8_;      // ... and the bytes they point at
  py::object keep_;                    // the array or the capsule
  DLManagedTensor *managed_ = nullptr; // a consumed DLPack capsule's tensor
};

// A runtime-allocated output (kiln_run_alloc) and the library whose deleter frees it.
struct OwnedOutput {
  DLManagedTensor *tensor = nullptr;
  std::shared_ptr<void> library; // model.so stays loaded while its memory is referenced
  ~OwnedOutput();
};

// Wraps an output for Python: a NumPy array over the runtime's memory for CPU tensors of
// dtypes NumPy has, a kiln.Tensor (DLPack producer) otherwise, a NumPy str array for strings.
py::object wrapOutput(std::shared_ptr<OwnedOutput> output);

/// Row-major byte strides, and an uninitialised C-contiguous array; both independent of the
/// NumPy C layout (NumPy 1 and 2 alike).
std::vector<py::ssize_t> rowMajorStrides(const std::vector<py::ssize_t> &shape,
                                         py::ssize_t elemBytes);
py::array emptyArray(const py::object &dtype, const std::vector<py::ssize_t> &shape);

// A DLPack producer over runtime memory (CUDA outputs, bfloat16): __dlpack__,
// __dlpack_device__, shape, dtype.
class Tensor {
public:
  explicit Tensor(std::shared_ptr<OwnedOutput> output) : output_(std::move(output)) {}
  py::capsule dlpack(py::object stream) const;
  py::tuple dlpackDevice() const;
  py::tuple shape() const;
  std::string dtype() const;
  std::string device() const;
  py::object numpy() const; // zero-copy NumPy view (CPU, NumPy dtypes only)

private:
  std::shared_ptr<OwnedOutput> output_;
};

// NumPy dtype for a kiln dtype; none() when NumPy has no equivalent (bfloat16).
py::object numpyDtype(DLDataType dtype);

} // namespace kiln::python
