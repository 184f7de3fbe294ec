// kiln_shim_scatter_elements_v1 and kiln_shim_scatter_nd_v1: ONNX ScatterElements and
// ScatterND for every element type, with none/add/mul/min/max reduction.
//
// Plain loops: scatter is memory-bound and rare in the models kiln targets; updates are
// applied in row-major order on one thread so duplicate indices give deterministic results.
#include "error.h"

#include <kiln/model.h>
#include <kiln/prelude.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kiln::rt {
namespace {

// Half and bfloat16 values are reduced in float and rounded back (nearest-even).
// Conversions shared with generated code (kiln/prelude.h), so scatter rounds as kernels do.
float halfToFloat(uint16_t h) {
  return kiln_h2f(h);
}
uint16_t floatToHalf(float f) {
  return kiln_f2h(f);
}
float bf16ToFloat(uint16_t b) {
  return kiln_bf2f(b);
}
uint16_t floatToBf16(float f) {
  return kiln_f2bf(f);
}

template <typename T> T reduce(int32_t r, T a, T b) {
  switch (r) {
  case KILN_REDUCE_ADD:
    return (T)(a + b);
  case KILN_REDUCE_MUL:
    return (T)(a * b);
  case KILN_REDUCE_MIN:
    return std::min(a, b);
  case KILN_REDUCE_MAX:
    return std::max(a, b);
  default:
    return b;
  }
}

// dst = reduce(dst, src) for one element of type et.
template <int ET> struct Elem;
#define KILN_ELEM_NATIVE(code, T)                                                                  \
  template <> struct Elem<code> {                                                                  \
    static void apply(int32_t r, void *dst, const void *src) {                                     \
      T a, b;                                                                                      \
      std::memcpy(&a, dst, sizeof a);                                                              \
      std::memcpy(&b, src, sizeof b);                                                              \
      a = reduce<T>(r, a, b);                                                                      \
      std::memcpy(dst, &a, sizeof a);                                                              \
    }                                                                                              \
  };
KILN_ELEM_NATIVE(KILN_ELEM_F32, float)
KILN_ELEM_NATIVE(KILN_ELEM_F64, double)
KILN_ELEM_NATIVE(KILN_ELEM_I8, int8_t)
KILN_ELEM_NATIVE(KILN_ELEM_I16, int16_t)
KILN_ELEM_NATIVE(KILN_ELEM_I32, int32_t)
KILN_ELEM_NATIVE(KILN_ELEM_I64, int64_t)
KILN_ELEM_NATIVE(KILN_ELEM_U8, uint8_t)
KILN_ELEM_NATIVE(KILN_ELEM_U16, uint16_t)
KILN_ELEM_NATIVE(KILN_ELEM_U32, uint32_t)
KILN_ELEM_NATIVE(KILN_ELEM_U64, uint64_t)
#undef KILN_ELEM_NATIVE
template <> struct Elem<KILN_ELEM_BOOL> {
  static void apply(int32_t r, void *dst, const void *src) {
    uint8_t a = *static_cast<uint8_t *>(dst) != 0, b = *static_cast<const uint8_t *>(src) != 0;
    // add = or, mul = and, min = and, max = or
    uint8_t v = r == KILN_REDUCE_ADD || r == KILN_REDUCE_MAX   ? (a | b)
                : r == KILN_REDUCE_MUL || r == KILN_REDUCE_MIN ? (a & b)
                                                               : b;
    *static_cast<uint8_t *>(dst) = v;
  }
};
template <uint16_t (*FromF)(float), float (*ToF)(uint16_t)> struct Elem16 {
  static void apply(int32_t r, void *dst, const void *src) {
    uint16_t a, b;
    std::memcpy(&a, dst, 2);
    std::memcpy(&b, src, 2);
    a = FromF(reduce<float>(r, ToF(a), ToF(b)));
    std::memcpy(dst, &a, 2);
  }
};
template <> struct Elem<KILN_ELEM_F16> : Elem16<floatToHalf, halfToFloat> {};
template <> struct Elem<KILN_ELEM_BF16> : Elem16<floatToBf16, bf16ToFloat> {};

using ApplyFn = void (*)(int32_t, void *, const void *);

struct ElemInfo {
  ApplyFn apply;
  int32_t size;
};

bool elemInfo(int32_t et, ElemInfo &info) {
  switch (et) {
#define KILN_CASE(code, sz)                                                                        \
  case code:                                                                                       \
    info = {Elem<code>::apply, sz};                                                                \
    return true;
    KILN_CASE(KILN_ELEM_F32, 4)
    KILN_CASE(KILN_ELEM_F64, 8)
    KILN_CASE(KILN_ELEM_F16, 2)
    KILN_CASE(KILN_ELEM_BF16, 2)
    KILN_CASE(KILN_ELEM_I8, 1)
    KILN_CASE(KILN_ELEM_I16, 2)
    KILN_CASE(KILN_ELEM_I32, 4)
    KILN_CASE(KILN_ELEM_I64, 8)
    KILN_CASE(KILN_ELEM_U8, 1)
    KILN_CASE(KILN_ELEM_U16, 2)
    KILN_CASE(KILN_ELEM_U32, 4)
    KILN_CASE(KILN_ELEM_U64, 8)
    KILN_CASE(KILN_ELEM_BOOL, 1)
#undef KILN_CASE
  }
  return false;
}

int checkCommon(const char *fn, int32_t et, int32_t elemSize, int32_t reduction, ElemInfo &info) {
  if (!elemInfo(et, info))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: unknown element type %d", fn, et);
  if (elemSize != info.size)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: elem_size %d does not match element type %d (%d)",
                fn, elemSize, et, info.size);
  if (reduction < KILN_REDUCE_NONE || reduction > KILN_REDUCE_MAX)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: unknown reduction %d", fn, reduction);
  return KILN_OK;
}

int64_t product(const int64_t *dims, int32_t n) {
  int64_t p = 1;
  for (int32_t i = 0; i < n; ++i)
    p *= dims[i];
  return p;
}

// out = data unless they are the same buffer.
void copyIn(const void *data, void *out, size_t bytes) {
  if (out != data && bytes) std::memmove(out, data, bytes);
}

} // namespace
} // namespace kiln::rt

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_scatter_elements_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type,
                                              int32_t elem_size, const void *data,
                                              const int64_t *data_dims, int32_t rank,
                                              const int64_t *indices, const int64_t *indices_dims,
                                              const void *updates, int32_t axis, int32_t reduction,
                                              void *out) {
  const char *fn = "kiln_shim_scatter_elements_v1";
  ElemInfo info;
  if (int st = checkCommon(fn, elem_type, elem_size, reduction, info)) return st;
  if (rank < 1 || rank > 32 || !data_dims || !indices_dims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: rank %d or NULL dims", fn, rank);
  if (axis < -rank || axis >= rank)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: axis %d out of range for rank %d", fn, axis, rank);
  if (axis < 0) axis += rank;
  for (int32_t d = 0; d < rank; ++d)
    if (indices_dims[d] < 0 || data_dims[d] < 0 || (d != axis && indices_dims[d] > data_dims[d]))
      return fail(KILN_ERR_INVALID_ARGUMENT, "%s: indices dim %d is %lld but data dim %d is %lld",
                  fn, d, (long long)indices_dims[d], d, (long long)data_dims[d]);
  int64_t nData = product(data_dims, rank), nIdx = product(indices_dims, rank);
  if ((nData && (!data || !out)) || (nIdx && (!indices || !updates)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL tensor", fn);
  // Check every index before writing anything.
  int64_t axisDim = data_dims[axis];
  for (int64_t i = 0; i < nIdx; ++i)
    if (indices[i] < -axisDim || indices[i] >= axisDim)
      return fail(KILN_ERR_INVALID_ARGUMENT,
                  "%s: index %lld at flat position %lld is out of range [-%lld, %lld] for axis %d",
                  fn, (long long)indices[i], (long long)i, (long long)axisDim,
                  (long long)axisDim - 1, axis);
  copyIn(data, out, (size_t)nData * elem_size);
  if (!nIdx) return KILN_OK;

  int64_t dataStride[32], pos[32] = {};
  dataStride[rank - 1] = 1;
  for (int32_t d = rank - 2; d >= 0; --d)
    dataStride[d] = dataStride[d + 1] * data_dims[d + 1];
  char *o = static_cast<char *>(out);
  const char *u = static_cast<const char *>(updates);
  for (int64_t i = 0; i < nIdx; ++i) {
    int64_t idx = indices[i] < 0 ? indices[i] + axisDim : indices[i];
    int64_t off = 0;
    for (int32_t d = 0; d < rank; ++d)
      off += (d == axis ? idx : pos[d]) * dataStride[d];
    info.apply(reduction, o + off * elem_size, u + i * elem_size);
    for (int32_t d = rank - 1; d >= 0; --d) { // next position in indices
      if (++pos[d] < indices_dims[d]) break;
      pos[d] = 0;
    }
  }
  return KILN_OK;
}

KILN_RT_API int kiln_shim_scatter_nd_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type,
                                        int32_t elem_size, const void *data,
                                        const int64_t *data_dims, int32_t data_rank,
                                        const int64_t *indices, const int64_t *indices_dims,
                                        int32_t indices_rank, const void *updates,
                                        int32_t reduction, void *out) {
  const char *fn = "kiln_shim_scatter_nd_v1";
  ElemInfo info;
  if (int st = checkCommon(fn, elem_type, elem_size, reduction, info)) return st;
  if (data_rank < 1 || indices_rank < 1 || !data_dims || !indices_dims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: data rank %d, indices rank %d or NULL dims", fn,
                data_rank, indices_rank);
  int64_t k = indices_dims[indices_rank - 1];
  if (k < 1 || k > data_rank)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "%s: last indices dim is %lld; it must be in [1, data rank %d]", fn, (long long)k,
                data_rank);
  int64_t nData = product(data_dims, data_rank);
  int64_t nTuples = product(indices_dims, indices_rank - 1);
  int64_t slice = product(data_dims + k, data_rank - (int32_t)k);
  if ((nData && (!data || !out)) || (nTuples && (!indices || (slice && !updates))))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL tensor", fn);
  for (int64_t t = 0; t < nTuples; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t v = indices[t * k + j], dim = data_dims[j];
      if (v < -dim || v >= dim)
        return fail(KILN_ERR_INVALID_ARGUMENT,
                    "%s: index tuple %lld, component %lld is %lld, out of range [-%lld, %lld]", fn,
                    (long long)t, (long long)j, (long long)v, (long long)dim, (long long)dim - 1);
    }
  copyIn(data, out, (size_t)nData * elem_size);

  char *o = static_cast<char *>(out);
  const char *u = static_cast<const char *>(updates);
  size_t sliceBytes = (size_t)slice * elem_size;
  for (int64_t t = 0; t < nTuples; ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t v = indices[t * k + j];
      off = off * data_dims[j] + (v < 0 ? v + data_dims[j] : v);
    }
    char *dst = o + off * sliceBytes;
    const char *src = u + t * sliceBytes;
    if (reduction == KILN_REDUCE_NONE) {
      std::memcpy(dst, src, sliceBytes);
      continue;
    }
    for (int64_t e = 0; e < slice; ++e)
      info.apply(reduction, dst + e * elem_size, src + e * elem_size);
  }
  return KILN_OK;
}

} // extern "C"
