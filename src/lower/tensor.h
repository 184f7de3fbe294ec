// A lowered tensor: dtype, symbolic shape and a loader that yields the element at a
// multi-index as a value expression. Pointwise ops compose loaders (vertical fusion
// by inlining); views remap indices; only `realize` materialises a buffer.
#pragma once

#include "loop/program.h"

#include <functional>
#include <optional>

namespace kiln::lower {

using Index = std::vector<sym::Expr>;
using Loader = std::function<loop::VRef(const Index &)>;

struct LTensor {
  DType dtype = DType::Float32;
  ir::Shape shape;
  Loader load;
  loop::Buffer *buffer = nullptr; // set when this is exactly a contiguous buffer
  bool cheap = false;             // a view or constant: free to recompute per use
  // Set when this N,C,spatial... tensor is exactly a channels-last buffer (physical
  // N,spatial...,C), so convs can consume and produce it without conversion.
  loop::Buffer *channelsLast = nullptr;
  int rank() const { return static_cast<int>(shape.size()); }
};

using loop::linearIndex; // row-major offset of idx in shape
/// Inverse: the multi-index of linear offset `flat` in shape.
Index unravel(sym::Context &ctx, sym::Expr flat, const ir::Shape &shape);
using loop::product; // product of dims [begin, end)

LTensor fromBuffer(sym::Context &ctx, loop::Buffer *b);
/// A tensor of at most one dim whose elements are known sym expressions (shape values):
/// element k reads as `vals[k]`; a run-time index selects among them.
LTensor symbolicVector(sym::Context &ctx, DType t, const ir::Shape &shape,
                       std::vector<sym::Expr> vals);

/// Physical shape of a channels-last buffer for logical shape N,C,spatial...
ir::Shape channelsLastShape(const ir::Shape &logical);
/// The logical N,C,spatial... view of a channels-last buffer.
LTensor fromChannelsLastBuffer(sym::Context &ctx, loop::Buffer *b, const ir::Shape &logical);
/// Same data viewed with a new shape of equal element count (reshape semantics).
LTensor reshapeView(sym::Context &ctx, const LTensor &t, const ir::Shape &shape);
/// How an index of an output dim `out` moves in an operand dim `own` broadcast to it (numpy
/// rules): 0 where own is 1 and out is not, 1 where own is a constant or provably out, else
/// min(own - 1, 1) (a symbolic dim that may be 1 at run time).
sym::Expr broadcastStep(sym::Context &ctx, const sym::Expr &own, const sym::Expr &out);
/// Fails (UserError naming `what`) unless `own` broadcasts to `to` one way (numpy rules,
/// aligned right): no more dims, and each static dim 1 or equal to a static target dim.
void requireBroadcastsTo(const ir::Shape &own, const ir::Shape &to, const std::string &what);
/// Reads t broadcast (numpy rules, aligned right) to `shape` at idx; fails as above.
loop::VRef loadBroadcast(sym::Context &ctx, const LTensor &t, const ir::Shape &shape,
                         const Index &idx);
/// Numpy broadcast of two shapes; throws UserError describing `what` on mismatch.
ir::Shape broadcastShapes(const ir::Shape &a, const ir::Shape &b, const std::string &what);

/// Row-major strides of shape, in elements (the last dim's is 1).
std::vector<sym::Expr> rowMajorStrides(sym::Context &ctx, const ir::Shape &shape);
/// Where each element of a view lies: t[i] is buf[offset + sum_d strides[d] * i[d]].
struct AffineLoad {
  loop::Buffer *buf;
  sym::Expr offset;
  std::vector<sym::Expr> strides;
};
/// t as an affine view of one buffer of its element type, when every element is a plain load
/// at an offset affine in the index (a reshape, transpose or slice of a realized tensor, or a
/// chain of them); nothing when an element is computed, gathered or clamped.
std::optional<AffineLoad> affineLoad(sym::Context &ctx, const LTensor &t);
/// t's buffer when t reads it row-major from its start (a reshape, or transposes that cancel):
/// a caller that wants t contiguous can use the buffer instead of realizing a copy.
loop::Buffer *contiguousBuffer(sym::Context &ctx, const LTensor &t);

} // namespace kiln::lower
