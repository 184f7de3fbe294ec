#include "loaded_model.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace kiln::python {

namespace {

const char *bufferName(bool inactive) {
  return inactive ? "inactive" : "active";
}

// Keeps libkiln_rt (and the OpenMP/oneDNN state it holds) loaded for the life of the process:
// unloading it when the last model.so goes away would pull thread pools from under idle
// worker threads. model.so itself is unloaded once nothing references it.
void pinRuntime(void *modelHandle) {
  void *symbol = ::dlsym(modelHandle, "kiln_rt_abi_version");
  Dl_info info{};
  if (!symbol || !::dladdr(symbol, &info) || !info.dli_fname) return;
  ::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

// dlopen returns the library already loaded under the same path even when the file has been
// replaced since (a model recompiled to the same output). True when the mapping that holds
// `symbol` is the file now at `path` (by inode), or when that cannot be told.
bool loadedFileIsCurrent(void *symbol, const std::string &path) {
  struct stat st {};
  Dl_info info{};
  if (!symbol || ::stat(path.c_str(), &st) != 0 || !::dladdr(symbol, &info)) return true;
  auto base = reinterpret_cast<uintptr_t>(info.dli_fbase);
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    // "start-end perms offset dev inode path"
    std::istringstream fields(line);
    std::string range, perms, offset, dev;
    unsigned long long inode = 0;
    fields >> range >> perms >> offset >> dev >> inode;
    size_t dash = range.find('-');
    if (dash == std::string::npos) continue;
    uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
    uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (base >= start && base < end) return inode == static_cast<unsigned long long>(st.st_ino);
  }
  return true;
}

template <typename F> void optionalSymbol(void *handle, F &fn, const char *name) {
  *reinterpret_cast<void **>(&fn) = ::dlsym(handle, name);
}

} // namespace

LoadedModel::LoadedModel(const std::string &path, const LoadOptions &options)
    : device_(options.device) {
  try {
    api_ = kiln::Api::load(path);
  } catch (const kiln::Error &e) {
    // what() is "<status name>: <message>"; Python's exception class already says the status.
    std::string message = e.what(), prefix = kiln::Error::statusName(e.status()) + ": ";
    if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
    throw StatusError(e.status(), message);
  }
  void *handle = api_.library.get();
  if (!loadedFileIsCurrent(reinterpret_cast<void *>(api_.create), path))
    throw StatusError(KILN_ERR_INVALID_STATE,
                      "'" + path +
                          "' was replaced after a model was loaded from it, and that model (or "
                          "one of its outputs) is still alive in this process, so the old "
                          "library would be used; release it first or compile to a new path");
  pinRuntime(handle);
  optionalSymbol(handle, runV2_, "kiln_run_v2");
  optionalSymbol(handle, runAllocV2_, "kiln_run_alloc_v2");
  optionalSymbol(handle, runOptionsInit_, "kiln_run_options_init");
  kiln_container_options opts;
  api_.options_init(&opts);
  opts.num_runners = options.runners;
  opts.threads_per_run = options.threads;
  opts.device = device_.c_str();
  opts.weights_path = options.weights ? options.weights->c_str() : nullptr;
  int status;
  {
    py::gil_scoped_release released; // loading weights / a GPU context can take a while
    status = api_.create(&opts, &container_);
  }
  check(status);
}

LoadedModel::~LoadedModel() {
  if (container_) api_.destroy(container_);
}

void LoadedModel::check(int status) const {
  if (status != KILN_OK) throw StatusError(status, api_.last_error());
}

template <typename F> F LoadedModel::need(F fn, const char *name) const {
  if (!fn)
    throw StatusError(KILN_ERR_VERSION_MISMATCH,
                      std::string("this model.so does not export ") + name +
                          " (built for an older kiln ABI); recompile it");
  return fn;
}

kiln_tensor_info LoadedModel::infoAt(InfoFn info, int32_t index) const {
  kiln_tensor_info ti{};
  ti.struct_size = sizeof ti;
  check(info(container_, index, &ti));
  return ti;
}

py::list LoadedModel::infos(CountFn count, InfoFn info) const {
  int32_t n = 0;
  check(count(container_, &n));
  py::list result;
  for (int32_t i = 0; i < n; ++i) {
    kiln_tensor_info ti = infoAt(info, i);
    py::list dims, ranges;
    for (int32_t d = 0; d < ti.ndim; ++d) {
      if (ti.dims[d] >= 0)
        dims.append(ti.dims[d]);
      else if (ti.dim_names && ti.dim_names[d])
        dims.append(py::str(ti.dim_names[d]));
      else
        dims.append(py::none());
      bool unbounded = ti.dim_max[d] == INT64_MAX;
      ranges.append(py::make_tuple(ti.dim_min[d], unbounded ? py::object(py::none())
                                                            : py::object(py::int_(ti.dim_max[d]))));
    }
    result.append(py::make_tuple(ti.name ? ti.name : "", dtypeName(ti.dtype), py::tuple(dims),
                                 py::tuple(ranges)));
  }
  return result;
}

py::list LoadedModel::constants() const {
  return infos(need(api_.num_constants, "kiln_num_constants"),
               need(api_.constant_info, "kiln_constant_info"));
}

std::vector<BorrowedTensor> LoadedModel::borrowAll(const py::sequence &objects, CountFn count,
                                                   InfoFn info, const char *kind,
                                                   bool writable) const {
  int32_t n = 0;
  check(count(container_, &n));
  if (static_cast<int32_t>(py::len(objects)) != n)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT, "expected " + std::to_string(n) + " " + kind +
                                                     "s, got " + std::to_string(py::len(objects)));
  std::vector<BorrowedTensor> borrowed;
  borrowed.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    std::string what = std::string(kind) + " '" + infoAt(info, i).name + "'";
    borrowed.push_back(BorrowedTensor::borrow(objects[i], what, writable));
  }
  return borrowed;
}

py::list LoadedModel::run(const py::sequence &inputs) {
  std::vector<BorrowedTensor> borrowed =
      borrowAll(inputs, api_.num_inputs, api_.input_info, "input", false);
  std::vector<DLTensor> in;
  for (const BorrowedTensor &b : borrowed)
    in.push_back(b.dl());
  int32_t numOutputs = 0;
  check(api_.num_outputs(container_, &numOutputs));
  std::vector<DLManagedTensor *> raw(numOutputs, nullptr);
  int status;
  std::string message;
  {
    py::gil_scoped_release released;
    if (runAllocV2_ && runOptionsInit_) {
      kiln_run_options options;
      runOptionsInit_(&options);
      options.flags = KILN_RUN_SYNC;
      status = runAllocV2_(container_, &options, in.data(), static_cast<int32_t>(in.size()),
                           raw.data(), numOutputs);
    } else {
      status = api_.run_alloc(container_, in.data(), static_cast<int32_t>(in.size()), raw.data(),
                              numOutputs);
    }
    if (status != KILN_OK) message = api_.last_error(); // thread-local: read it here
  }
  if (status != KILN_OK) throw StatusError(status, message);
  // Own every output before wrapping any, so an exception frees them all.
  std::vector<std::shared_ptr<OwnedOutput>> owned;
  for (DLManagedTensor *t : raw) {
    auto o = std::make_shared<OwnedOutput>();
    o->tensor = t;
    o->library = api_.library;
    owned.push_back(std::move(o));
  }
  py::list result;
  for (auto &o : owned)
    result.append(wrapOutput(o));
  return result;
}

void LoadedModel::runInto(const py::sequence &inputs, const py::sequence &outputs) {
  std::vector<BorrowedTensor> in =
      borrowAll(inputs, api_.num_inputs, api_.input_info, "input", false);
  std::vector<BorrowedTensor> out =
      borrowAll(outputs, api_.num_outputs, api_.output_info, "output", true);
  std::vector<DLTensor> inT, outT;
  for (const BorrowedTensor &b : in)
    inT.push_back(b.dl());
  for (const BorrowedTensor &b : out)
    outT.push_back(b.dl());
  int status;
  std::string message;
  {
    py::gil_scoped_release released;
    if (runV2_ && runOptionsInit_) {
      kiln_run_options options;
      runOptionsInit_(&options);
      options.flags = KILN_RUN_SYNC;
      status = runV2_(container_, &options, inT.data(), static_cast<int32_t>(inT.size()),
                      outT.data(), static_cast<int32_t>(outT.size()));
    } else {
      status = api_.run(container_, inT.data(), static_cast<int32_t>(inT.size()), outT.data(),
                        static_cast<int32_t>(outT.size()));
    }
    if (status != KILN_OK) message = api_.last_error();
  }
  if (status != KILN_OK) throw StatusError(status, message);
}

void LoadedModel::updateConstants(const py::dict &values, bool inactive, bool requireAll) {
  auto update = need(api_.update_constants, "kiln_update_constants");
  std::vector<std::string> names;
  std::vector<BorrowedTensor> borrowed;
  for (auto [key, value] : values) {
    if (!py::isinstance<py::str>(key))
      throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                        "constant names must be str, got " + std::string(py::repr(key)));
    names.push_back(key.cast<std::string>());
    borrowed.push_back(BorrowedTensor::borrow(value, "constant '" + names.back() + "'", false));
  }
  std::vector<const char *> namePtrs;
  std::vector<DLTensor> tensors;
  for (size_t i = 0; i < names.size(); ++i) {
    namePtrs.push_back(names[i].c_str());
    tensors.push_back(borrowed[i].dl());
  }
  int32_t buffer = inactive ? KILN_CONSTANTS_INACTIVE : KILN_CONSTANTS_ACTIVE;
  uint32_t flags = requireAll ? KILN_UPDATE_REQUIRE_ALL : KILN_UPDATE_NONE;
  int status;
  std::string message;
  {
    py::gil_scoped_release released;
    status = update(container_, buffer, namePtrs.data(), tensors.data(),
                    static_cast<int32_t>(tensors.size()), flags);
    if (status != KILN_OK) message = api_.last_error();
  }
  if (status != KILN_OK) throw StatusError(status, message);
}

void LoadedModel::swapConstants() {
  auto swap = need(api_.swap_constants, "kiln_swap_constants");
  int status;
  std::string message;
  {
    py::gil_scoped_release released; // waits for runs still using the old buffer
    status = swap(container_);
    if (status != KILN_OK) message = api_.last_error();
  }
  if (status != KILN_OK) throw StatusError(status, message);
}

void LoadedModel::freeInactiveConstants() {
  auto release = need(api_.free_inactive_constants, "kiln_free_inactive_constants");
  int status;
  std::string message;
  {
    py::gil_scoped_release released;
    status = release(container_);
    if (status != KILN_OK) message = api_.last_error();
  }
  if (status != KILN_OK) throw StatusError(status, message);
}

py::object LoadedModel::readConstant(const std::string &name, bool inactive,
                                     const py::object &out) {
  auto read = need(api_.read_constant, "kiln_read_constant");
  py::object target = out;
  if (target.is_none()) {
    int32_t n = 0;
    check(need(api_.num_constants, "kiln_num_constants")(container_, &n));
    for (int32_t i = 0; i < n && target.is_none(); ++i) {
      kiln_tensor_info ti = infoAt(api_.constant_info, i);
      if (name != ti.name) continue;
      py::object dtype = numpyDtype(ti.dtype);
      if (dtype.is_none())
        throw StatusError(KILN_ERR_UNSUPPORTED, "constant '" + name + "' has dtype " +
                                                    dtypeName(ti.dtype) +
                                                    ", which NumPy lacks; pass out= (e.g. a "
                                                    "torch tensor)");
      std::vector<py::ssize_t> shape(ti.dims, ti.dims + ti.ndim);
      target = emptyArray(dtype, shape);
    }
    // An unknown name falls through to the runtime, whose message says so.
    if (target.is_none()) target = py::array(py::dtype("float32"), std::vector<py::ssize_t>{0});
  }
  BorrowedTensor b = BorrowedTensor::borrow(target, "constant '" + name + "'", true);
  DLTensor t = b.dl();
  int status;
  std::string message;
  {
    py::gil_scoped_release released;
    status = read(container_, inactive ? KILN_CONSTANTS_INACTIVE : KILN_CONSTANTS_ACTIVE,
                  name.c_str(), &t);
    if (status != KILN_OK) message = api_.last_error();
  }
  if (status != KILN_OK)
    throw StatusError(status, message + " (reading the " + bufferName(inactive) + " buffer)");
  return target;
}

} // namespace kiln::python
