// kiln.hpp: header-only C++17 RAII convenience over model.h for C++ hosts.
//
// Nothing here crosses the ABI: it calls the C functions of a model.so (linked directly, or
// through a table filled by dlsym: see Api) and turns statuses into kiln::Error exceptions
// carrying the status and the thread's last-error message.
//
//   kiln::Model m;                                  // model.so linked into the host
//   kiln::Model m(kiln::Api::load("./model.so"));   // or dlopen'ed
//   std::vector<float> x(16), y(16);
//   m.run({kiln::TensorView(x.data(), {16})}, {kiln::TensorView(y.data(), {16})});
//   auto outs = m.run_alloc({...});                 // kiln::OwnedTensor (DLManagedTensor)
//   m.update_constants({{"w", kiln::TensorView(w.data(), {64, 3, 3, 3})}}, kiln::Inactive);
//   m.swap_constants();
#pragma once

#include <kiln/model.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

namespace kiln {

// A kiln_status and its message.
class Error : public std::runtime_error {
public:
  Error(int status, const std::string &message)
      : std::runtime_error(statusName(status) + ": " + message), status_(status) {}
  int status() const noexcept { return status_; }

  static std::string statusName(int s) {
    switch (s) {
    case KILN_OK:
      return "KILN_OK";
    case KILN_ERR_INVALID_ARGUMENT:
      return "KILN_ERR_INVALID_ARGUMENT";
    case KILN_ERR_SHAPE_MISMATCH:
      return "KILN_ERR_SHAPE_MISMATCH";
    case KILN_ERR_DTYPE_MISMATCH:
      return "KILN_ERR_DTYPE_MISMATCH";
    case KILN_ERR_DEVICE:
      return "KILN_ERR_DEVICE";
    case KILN_ERR_OUT_OF_MEMORY:
      return "KILN_ERR_OUT_OF_MEMORY";
    case KILN_ERR_VERSION_MISMATCH:
      return "KILN_ERR_VERSION_MISMATCH";
    case KILN_ERR_NOT_FOUND:
      return "KILN_ERR_NOT_FOUND";
    case KILN_ERR_UNSUPPORTED:
      return "KILN_ERR_UNSUPPORTED";
    case KILN_ERR_INTERNAL:
      return "KILN_ERR_INTERNAL";
    case KILN_ERR_INVALID_STATE:
      return "KILN_ERR_INVALID_STATE";
    }
    return "kiln status " + std::to_string(s);
  }

private:
  int status_;
};

// The model.h functions of one model.so. Api::linked() uses the symbols the host links
// against; Api::load(path) dlopens a model.so (kept open while any copy of the Api lives).
struct Api {
  void (*options_init)(kiln_container_options *) = nullptr;
  const char *(*last_error)(void) = nullptr;
  uint32_t (*abi_version)(void) = nullptr;
  int (*create)(const kiln_container_options *, kiln_container **) = nullptr;
  int (*destroy)(kiln_container *) = nullptr;
  int (*num_inputs)(const kiln_container *, int32_t *) = nullptr;
  int (*num_outputs)(const kiln_container *, int32_t *) = nullptr;
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *) = nullptr;
  int (*output_info)(const kiln_container *, int32_t, kiln_tensor_info *) = nullptr;
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t) = nullptr;
  int (*output_dims)(kiln_container *, const DLTensor *, int32_t, int64_t *const *) = nullptr;
  int (*run_alloc)(kiln_container *, const DLTensor *, int32_t, DLManagedTensor **,
                   int32_t) = nullptr;
  // ABI 2 (nullptr for a model.so built against ABI 1).
  int (*run_minimal)(kiln_container *, void *const *, void *const *) = nullptr;
  int (*num_constants)(const kiln_container *, int32_t *) = nullptr;
  int (*constant_info)(const kiln_container *, int32_t, kiln_tensor_info *) = nullptr;
  int (*update_constants)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                          uint32_t) = nullptr;
  int (*swap_constants)(kiln_container *) = nullptr;
  int (*free_inactive_constants)(kiln_container *) = nullptr;
  int (*read_constant)(kiln_container *, int32_t, const char *, DLTensor *) = nullptr;
  std::shared_ptr<void> library; // the dlopen handle, when loaded

#ifndef KILN_HPP_NO_LINKED
  // The model.h symbols linked into the host (define KILN_HPP_NO_LINKED to use load only).
  static Api linked() {
    Api a;
    a.options_init = ::kiln_container_options_init;
    a.last_error = ::kiln_last_error;
    a.abi_version = ::kiln_abi_version;
    a.create = ::kiln_container_create;
    a.destroy = ::kiln_container_destroy;
    a.num_inputs = ::kiln_num_inputs;
    a.num_outputs = ::kiln_num_outputs;
    a.input_info = ::kiln_input_info;
    a.output_info = ::kiln_output_info;
    a.run = ::kiln_run;
    a.output_dims = ::kiln_output_dims;
    a.run_alloc = ::kiln_run_alloc;
    a.run_minimal = ::kiln_run_minimal;
    a.num_constants = ::kiln_num_constants;
    a.constant_info = ::kiln_constant_info;
    a.update_constants = ::kiln_update_constants;
    a.swap_constants = ::kiln_swap_constants;
    a.free_inactive_constants = ::kiln_free_inactive_constants;
    a.read_constant = ::kiln_read_constant;
    return a;
  }
#endif

#if defined(__unix__) || defined(__APPLE__)
  static Api load(const std::string &path) {
    void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char *e = ::dlerror();
      throw Error(KILN_ERR_NOT_FOUND, "cannot load " + path + ": " + (e ? e : "dlopen failed"));
    }
    Api a;
    a.library = std::shared_ptr<void>(h, [](void *p) { ::dlclose(p); });
    auto sym = [&](auto &fn, const char *name, bool required) {
      *reinterpret_cast<void **>(&fn) = ::dlsym(h, name);
      if (!fn && required) throw Error(KILN_ERR_NOT_FOUND, path + " does not export " + name);
    };
    sym(a.options_init, "kiln_container_options_init", true);
    sym(a.last_error, "kiln_last_error", true);
    sym(a.abi_version, "kiln_abi_version", true);
    sym(a.create, "kiln_container_create", true);
    sym(a.destroy, "kiln_container_destroy", true);
    sym(a.num_inputs, "kiln_num_inputs", true);
    sym(a.num_outputs, "kiln_num_outputs", true);
    sym(a.input_info, "kiln_input_info", true);
    sym(a.output_info, "kiln_output_info", true);
    sym(a.run, "kiln_run", true);
    sym(a.output_dims, "kiln_output_dims", true);
    sym(a.run_alloc, "kiln_run_alloc", true);
    sym(a.run_minimal, "kiln_run_minimal", false);
    sym(a.num_constants, "kiln_num_constants", false);
    sym(a.constant_info, "kiln_constant_info", false);
    sym(a.update_constants, "kiln_update_constants", false);
    sym(a.swap_constants, "kiln_swap_constants", false);
    sym(a.free_inactive_constants, "kiln_free_inactive_constants", false);
    sym(a.read_constant, "kiln_read_constant", false);
    return a;
  }
#endif
};

// A non-owning view of contiguous CPU data as a DLTensor (shape stored inline).
class TensorView {
public:
  TensorView(void *data, std::vector<int64_t> shape, DLDataType dtype) : shape_(std::move(shape)) {
    t_ = DLTensor{};
    t_.data = data;
    t_.device = DLDevice{kDLCPU, 0};
    t_.dtype = dtype;
    t_.ndim = static_cast<int32_t>(shape_.size());
    t_.shape = shape_.data();
  }
  TensorView(float *data, std::vector<int64_t> shape)
      : TensorView(data, std::move(shape), DLDataType{kDLFloat, 32, 1}) {}
  TensorView(const float *data, std::vector<int64_t> shape)
      : TensorView(const_cast<float *>(data), std::move(shape)) {}
  TensorView(int64_t *data, std::vector<int64_t> shape)
      : TensorView(data, std::move(shape), DLDataType{kDLInt, 64, 1}) {}
  TensorView(const TensorView &o) : TensorView(o.t_.data, o.shape_, o.t_.dtype) {}
  TensorView &operator=(const TensorView &o) {
    shape_ = o.shape_;
    t_ = o.t_;
    t_.shape = shape_.data();
    return *this;
  }

  const DLTensor &dl() const { return t_; }
  void *data() const { return t_.data; }
  const std::vector<int64_t> &shape() const { return shape_; }

private:
  std::vector<int64_t> shape_;
  DLTensor t_;
};

// An output allocated by the runtime (kiln_run_alloc); calls the deleter when destroyed.
class OwnedTensor {
public:
  explicit OwnedTensor(DLManagedTensor *t = nullptr) : t_(t) {}
  OwnedTensor(OwnedTensor &&o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  OwnedTensor &operator=(OwnedTensor &&o) noexcept {
    reset();
    t_ = std::exchange(o.t_, nullptr);
    return *this;
  }
  OwnedTensor(const OwnedTensor &) = delete;
  OwnedTensor &operator=(const OwnedTensor &) = delete;
  ~OwnedTensor() { reset(); }

  const DLTensor &dl() const { return t_->dl_tensor; }
  template <typename T> T *data() const { return static_cast<T *>(t_->dl_tensor.data); }
  std::vector<int64_t> shape() const {
    return {t_->dl_tensor.shape, t_->dl_tensor.shape + t_->dl_tensor.ndim};
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int32_t d = 0; d < t_->dl_tensor.ndim; ++d)
      n *= t_->dl_tensor.shape[d];
    return n;
  }
  // Gives up ownership (the caller must call the deleter).
  DLManagedTensor *release() { return std::exchange(t_, nullptr); }

private:
  void reset() {
    if (t_ && t_->deleter) t_->deleter(t_);
    t_ = nullptr;
  }
  DLManagedTensor *t_;
};

// Introspection result (strings and arrays owned by the container).
struct TensorInfo {
  std::string name;
  DLDataType dtype;
  std::vector<int64_t> dims; // -1 where symbolic
  std::vector<const char *> dim_names;
  std::vector<int64_t> dim_min, dim_max;
};

enum Buffer : int32_t { Active = KILN_CONSTANTS_ACTIVE, Inactive = KILN_CONSTANTS_INACTIVE };

struct Options {
  int32_t num_runners = 0;     // 0 = one per hardware thread
  int32_t threads_per_run = 0; // 0 = all hardware threads
  std::string device = "cpu";
  std::string weights_path; // empty = embedded weights
};

// A container: create on construction, destroy on destruction; movable, not copyable.
// Every method may be called from many threads at once (the container is thread-safe).
class Model {
public:
#ifndef KILN_HPP_NO_LINKED
  explicit Model(const Options &o = Options()) : Model(Api::linked(), o) {}
#endif
  explicit Model(Api api, const Options &o = Options()) : api_(std::move(api)) {
    kiln_container_options opts;
    api_.options_init(&opts);
    opts.num_runners = o.num_runners;
    opts.threads_per_run = o.threads_per_run;
    opts.device = o.device.c_str();
    opts.weights_path = o.weights_path.empty() ? nullptr : o.weights_path.c_str();
    check(api_.create(&opts, &c_));
  }
  Model(Model &&o) noexcept : api_(std::move(o.api_)), c_(std::exchange(o.c_, nullptr)) {}
  Model &operator=(Model &&o) noexcept {
    if (this != &o) {
      if (c_) api_.destroy(c_);
      api_ = std::move(o.api_);
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;
  ~Model() {
    if (c_) api_.destroy(c_);
  }

  kiln_container *handle() const {
    return c_;
  }
  const Api &api() const {
    return api_;
  }

  int32_t num_inputs() const {
    return count(api_.num_inputs);
  }
  int32_t num_outputs() const {
    return count(api_.num_outputs);
  }
  int32_t num_constants() const {
    return count(need(api_.num_constants, "kiln_num_constants"));
  }
  TensorInfo input_info(int32_t i) const {
    return info(api_.input_info, i);
  }
  TensorInfo output_info(int32_t i) const {
    return info(api_.output_info, i);
  }
  TensorInfo constant_info(int32_t i) const {
    return info(need(api_.constant_info, "kiln_constant_info"), i);
  }

  // Caller-allocated outputs.
  void run(const std::vector<TensorView> &inputs, const std::vector<TensorView> &outputs) {
    std::vector<DLTensor> in = dl(inputs), out = dl(outputs);
    check(api_.run(c_, in.data(), int32_t(in.size()), out.data(), int32_t(out.size())));
  }

  // Runtime-allocated outputs.
  std::vector<OwnedTensor> run_alloc(const std::vector<TensorView> &inputs) {
    std::vector<DLTensor> in = dl(inputs);
    std::vector<DLManagedTensor *> raw(static_cast<size_t>(num_outputs()), nullptr);
    check(api_.run_alloc(c_, in.data(), int32_t(in.size()), raw.data(), int32_t(raw.size())));
    std::vector<OwnedTensor> out;
    out.reserve(raw.size());
    for (DLManagedTensor *t : raw)
      out.emplace_back(t);
    return out;
  }

  // Static-shape CPU models: raw pointers, no checks beyond NULL, no allocation.
  void run_minimal(void *const *inputs, void *const *outputs) {
    check(need(api_.run_minimal, "kiln_run_minimal")(c_, inputs, outputs));
  }

  std::vector<std::vector<int64_t>> output_dims(const std::vector<TensorView> &inputs) {
    std::vector<DLTensor> in = dl(inputs);
    int32_t n = num_outputs();
    std::vector<std::vector<int64_t>> dims(static_cast<size_t>(n));
    std::vector<int64_t *> ptrs(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      dims[i].resize(output_info(i).dims.size());
      ptrs[i] = dims[i].data();
    }
    check(api_.output_dims(c_, in.data(), int32_t(in.size()), ptrs.data()));
    return dims;
  }

  void update_constants(const std::vector<std::pair<std::string, TensorView>> &values,
                        Buffer buffer = Inactive, bool require_all = false) {
    std::vector<const char *> names;
    std::vector<DLTensor> tensors;
    for (const auto &[name, view] : values) {
      names.push_back(name.c_str());
      tensors.push_back(view.dl());
    }
    check(need(api_.update_constants, "kiln_update_constants")(
        c_, buffer, names.data(), tensors.data(), int32_t(names.size()),
        require_all ? KILN_UPDATE_REQUIRE_ALL : KILN_UPDATE_NONE));
  }
  void swap_constants() {
    check(need(api_.swap_constants, "kiln_swap_constants")(c_));
  }
  void free_inactive_constants() {
    check(need(api_.free_inactive_constants, "kiln_free_inactive_constants")(c_));
  }
  void read_constant(const std::string &name, const TensorView &out, Buffer buffer = Active) {
    DLTensor t = out.dl();
    check(need(api_.read_constant, "kiln_read_constant")(c_, buffer, name.c_str(), &t));
  }

private:
  void check(int st) const {
    if (st != KILN_OK) throw Error(st, api_.last_error());
  }
  template <typename F> F need(F f, const char *name) const {
    if (!f)
      throw Error(KILN_ERR_UNSUPPORTED,
                  std::string(name) + " needs a model.so built for kiln ABI 2");
    return f;
  }
  int32_t count(int (*fn)(const kiln_container *, int32_t *)) const {
    int32_t n = 0;
    check(fn(c_, &n));
    return n;
  }
  TensorInfo info(int (*fn)(const kiln_container *, int32_t, kiln_tensor_info *), int32_t i) const {
    kiln_tensor_info ti{};
    ti.struct_size = sizeof ti;
    check(fn(c_, i, &ti));
    TensorInfo r;
    r.name = ti.name ? ti.name : "";
    r.dtype = ti.dtype;
    r.dims.assign(ti.dims, ti.dims + ti.ndim);
    r.dim_names.assign(ti.dim_names, ti.dim_names + ti.ndim);
    r.dim_min.assign(ti.dim_min, ti.dim_min + ti.ndim);
    r.dim_max.assign(ti.dim_max, ti.dim_max + ti.ndim);
    return r;
  }
  static std::vector<DLTensor> dl(const std::vector<TensorView> &v) {
    std::vector<DLTensor> r;
    r.reserve(v.size());
    for (const TensorView &t : v)
      r.push_back(t.dl());
    return r;
  }

  Api api_;
  kiln_container *c_ = nullptr;
};

} // namespace kiln
