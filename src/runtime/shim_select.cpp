// Level-3 shims for ops whose output size depends on the data: NonZero, Unique and
// NonMaxSuppression. Each writes compactly for the actual size and reports it in *count;
// the generated code binds that count to a symbol for the kernels that follow.
//
// Sequential on purpose: these ops select a data-dependent subset (a compaction), are rare
// and small in the models kiln targets, and a single pass keeps their order deterministic.
#include "error.h"

#include <kiln/model.h>
#include <kiln/prelude.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

namespace kiln::rt {
namespace {

// Three-way comparison of two slices of a [outer, n, inner] tensor of T.
template <typename T> struct SliceOrder {
  const T *x;
  int64_t outer, n, inner;
  int compare(int64_t a, int64_t b) const {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        T va = x[(o * n + a) * inner + i], vb = x[(o * n + b) * inner + i];
        if (va < vb) return -1;
        if (vb < va) return 1;
      }
    return 0;
  }
};

template <typename T>
void uniqueSlices(const T *x, const int64_t *dims, bool sorted, T *y, int64_t *firstIndex,
                  int64_t *inverse, int64_t *counts, int64_t *count) {
  SliceOrder<T> ord{x, dims[0], dims[1], dims[2]};
  int64_t n = dims[1];
  // Slices sorted (stable, so equal slices keep input order and the first is the first).
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return ord.compare(a, b) < 0; });
  std::vector<int64_t> groupOf(n), firsts, sizes;
  for (int64_t k = 0; k < n; ++k) {
    if (k == 0 || ord.compare(order[k - 1], order[k]) != 0) {
      firsts.push_back(order[k]);
      sizes.push_back(0);
    }
    groupOf[order[k]] = static_cast<int64_t>(firsts.size()) - 1;
    ++sizes.back();
  }
  int64_t u = static_cast<int64_t>(firsts.size());
  // Output position of each group: sorted order, or order of first occurrence.
  std::vector<int64_t> pos(u);
  std::iota(pos.begin(), pos.end(), 0);
  if (!sorted) {
    std::vector<int64_t> byFirst(u);
    std::iota(byFirst.begin(), byFirst.end(), 0);
    std::sort(byFirst.begin(), byFirst.end(),
              [&](int64_t a, int64_t b) { return firsts[a] < firsts[b]; });
    for (int64_t p = 0; p < u; ++p)
      pos[byFirst[p]] = p;
  }
  for (int64_t g = 0; g < u; ++g) {
    int64_t p = pos[g];
    if (firstIndex) firstIndex[p] = firsts[g];
    if (counts) counts[p] = sizes[g];
    if (y)
      for (int64_t o = 0; o < dims[0]; ++o)
        std::memcpy(y + (o * u + p) * dims[2], x + (o * n + firsts[g]) * dims[2],
                    sizeof(T) * dims[2]);
  }
  if (inverse)
    for (int64_t j = 0; j < n; ++j)
      inverse[j] = pos[groupOf[j]];
  *count = u;
}

struct Box {
  float y1, x1, y2, x2;
};

Box cornerBox(const float *b, bool center) {
  if (center) {
    float cx = b[0], cy = b[1], w = b[2], h = b[3];
    return {cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

float iou(const Box &a, const Box &b) {
  float ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  float iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (ih <= 0 || iw <= 0) return 0;
  float inter = ih * iw;
  float areaA = (a.y2 - a.y1) * (a.x2 - a.x1), areaB = (b.y2 - b.y1) * (b.x2 - b.x1);
  float uni = areaA + areaB - inter;
  return uni > 0 ? inter / uni : 0;
}

} // namespace
} // namespace kiln::rt

using namespace kiln::rt;

extern "C" {

KILN_RT_API int kiln_shim_nonzero_v1(kiln_shim_ctx *, int64_t, const uint8_t *mask,
                                     const int64_t *dims, int32_t rank, int64_t *y,
                                     int64_t *count) {
  const char *fn = "kiln_shim_nonzero_v1";
  if (rank < 0 || rank > 32 || (rank > 0 && !dims) || !count)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: rank %d or NULL dims/count", fn, rank);
  int64_t n = 1;
  for (int32_t d = 0; d < rank; ++d)
    n *= dims[d];
  if (n > 0 && (!mask || (rank > 0 && !y)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL mask or output", fn);
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i)
    c += mask[i] != 0;
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!mask[i]) continue;
    int64_t rest = i;
    for (int32_t d = rank - 1; d >= 0; --d) {
      y[d * c + k] = rest % dims[d];
      rest /= dims[d];
    }
    ++k;
  }
  *count = c;
  return KILN_OK;
}

KILN_RT_API int kiln_shim_unique_v1(kiln_shim_ctx *, int64_t, int32_t elem_type, int32_t elem_size,
                                    const void *x, const int64_t *dims, int32_t sorted, void *y,
                                    int64_t *first_index, int64_t *inverse, int64_t *counts,
                                    int64_t *count) {
  const char *fn = "kiln_shim_unique_v1";
  if (!dims || !count || dims[0] < 0 || dims[1] < 0 || dims[2] < 0)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative dims", fn);
  if (dims[0] * dims[1] * dims[2] > 0 && !x)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL input", fn);
  bool s = sorted != 0;
#define KILN_UNIQUE_CASE(code, T)                                                                  \
  case code:                                                                                       \
    if (elem_size != sizeof(T)) break;                                                             \
    uniqueSlices(static_cast<const T *>(x), dims, s, static_cast<T *>(y), first_index, inverse,    \
                 counts, count);                                                                   \
    return KILN_OK;
  switch (elem_type) {
    KILN_UNIQUE_CASE(KILN_ELEM_F32, float)
    KILN_UNIQUE_CASE(KILN_ELEM_F64, double)
    KILN_UNIQUE_CASE(KILN_ELEM_I8, int8_t)
    KILN_UNIQUE_CASE(KILN_ELEM_I16, int16_t)
    KILN_UNIQUE_CASE(KILN_ELEM_I32, int32_t)
    KILN_UNIQUE_CASE(KILN_ELEM_I64, int64_t)
    KILN_UNIQUE_CASE(KILN_ELEM_U8, uint8_t)
    KILN_UNIQUE_CASE(KILN_ELEM_U16, uint16_t)
    KILN_UNIQUE_CASE(KILN_ELEM_U32, uint32_t)
    KILN_UNIQUE_CASE(KILN_ELEM_U64, uint64_t)
    KILN_UNIQUE_CASE(KILN_ELEM_BOOL, uint8_t)
  default:
    break;
  }
#undef KILN_UNIQUE_CASE
  return fail(KILN_ERR_UNSUPPORTED, "%s: element type %d of size %d is not supported", fn,
              elem_type, elem_size);
}

KILN_RT_API int kiln_shim_nms_v1(kiln_shim_ctx *, int64_t, const float *boxes, const float *scores,
                                 const int64_t *dims, const int64_t *max_per_class,
                                 const float *iou_threshold, const float *score_threshold,
                                 int32_t center_point_box, int64_t *selected, int64_t *count) {
  const char *fn = "kiln_shim_nms_v1";
  if (!dims || !count || dims[0] < 0 || dims[1] < 0 || dims[2] < 0)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL or negative dims", fn);
  int64_t B = dims[0], C = dims[1], N = dims[2];
  if (B * C * N > 0 && (!boxes || !scores || !selected))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL boxes, scores or output", fn);
  int64_t limit = max_per_class ? std::max<int64_t>(*max_per_class, 0) : 0;
  float iouMax = iou_threshold ? *iou_threshold : 0.f;
  int64_t c = 0;
  std::vector<int64_t> order(N);
  std::vector<Box> kept;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < C; ++k) {
      const float *sc = scores + (b * C + k) * N;
      order.clear();
      for (int64_t i = 0; i < N; ++i)
        if (!score_threshold || sc[i] > *score_threshold) order.push_back(i);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t p, int64_t q) { return sc[p] > sc[q]; });
      kept.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= limit) break;
        Box bx = cornerBox(boxes + (b * N + i) * 4, center_point_box != 0);
        bool suppressed = std::any_of(kept.begin(), kept.end(),
                                      [&](const Box &o) { return iou(bx, o) > iouMax; });
        if (suppressed) continue;
        kept.push_back(bx);
        selected[c * 3 + 0] = b;
        selected[c * 3 + 1] = k;
        selected[c * 3 + 2] = i;
        ++c;
      }
    }
  *count = c;
  return KILN_OK;
}

} // extern "C"
