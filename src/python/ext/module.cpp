// kiln._kiln: the compiled half of the Python package. Python code (kiln/model.py) wraps
// `_Model` with argument handling; this module only crosses the C API.
#include "loaded_model.h"
#include "tensors.h"

#include <pybind11/stl.h>

namespace py = pybind11;
using namespace kiln::python;

namespace {

// Raises kiln.errors' class for the status (a KilnError subclass) with kiln's message.
void raiseStatus(int status, const char *message) {
  py::object make = py::module_::import("kiln.errors").attr("_from_status");
  py::object error = make(status, message);
  PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(error.ptr())), error.ptr());
}

} // namespace

PYBIND11_MODULE(_kiln, m) {
  m.doc() = "kiln's C API binding (use the kiln package, not this module)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError &e) {
      raiseStatus(e.status(), e.what());
    }
  });

  py::class_<Tensor>(m, "Tensor",
                     "A tensor kiln allocated (a CUDA output, or a dtype NumPy lacks). Zero-copy "
                     "DLPack producer: torch.from_dlpack(t).")
      .def("__dlpack__", &Tensor::dlpack, py::arg("stream") = py::none())
      .def("__dlpack_device__", &Tensor::dlpackDevice)
      .def_property_readonly("shape", &Tensor::shape)
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", &Tensor::device)
      .def("numpy", &Tensor::numpy, "A NumPy view without a copy (CPU tensors only)")
      .def("__repr__", [](const Tensor &t) {
        return "kiln.Tensor(shape=" + std::string(py::str(t.shape())) + ", dtype=" + t.dtype() +
               ", device=" + t.device() + ")";
      });

  py::class_<LoadedModel>(m, "_Model")
      .def(py::init([](const std::string &path, const std::string &device, int runners, int threads,
                       std::optional<std::string> weights) {
             LoadOptions o;
             o.device = device;
             o.runners = runners;
             o.threads = threads;
             o.weights = std::move(weights);
             return std::make_unique<LoadedModel>(path, o);
           }),
           py::arg("path"), py::arg("device"), py::arg("runners"), py::arg("threads"),
           py::arg("weights"))
      .def("inputs", &LoadedModel::inputs)
      .def("outputs", &LoadedModel::outputs)
      .def("constants", &LoadedModel::constants)
      .def_property_readonly("device", &LoadedModel::device)
      .def_property_readonly("abi_version", &LoadedModel::abiVersion)
      .def("run", &LoadedModel::run)
      .def("run_into", &LoadedModel::runInto)
      .def("update_constants", &LoadedModel::updateConstants)
      .def("swap_constants", &LoadedModel::swapConstants)
      .def("free_inactive_constants", &LoadedModel::freeInactiveConstants)
      .def("read_constant", &LoadedModel::readConstant);

  // Test hook: the data pointer kiln would read for this object as an input (zero-copy checks).
  m.def("_input_data_ptr", [](py::handle object) {
    BorrowedTensor b = BorrowedTensor::borrow(object, "object", false);
    return reinterpret_cast<uintptr_t>(static_cast<char *>(b.dl().data) + b.dl().byte_offset);
  });
}
