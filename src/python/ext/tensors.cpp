#include "tensors.h"

#include <kiln/model.h>

#include <cstring>

namespace kiln::python {

namespace {

constexpr const char *kCapsuleName = "dltensor";
constexpr const char *kUsedCapsuleName = "used_dltensor";

bool isString(DLDataType t) {
  return t.code == kDLOpaqueHandle && t.bits == 64;
}

int64_t numel(const DLTensor &t) {
  int64_t n = 1;
  for (int32_t d = 0; d < t.ndim; ++d)
    n *= t.shape[d];
  return n;
}

// Kind letter and item size → kiln dtype; code 0 bits 0 when kiln has no such dtype.
// NumPy 2 changed the C layout of dtype objects (PyArray_Descr), and pybind11 before 2.12
// reads itemsize from the 1.x layout. Python attributes are right under both.
py::ssize_t itemsizeOf(const py::dtype &dt) {
  return dt.attr("itemsize").cast<py::ssize_t>();
}
char kindOf(const py::dtype &dt) {
  return dt.attr("kind").cast<std::string>().at(0);
}

DLDataType dtypeFromNumpy(const py::dtype &dt) {
  uint8_t bits = static_cast<uint8_t>(itemsizeOf(dt) * 8);
  switch (kindOf(dt)) {
  case 'f':
    return {kDLFloat, bits, 1};
  case 'i':
    return {kDLInt, bits, 1};
  case 'u':
    return {kDLUInt, bits, 1};
  case 'b':
    return {kDLBoolCode, 8, 1};
  case 'c':
    return {kDLComplex, bits, 1};
  }
  return {0, 0, 0};
}

// Frees the tensor of a DLPack capsule nobody consumed (the capsule protocol's rule).
void capsuleDestructor(PyObject *capsule) {
  if (!PyCapsule_IsValid(capsule, kCapsuleName)) return; // consumed: the consumer frees it
  auto *managed = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (managed && managed->deleter) managed->deleter(managed);
}

// Context of a DLManagedTensor exported from a kiln.Tensor: a reference to the output.
struct ExportContext {
  std::shared_ptr<OwnedOutput> output;
  DLManagedTensor managed{};
};

} // namespace

std::string dtypeName(DLDataType t) {
  if (isString(t)) return "string";
  if (t.code == kDLBoolCode && t.bits == 8) return "bool";
  if (t.code == kDLBfloat && t.bits == 16) return "bfloat16";
  const char *base = t.code == kDLFloat     ? "float"
                     : t.code == kDLInt     ? "int"
                     : t.code == kDLUInt    ? "uint"
                     : t.code == kDLComplex ? "complex"
                                            : nullptr;
  if (!base)
    return "dtype(code=" + std::to_string(t.code) + ", bits=" + std::to_string(t.bits) + ")";
  std::string name = base + std::to_string(t.bits);
  return t.lanes == 1 ? name : name + "x" + std::to_string(t.lanes);
}

py::object numpyDtype(DLDataType t) {
  // bfloat16 and the sub-byte types (one element per byte in kiln) have no numpy dtype.
  if (t.lanes != 1 || (t.code == kDLBfloat) || t.bits < 8 || isString(t)) return py::none();
  if (t.code != kDLFloat && t.code != kDLInt && t.code != kDLUInt && t.code != kDLBoolCode &&
      t.code != kDLComplex)
    return py::none();
  return py::dtype(dtypeName(t));
}

BorrowedTensor::BorrowedTensor(BorrowedTensor &&o) noexcept
    : tensor_(o.tensor_), shape_(std::move(o.shape_)), strs_(std::move(o.strs_)),
      utf8_(std::move(o.utf8_)), keep_(std::move(o.keep_)),
      managed_(std::exchange(o.managed_, nullptr)) {
  // The vectors' buffers moved with them, so the pointers into them stay valid.
  o.tensor_ = DLTensor{};
}

BorrowedTensor::~BorrowedTensor() {
  if (managed_ && managed_->deleter) managed_->deleter(managed_);
}

BorrowedTensor BorrowedTensor::borrow(py::handle object, const std::string &what, bool writable) {
  if (py::isinstance<py::array>(object))
    return fromNumpy(py::reinterpret_borrow<py::array>(object), what, writable);
  if (py::hasattr(object, "__dlpack__")) return fromDlpack(object, what);
  if (writable)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      what + ": expected a writable NumPy array or a DLPack tensor, got " +
                          std::string(py::str(py::type::of(object).attr("__name__"))));
  return fromNumpy(py::array::ensure(object), what, writable); // lists, scalars
}

BorrowedTensor BorrowedTensor::fromNumpy(py::array array, const std::string &what, bool writable) {
  if (!array) throw py::error_already_set();
  if (writable && !array.writeable())
    throw StatusError(KILN_ERR_INVALID_ARGUMENT, what + ": the NumPy array is read-only");
  if (!(array.flags() & py::array::c_style)) {
    if (writable)
      throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                        what + ": the NumPy array is not C-contiguous (kiln writes outputs in "
                               "row-major order); pass np.ascontiguousarray(...)");
    array = py::array::ensure(array, py::array::c_style); // a contiguous copy of the input
  }
  py::dtype dt = array.dtype();
  BorrowedTensor b;
  b.shape_.assign(array.shape(), array.shape() + array.ndim());
  b.tensor_.device = DLDevice{kDLCPU, 0};
  b.tensor_.ndim = static_cast<int32_t>(array.ndim());
  b.tensor_.shape = b.shape_.data();
  b.tensor_.data = const_cast<void *>(array.data());
  char kind = kindOf(dt);
  if (kind == 'U' || kind == 'S' || kind == 'O') {
    if (writable)
      throw StatusError(KILN_ERR_UNSUPPORTED,
                        what + ": string outputs are returned by the model, not written into "
                               "caller arrays");
    // Strings cross the C API as one UTF-8 pointer per item (kDLOpaqueHandle, 64 bits).
    py::list items = array.attr("ravel")().attr("tolist")();
    for (py::handle item : items) {
      if (py::isinstance<py::bytes>(item))
        b.utf8_.push_back(item.cast<std::string>());
      else if (py::isinstance<py::str>(item))
        b.utf8_.push_back(item.cast<std::string>());
      else
        throw StatusError(KILN_ERR_DTYPE_MISMATCH,
                          what + ": object arrays must hold str or bytes items");
    }
    for (const std::string &s : b.utf8_)
      b.strs_.push_back(s.c_str());
    b.tensor_.dtype = DLDataType{kDLOpaqueHandle, 64, 1};
    b.tensor_.data = b.strs_.data();
    b.keep_ = array;
    return b;
  }
  if (dt.attr("byteorder").cast<std::string>() == ">")
    throw StatusError(KILN_ERR_DTYPE_MISMATCH, what + ": big-endian arrays are not supported");
  b.tensor_.dtype = dtypeFromNumpy(dt);
  if (b.tensor_.dtype.bits == 0)
    throw StatusError(KILN_ERR_DTYPE_MISMATCH,
                      what + ": NumPy dtype " + std::string(py::str(dt)) + " has no kiln dtype");
  b.keep_ = array;
  return b;
}

BorrowedTensor BorrowedTensor::fromDlpack(py::handle object, const std::string &what) {
  // CUDA producers: stream 1 (the legacy default stream) is the one kiln runs on from Python,
  // so the producer makes it wait for the tensor's pending work.
  py::object stream = py::none();
  if (py::hasattr(object, "__dlpack_device__")) {
    py::tuple device = object.attr("__dlpack_device__")();
    if (device[0].cast<int>() == kDLCUDA) stream = py::int_(1);
  }
  py::object capsule = stream.is_none() ? object.attr("__dlpack__")()
                                        : object.attr("__dlpack__")(py::arg("stream") = stream);
  if (!PyCapsule_IsValid(capsule.ptr(), kCapsuleName))
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      what + ": __dlpack__ did not return an unconsumed DLPack capsule");
  auto *managed = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
  // Consume it: from now on this object calls the deleter, not the capsule.
  PyCapsule_SetName(capsule.ptr(), kUsedCapsuleName);
  BorrowedTensor b;
  b.managed_ = managed;
  b.tensor_ = managed->dl_tensor;
  b.keep_ = py::reinterpret_borrow<py::object>(object);
  return b;
}

OwnedOutput::~OwnedOutput() {
  if (tensor && tensor->deleter) tensor->deleter(tensor);
}

py::object wrapOutput(std::shared_ptr<OwnedOutput> output) {
  const DLTensor &t = output->tensor->dl_tensor;
  std::vector<py::ssize_t> shape(t.shape, t.shape + t.ndim);
  if (isString(t.dtype) && t.device.device_type == kDLCPU) {
    // Strings are copied: the runtime owns its char buffers, NumPy wants its own objects.
    py::array strings = emptyArray(py::dtype("O"), shape);
    auto *items = static_cast<const char *const *>(t.data);
    py::list values;
    for (int64_t i = 0, n = numel(t); i < n; ++i)
      values.append(py::str(items[i] ? items[i] : ""));
    py::object flat = strings.attr("reshape")(-1);
    flat[py::slice(0, numel(t), 1)] = values;
    return strings;
  }
  py::object dtype = numpyDtype(t.dtype);
  if (t.device.device_type != kDLCPU || dtype.is_none()) return py::cast(Tensor(output));
  // The array's base owns the output, so the runtime's memory lives as long as any view.
  auto *holder = new std::shared_ptr<OwnedOutput>(output);
  py::capsule base(holder, [](void *p) { delete static_cast<std::shared_ptr<OwnedOutput> *>(p); });
  char *data = static_cast<char *>(t.data) + t.byte_offset;
  return py::array(py::reinterpret_borrow<py::dtype>(dtype), shape,
                   rowMajorStrides(shape, (t.dtype.bits * t.dtype.lanes + 7) / 8), data, base);
}

std::vector<py::ssize_t> rowMajorStrides(const std::vector<py::ssize_t> &shape,
                                         py::ssize_t elemBytes) {
  // Given explicitly: pybind11 before 2.12 derives default strides from the dtype's C layout,
  // which NumPy 2 changed (see itemsizeOf).
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t step = elemBytes;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = step;
    step *= shape[d];
  }
  return strides;
}

py::array emptyArray(const py::object &dtype, const std::vector<py::ssize_t> &shape) {
  py::dtype dt = py::reinterpret_borrow<py::dtype>(dtype);
  return py::array(dt, shape, rowMajorStrides(shape, itemsizeOf(dt)));
}

py::capsule Tensor::dlpack(py::object stream) const {
  // Outputs are complete when the run returns (Python runs are synchronous), so a consumer
  // stream needs no extra ordering.
  auto *ctx = new ExportContext{output_, {}};
  ctx->managed.dl_tensor = output_->tensor->dl_tensor;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = [](DLManagedTensor *self) {
    delete static_cast<ExportContext *>(self->manager_ctx);
  };
  PyObject *capsule = PyCapsule_New(&ctx->managed, kCapsuleName, capsuleDestructor);
  if (!capsule) {
    delete ctx;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

py::tuple Tensor::dlpackDevice() const {
  const DLDevice &d = output_->tensor->dl_tensor.device;
  return py::make_tuple(static_cast<int>(d.device_type), d.device_id);
}

py::tuple Tensor::shape() const {
  const DLTensor &t = output_->tensor->dl_tensor;
  py::tuple shape(t.ndim);
  for (int32_t d = 0; d < t.ndim; ++d)
    shape[d] = t.shape[d];
  return shape;
}

std::string Tensor::dtype() const {
  return dtypeName(output_->tensor->dl_tensor.dtype);
}

std::string Tensor::device() const {
  const DLDevice &d = output_->tensor->dl_tensor.device;
  if (d.device_type == kDLCPU) return "cpu";
  if (d.device_type == kDLCUDA) return "cuda:" + std::to_string(d.device_id);
  return "device_type " + std::to_string(d.device_type) + ":" + std::to_string(d.device_id);
}

py::object Tensor::numpy() const {
  const DLTensor &t = output_->tensor->dl_tensor;
  if (t.device.device_type != kDLCPU)
    throw StatusError(KILN_ERR_DEVICE, "this tensor is on " + device() +
                                           "; NumPy arrays live on the CPU (copy it with torch)");
  if (numpyDtype(t.dtype).is_none())
    throw StatusError(KILN_ERR_UNSUPPORTED,
                      "NumPy has no dtype " + dtype() + "; use torch.from_dlpack(tensor)");
  return wrapOutput(output_);
}

} // namespace kiln::python
