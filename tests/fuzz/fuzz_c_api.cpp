// Fuzz target 3: the C API of compiled models (model.h) driven by the input bytes: container
// options (sizes, runner counts, device strings, weights paths, reserved fields), runs with
// random shapes, dtypes, strides, byte offsets, null pointers and device codes, constant
// updates with wrong names, dtypes, sizes and counts, swaps, frees, reads and introspection
// with bad indices. Every call must return a status; a crash or sanitizer report is a finding.
// Buffers are always as large as the tensor they claim to be, so any out-of-bounds access is
// the runtime's. The models are the compat corpus's dynamic.so (symbolic batch 1..64) and
// constants.so; the runtime is this tree's instrumented libkiln_rt.
#include <kiln/model.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>
#include <vector>

#ifndef KILN_FUZZ_RT
#error "KILN_FUZZ_RT (this tree's libkiln_rt.so) must be defined by the build"
#endif
#ifndef KILN_FUZZ_COMPAT_DIR
#error "KILN_FUZZ_COMPAT_DIR must be defined by the build"
#endif

namespace {

struct Api {
  void (*options_init)(kiln_container_options *);
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*constant_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_dims)(kiln_container *, const DLTensor *, int32_t, int64_t *const *);
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
  int (*run_alloc)(kiln_container *, const DLTensor *, int32_t, DLManagedTensor **, int32_t);
  int (*update)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                uint32_t);
  int (*swap)(kiln_container *);
  int (*free_inactive)(kiln_container *);
  int (*read_constant)(kiln_container *, int32_t, const char *, DLTensor *);
};

Api load(const char *model) {
  static void *rt = dlopen(KILN_FUZZ_RT, RTLD_NOW | RTLD_GLOBAL);
  if (!rt) std::abort();
  std::string path = std::string(KILN_FUZZ_COMPAT_DIR) + "/" + model;
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) std::abort();
  Api a{};
#define SYM(f, n) *(void **)&a.f = dlsym(h, n)
  SYM(options_init, "kiln_container_options_init");
  SYM(create, "kiln_container_create");
  SYM(destroy, "kiln_container_destroy");
  SYM(input_info, "kiln_input_info");
  SYM(constant_info, "kiln_constant_info");
  SYM(output_dims, "kiln_output_dims");
  SYM(run, "kiln_run");
  SYM(run_alloc, "kiln_run_alloc");
  SYM(update, "kiln_update_constants");
  SYM(swap, "kiln_swap_constants");
  SYM(free_inactive, "kiln_free_inactive_constants");
  SYM(read_constant, "kiln_read_constant");
#undef SYM
  return a;
}

struct Bytes {
  const uint8_t *p;
  size_t n;
  uint8_t u8() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int64_t pick(std::initializer_list<int64_t> v) { return v.begin()[u8() % v.size()]; }
};

/// Tensors whose buffers cover every element their shape, strides and offset claim.
struct Arena {
  std::vector<std::vector<int64_t>> shapes, strides;
  std::vector<std::vector<uint8_t>> buffers;

  DLTensor tensor(Bytes &in) {
    DLTensor t{};
    t.ndim = static_cast<int32_t>(in.pick({0, 1, 2, 2, 2, 3, -1, 9}));
    t.dtype.code = static_cast<uint8_t>(in.pick({kDLFloat, kDLFloat, kDLInt, kDLUInt, 6, 99}));
    t.dtype.bits = static_cast<uint8_t>(in.pick({32, 32, 64, 16, 8, 0, 7}));
    t.dtype.lanes = static_cast<uint16_t>(in.pick({1, 1, 1, 0, 4}));
    t.device.device_type = static_cast<DLDeviceType>(in.pick({kDLCPU, kDLCPU, kDLCUDA, 0, 77}));
    t.device.device_id = static_cast<int32_t>(in.pick({0, 0, 1, -1}));
    int nd = t.ndim > 0 && t.ndim <= 8 ? t.ndim : 0;
    std::vector<int64_t> shape(nd + 1), stride(nd + 1);
    int64_t extent = 1; // elements the buffer must hold
    for (int d = 0; d < nd; ++d)
      shape[d] = in.pick({1, 2, 3, 4, 5, 6, 7, 64, 65, 0, -1, int64_t{1} << 40, INT64_MAX});
    bool strided = in.u8() % 4 == 0;
    for (int d = nd - 1; d >= 0; --d) {
      // Contiguous strides of huge shapes saturate (the harness must not overflow itself;
      // kiln has to refuse such tensors, which it sees either way).
      int64_t contiguous = 1;
      if (d < nd - 1 && __builtin_mul_overflow(stride[d + 1], shape[d + 1], &contiguous))
        contiguous = INT64_MAX;
      stride[d] = strided ? in.pick({0, 1, 2, 7, -1}) : contiguous;
    }
    bool sane = true;
    for (int d = 0; d < nd; ++d) {
      if (shape[d] < 0 || shape[d] > 4096 || stride[d] < 0 || stride[d] > 4096)
        sane = false;
      else if (shape[d] > 0)
        extent += (shape[d] - 1) * stride[d];
      if (shape[d] == 0) extent = 0;
    }
    size_t elemBytes = 8 * (t.dtype.lanes ? t.dtype.lanes : 1);
    t.byte_offset = static_cast<uint64_t>(in.pick({0, 0, 0, 4, 64}));
    size_t bytes = sane ? static_cast<size_t>(extent) * elemBytes + t.byte_offset + 64 : 64;
    if (bytes > (1 << 22)) bytes = 64;
    buffers.emplace_back(bytes, static_cast<uint8_t>(in.u8()));
    shapes.push_back(shape);
    strides.push_back(stride);
    t.data = in.u8() % 16 == 0 ? nullptr : buffers.back().data();
    t.shape = in.u8() % 16 == 0 ? nullptr : shapes.back().data();
    t.strides = strided ? strides.back().data() : nullptr;
    return t;
  }
};

const char *deviceString(Bytes &in) {
  static const char *const kDevices[] = {
      nullptr, "cpu", "cpu", "cuda",    "cuda:7",
      "cpu:1", "",    "tpu", "cuda:-1", "cuda:99999999999999999999"};
  return kDevices[in.u8() % (sizeof kDevices / sizeof *kDevices)];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Api models[2] = {load("dynamic.so"), load("constants.so")};
  static const std::string weights = std::string(KILN_FUZZ_COMPAT_DIR) + "/external.so.weights";
  Bytes in{data, size};
  Api &a = models[in.u8() % 2];
  kiln_container_options o;
  a.options_init(&o);
  o.struct_size =
      static_cast<size_t>(in.pick({static_cast<int64_t>(sizeof o), static_cast<int64_t>(sizeof o),
                                   0, 8, static_cast<int64_t>(sizeof o) + 8}));
  o.num_runners = static_cast<int32_t>(in.pick({1, 2, 0, -1, 1000000}));
  o.threads_per_run = static_cast<int32_t>(in.pick({1, 1, 0, -3}));
  o.device = deviceString(in);
  int w = in.u8() % 8;
  o.weights_path = w == 0 ? "/nonexistent/weights" : w == 1 ? weights.c_str() : nullptr;
  o.flags = in.u8() % 8 == 0 ? in.u8() : 0;
  if (in.u8() % 8 == 0) o.reserved[in.u8() % 7] = in.u8();
  kiln_container *c = nullptr;
  if (a.create(in.u8() % 16 ? &o : nullptr, &c) != KILN_OK) c = nullptr;
  Arena arena;
  std::vector<DLManagedTensor *> allocated(4, nullptr);
  for (int step = 0; step < 24 && in.n; ++step) {
    kiln_container *target = in.u8() % 32 == 0 ? nullptr : c;
    int op = in.u8() % 9;
    int32_t count = static_cast<int32_t>(in.pick({1, 1, 0, 2, -1, 3}));
    std::vector<DLTensor> ts, outs;
    for (int i = 0; i < 3; ++i) {
      ts.push_back(arena.tensor(in));
      outs.push_back(arena.tensor(in));
    }
    const DLTensor *tsp = in.u8() % 16 ? ts.data() : nullptr;
    DLTensor *outp = in.u8() % 16 ? outs.data() : nullptr;
    switch (op) {
    case 0:
      a.run(target, tsp, count, outp, static_cast<int32_t>(in.pick({1, 1, 0, 2, -1})));
      break;
    case 1: {
      int32_t n = static_cast<int32_t>(in.pick({1, 1, 0, 4, -1}));
      std::fill(allocated.begin(), allocated.end(), nullptr);
      if (a.run_alloc(target, tsp, count, in.u8() % 16 ? allocated.data() : nullptr, n) == KILN_OK)
        for (DLManagedTensor *m : allocated)
          if (m && m->deleter) m->deleter(m);
      break;
    }
    case 2: {
      static const char *const kNames[] = {"W", "B", "GW", "", "W\n", "nonexistent"};
      const char *names[3] = {kNames[in.u8() % 6], kNames[in.u8() % 6],
                              in.u8() % 8 ? kNames[in.u8() % 6] : nullptr};
      a.update(target, static_cast<int32_t>(in.pick({1, 0, 2, -5})), in.u8() % 16 ? names : nullptr,
               tsp, count, static_cast<uint32_t>(in.pick({0, 1, 2, 0x80000000})));
      break;
    }
    case 3:
      a.swap(target);
      break;
    case 4:
      a.free_inactive(target);
      break;
    case 5:
      a.read_constant(target, static_cast<int32_t>(in.pick({0, 1, 2})), in.u8() % 8 ? "W" : "nope",
                      outp);
      break;
    case 6: {
      int64_t d0[8] = {}, d1[8] = {};
      int64_t *dims[2] = {d0, d1};
      a.output_dims(target, tsp, count, in.u8() % 16 ? dims : nullptr);
      break;
    }
    case 7: {
      kiln_tensor_info info{};
      info.struct_size = static_cast<size_t>(in.pick({sizeof info, sizeof info, 0, 4}));
      int32_t index = static_cast<int32_t>(in.pick({0, 1, -1, 1 << 30}));
      (in.u8() % 2 ? a.input_info : a.constant_info)(target, index, in.u8() % 16 ? &info : nullptr);
      break;
    }
    default:
      if (c) a.destroy(c);
      c = nullptr;
      if (a.create(&o, &c) != KILN_OK) c = nullptr;
      break;
    }
  }
  if (c) a.destroy(c);
  return 0;
}
