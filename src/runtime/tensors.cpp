// Tensors owned by the runtime (kiln_run_alloc outputs, kiln_alloc_tensor) on the host or on
// a CUDA container's device, and kiln_copy_tensor between the two.
#include "error.h"
#include "run_internal.h"
#include "validate.h"

#include <kiln/runtime.h>

#include <cstdlib>
#include <cstring>

namespace kiln::rt {

namespace {

void freeHost(DLManagedTensor *t) {
  std::free(t->manager_ctx); // the text of a string tensor
  std::free(t->dl_tensor.data);
  std::free(t);
}

// Device tensors keep the plugin's device handle (it lives for the process) in manager_ctx,
// so they stay freeable after their container is destroyed.
void freeDevice(DLManagedTensor *t) {
  if (const kiln_device_plugin_v1 *p = cudaPlugin()) p->mem_free(t->manager_ctx, t->dl_tensor.data);
  std::free(t);
}

} // namespace

void freeManaged(DLManagedTensor *t) {
  if (t && t->deleter) t->deleter(t);
}

// One malloc holds the struct and its shape; data is separate (64-byte aligned on the host,
// 256 on the device). The deleter frees both.
DLManagedTensor *allocManaged(const kiln_container *c, bool onDevice, DLDataType dtype,
                              int32_t ndim, const int64_t *dims) {
  size_t head = sizeof(DLManagedTensor) + sizeof(int64_t) * (ndim > 0 ? ndim : 1);
  auto *t = static_cast<DLManagedTensor *>(std::calloc(1, head));
  if (!t) {
    fail(KILN_ERR_OUT_OF_MEMORY, "out of host memory");
    return nullptr;
  }
  auto *shape = reinterpret_cast<int64_t *>(t + 1);
  if (ndim > 0) std::memcpy(shape, dims, sizeof(int64_t) * ndim);
  size_t bytes = tensorBytes(dtype, ndim, dims);
  if (onDevice) {
    if (c->device->alloc(bytes, &t->dl_tensor.data, "allocating a device tensor")) {
      std::free(t);
      return nullptr;
    }
    t->dl_tensor.device = DLDevice{kDLCUDA, c->device->ordinal};
    t->manager_ctx = c->device->device;
    t->deleter = freeDevice;
  } else {
    size_t rounded = (bytes + 63) / 64 * 64;
    t->dl_tensor.data = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!t->dl_tensor.data) {
      std::free(t);
      fail(KILN_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", bytes);
      return nullptr;
    }
    t->dl_tensor.device = DLDevice{kDLCPU, 0};
    t->manager_ctx = nullptr;
    t->deleter = freeHost;
  }
  t->dl_tensor.ndim = ndim;
  t->dl_tensor.dtype = dtype;
  t->dl_tensor.shape = shape;
  t->dl_tensor.strides = nullptr;
  t->dl_tensor.byte_offset = 0;
  return t;
}

} // namespace kiln::rt

using namespace kiln::rt;

namespace {

// Where a copy endpoint lives: 0 host, 1 the container's device; -1 (error recorded) else.
int placeOf(const kiln_container *c, const DLTensor &t, const char *which) {
  if (deviceTypeOf(t.device) == kDLCPU) return 0;
  if (c->device && c->device->isMine(t.device)) return 1;
  fail(KILN_ERR_DEVICE,
       "kiln_copy_tensor: %s is on %s; this container copies between the host "
       "(cpu) and %s",
       which, deviceName(t.device).text,
       c->device ? deviceName(DLDevice{kDLCUDA, c->device->ordinal}).text : "nothing else");
  return -1;
}

} // namespace

extern "C" {

KILN_RT_API int kiln_rt_alloc_tensor(kiln_container *c, DLDataType dtype, int32_t ndim,
                                     const int64_t *dims, DLManagedTensor **out) {
  clearError();
  const char *fn = "kiln_alloc_tensor";
  if (!c || !out || (ndim > 0 && !dims))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                !c     ? "container"
                : !out ? "out"
                       : "dims");
  *out = nullptr;
  if (ndim < 0) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: ndim is %d", fn, ndim);
  for (int32_t d = 0; d < ndim; ++d)
    if (dims[d] < 0)
      return fail(KILN_ERR_SHAPE_MISMATCH, "%s: dim %d is negative (%lld)", fn, d,
                  static_cast<long long>(dims[d]));
  *out = allocManaged(c, c->device != nullptr, dtype, ndim, dims);
  if (!*out) return KILN_ERR_OUT_OF_MEMORY;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_copy_tensor(kiln_container *c, DLTensor *dst, const DLTensor *src) {
  clearError();
  const char *fn = "kiln_copy_tensor";
  if (!c || !dst || !src)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                !c     ? "container"
                : !dst ? "dst"
                       : "src");
  if (!sameDtype(dst->dtype, src->dtype))
    return fail(KILN_ERR_DTYPE_MISMATCH, "%s: dst is %s, src is %s", fn, dtypeName(dst->dtype).text,
                dtypeName(src->dtype).text);
  if (dst->ndim != src->ndim)
    return fail(KILN_ERR_SHAPE_MISMATCH, "%s: dst has rank %d, src %d", fn, dst->ndim, src->ndim);
  for (int32_t d = 0; d < src->ndim; ++d)
    if (dst->shape[d] != src->shape[d])
      return fail(KILN_ERR_SHAPE_MISMATCH, "%s: dim %d is %lld in dst, %lld in src", fn, d,
                  static_cast<long long>(dst->shape[d]), static_cast<long long>(src->shape[d]));
  if (!isContiguous(*dst) || !isContiguous(*src))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: tensors must be contiguous", fn);
  int dstPlace = placeOf(c, *dst, "dst");
  if (dstPlace < 0) return KILN_ERR_DEVICE;
  int srcPlace = placeOf(c, *src, "src");
  if (srcPlace < 0) return KILN_ERR_DEVICE;
  size_t bytes = tensorBytes(src->dtype, src->ndim, src->shape);
  if (bytes && (!dst->data || !src->data))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: data is NULL", fn);
  char *to = static_cast<char *>(dst->data) + dst->byte_offset;
  const char *from = static_cast<const char *>(src->data) + src->byte_offset;
  if (!dstPlace && !srcPlace) {
    std::memmove(to, from, bytes);
    return KILN_OK;
  }
  return c->device->copy(to, dstPlace, from, srcPlace, bytes, fn);
}

KILN_RT_API void kiln_rt_run_options_init(kiln_run_options *options) {
  if (!options) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
}

} // extern "C"
