// Image-shaped data movement: CenterCropPad (crop or zero-pad each axis around its centre)
// and Col2Im (sum sliding blocks back into an image, the inverse of im2col). Both are one
// generated pointwise kernel.
#include "lower/ops_common.h"

namespace kiln::lower {

namespace {

VRef i64(int64_t v) {
  return loop::constantInt(DType::Int64, v);
}
VRef sv(sym::Expr e) {
  return loop::symInt(e);
}
VRef bin(BinaryOp op, VRef a, VRef b) {
  return loop::binary(op, std::move(a), std::move(b));
}
VRef cval(DType t, double v) {
  return isFloat(t) ? loop::constant(t, v) : loop::constantInt(t, static_cast<int64_t>(v));
}

// ---------------------------------------------------------------- CenterCropPad

/// CenterCropPad-18: each listed axis cropped (start (dim - target) / 2) or zero-padded
/// (before: (target - dim) / 2) to its target length; targets may be run-time values.
void lowerCenterCropPad(OpCtx &c) {
  LTensor x = c.in(0);
  int rank = x.rank();
  std::vector<sym::Expr> target = c.requireSymIn(1, "shape", 0);
  std::vector<int64_t> axes = c.node.attrInts("axes");
  if (axes.empty())
    for (int d = 0; d < rank; ++d)
      axes.push_back(d);
  if (target.size() != axes.size())
    fail("{}: shape has {} values for {} axes", c.node.describe(), target.size(), axes.size());
  sym::Context &ctx = c.ctx();
  ir::Shape shape = x.shape;
  std::vector<sym::Expr> shift(rank, ctx.constant(0)); // source = out index + shift
  std::vector<bool> padded(rank, false);
  for (size_t k = 0; k < axes.size(); ++k) {
    int d = c.normAxis(axes[k], rank);
    sym::Expr dim = x.shape[d], t = target[k], zero = ctx.constant(0);
    sym::Expr crop = sym::floorDiv(sym::max(dim - t, zero), 2);
    sym::Expr pad = sym::floorDiv(sym::max(t - dim, zero), 2);
    shift[d] = crop - pad;
    shape[d] = t;
    padded[d] = true;
  }
  DType dt = x.dtype;
  c.out(0, c.pointwise(dt, shape, [=](const Index &i) {
    Index src(rank);
    VRef inside = loop::constantInt(DType::Bool, 1);
    for (int d = 0; d < rank; ++d) {
      src[d] = i[d] + shift[d];
      if (!padded[d]) continue;
      VRef ok = bin(BinaryOp::And, bin(BinaryOp::Ge, sv(src[d]), i64(0)),
                    bin(BinaryOp::Lt, sv(src[d]), sv(x.shape[d])));
      inside = bin(BinaryOp::And, inside, ok);
      // Clamped so that the (discarded) load outside stays in bounds.
      src[d] = sym::max(sym::min(src[d], x.shape[d] - 1), src[d].ctx().constant(0));
    }
    return loop::select(inside, x.load(src), cval(dt, 0));
  }));
}

// ---------------------------------------------------------------- Col2Im

/// Col2Im-18: input [N, C·∏block, L] holds, for each of the L block positions (row-major
/// over the block grid), the C·∏block values of one sliding block; out[n, c, y...] sums
/// every block element that lands on y. Image and block shapes must be compile-time values.
void lowerCol2Im(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() != 3)
    fail("{}: input must be 3-D [N, C*prod(block_shape), L], got rank {}", c.node.describe(),
         x.rank());
  std::vector<int64_t> image = c.requireIntsIn(1, "image_shape");
  std::vector<int64_t> block = c.requireIntsIn(2, "block_shape");
  size_t nd = image.size();
  if (block.size() != nd || nd == 0)
    fail("{}: image_shape and block_shape must have the same non-zero length", c.node.describe());
  std::vector<int64_t> dil = c.node.attrInts("dilations", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> str = c.node.attrInts("strides", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = c.node.attrInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (dil.size() != nd || str.size() != nd || pads.size() != 2 * nd)
    fail("{}: dilations, strides and pads must have {} , {} and {} values", c.node.describe(), nd,
         nd, 2 * nd);
  int64_t kprod = 1, lprod = 1;
  std::vector<int64_t> grid(nd);
  for (size_t d = 0; d < nd; ++d) {
    kprod *= block[d];
    int64_t span = dil[d] * (block[d] - 1) + 1;
    grid[d] = (image[d] + pads[d] + pads[nd + d] - span) / str[d] + 1;
    if (grid[d] <= 0 || str[d] <= 0) fail("{}: no block fits spatial dim {}", c.node.describe(), d);
    lprod *= grid[d];
  }
  sym::Context &ctx = c.ctx();
  sym::Expr ch = sym::floorDiv(x.shape[1], kprod);
  c.guardEqual(ch * kprod, x.shape[1],
               "Col2Im: input dim 1 must be a multiple of prod(block_shape)");
  c.guardEqual(x.shape[2], ctx.constant(lprod), "Col2Im: input dim 2 must be the number of blocks");
  ir::Shape shape{x.shape[0], ch};
  for (int64_t v : image)
    shape.push_back(ctx.constant(v));
  DType t = x.dtype;
  DType acc = isFloat(t) ? (t == DType::Float64 ? t : DType::Float32) : t;
  c.out(0, c.pointwise(t, shape, [=](const Index &i) {
    VRef sum = cval(acc, 0);
    // Every block element kk (static) whose block position b satisfies
    // y = b·stride − pad + kk·dilation in each spatial dim.
    for (int64_t kk = 0; kk < kprod; ++kk) {
      int64_t rest = kk;
      std::vector<int64_t> kpos(nd);
      for (size_t d = nd; d-- > 0;) {
        kpos[d] = rest % block[d];
        rest /= block[d];
      }
      VRef ok = loop::constantInt(DType::Bool, 1);
      sym::Expr l = i[0].ctx().constant(0);
      for (size_t d = 0; d < nd; ++d) {
        sym::Expr tpos = i[2 + d] + (pads[d] - kpos[d] * dil[d]); // b·stride
        sym::Expr b = sym::floorDiv(tpos, str[d]);
        VRef inGrid = bin(BinaryOp::And, bin(BinaryOp::Ge, sv(tpos), i64(0)),
                          bin(BinaryOp::Lt, sv(b), i64(grid[d])));
        if (str[d] > 1)
          inGrid =
              bin(BinaryOp::And, inGrid, bin(BinaryOp::Eq, sv(sym::mod(tpos, str[d])), i64(0)));
        ok = bin(BinaryOp::And, ok, inGrid);
        // Clamped so that the (discarded) load of an element off the grid stays in bounds.
        l = l * grid[d] +
            sym::max(sym::min(b, i[0].ctx().constant(grid[d] - 1)), i[0].ctx().constant(0));
      }
      VRef v = loop::cast(x.load({i[0], i[1] * kprod + kk, l}), acc);
      sum = bin(BinaryOp::Add, sum, loop::select(ok, v, cval(acc, 0)));
    }
    return loop::cast(sum, t);
  }));
}

} // namespace

void registerImageOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"CenterCropPad", 18, lowerCenterCropPad},
                        {"Col2Im", 18, lowerCol2Im},
                    });
}

} // namespace kiln::lower
