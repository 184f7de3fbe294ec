// Image-shaped ops: CenterCropPad (crop or zero-pad each axis around its centre), Col2Im
// (sum sliding blocks back into an image, the inverse of im2col) and AffineGrid (sampling
// grids for GridSample), each one generated pointwise kernel; and ImageDecoder, a shim call
// (JPEG/PNG/BMP/PNM decoded at run time).
#include "lower/ops_common.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

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
    return loop::select(inside, x.load(src), loop::constant(dt, 0));
  }));
}

// ---------------------------------------------------------------- Col2Im

/// Col2Im-18: input [N, C·∏block, L] holds, for each of the L block positions (row-major
/// over the block grid), the C·∏block values of one sliding block; out[n, c, y...] sums
/// every block element that lands on y. Image and block shapes may be run-time values.
void lowerCol2Im(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() != 3)
    fail("{}: input must be 3-D [N, C*prod(block_shape), L], got rank {}", c.node.describe(),
         x.rank());
  // Shapes may be run-time data: they become model symbols (read before the run).
  std::vector<sym::Expr> image = c.requireSymIn(1, "image_shape", 1);
  std::vector<sym::Expr> block = c.requireSymIn(2, "block_shape", 1);
  size_t nd = image.size();
  if (block.size() != nd || nd == 0)
    fail("{}: image_shape and block_shape must have the same non-zero length", c.node.describe());
  std::vector<int64_t> dil = c.node.attrInts("dilations", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> str = c.node.attrInts("strides", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = c.node.attrInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (dil.size() != nd || str.size() != nd || pads.size() != 2 * nd)
    fail("{}: dilations, strides and pads must have {}, {} and {} values", c.node.describe(), nd,
         nd, 2 * nd);
  requirePositive(c, str, "strides");
  requirePositive(c, dil, "dilations");
  sym::Context &ctx = c.ctx();
  sym::Expr kprod = ctx.constant(1), lprod = ctx.constant(1);
  std::vector<sym::Expr> grid(nd);
  for (size_t d = 0; d < nd; ++d) {
    kprod = kprod * block[d];
    sym::Expr span = (block[d] - 1) * dil[d] + 1;
    grid[d] = sym::floorDiv(image[d] + (pads[d] + pads[nd + d]) - span, str[d]) + 1;
    lprod = lprod * grid[d];
  }
  sym::Expr ch = sym::floorDiv(x.shape[1], kprod);
  c.guardEqual(ch * kprod, x.shape[1],
               "Col2Im: input dim 1 must be a multiple of prod(block_shape)");
  c.guardEqual(x.shape[2], lprod, "Col2Im: input dim 2 must be the number of blocks");
  ir::Shape shape{x.shape[0], ch};
  shape.insert(shape.end(), image.begin(), image.end());
  DType t = x.dtype;
  DType acc = isFloat(t) ? (t == DType::Float64 ? t : DType::Float32) : t;
  // Summed over the block elements kk: each lands on y when its block position b satisfies
  // y = b·stride − pad + kpos·dilation in every spatial dim.
  ir::Shape terms = shape;
  terms.push_back(kprod);
  int kAxis = static_cast<int>(nd) + 2;
  LTensor all = c.pointwise(acc, terms, [=](const Index &i) {
    sym::Expr rest = i[kAxis], zero = rest.ctx().constant(0);
    std::vector<sym::Expr> kpos(nd);
    for (size_t d = nd; d-- > 0;) {
      kpos[d] = sym::mod(rest, block[d]);
      rest = sym::floorDiv(rest, block[d]);
    }
    VRef ok = loop::constantInt(DType::Bool, 1);
    sym::Expr l = zero;
    for (size_t d = 0; d < nd; ++d) {
      sym::Expr tpos = i[2 + d] + pads[d] - kpos[d] * dil[d]; // b·stride
      sym::Expr b = sym::floorDiv(tpos, str[d]);
      VRef inGrid = bin(BinaryOp::And, bin(BinaryOp::Ge, sv(tpos), i64(0)),
                        bin(BinaryOp::Lt, sv(b), sv(grid[d])));
      if (str[d] > 1)
        inGrid = bin(BinaryOp::And, inGrid, bin(BinaryOp::Eq, sv(sym::mod(tpos, str[d])), i64(0)));
      ok = bin(BinaryOp::And, ok, inGrid);
      // Clamped so that the (discarded) load of an element off the grid stays in bounds.
      l = l * grid[d] + sym::max(sym::min(b, grid[d] - 1), zero);
    }
    VRef v = loop::cast(x.load({i[0], i[1] * kprod + i[kAxis], l}), acc);
    return loop::select(ok, v, loop::constant(acc, 0));
  });
  LTensor sum = c.reduce(all, {kAxis}, false, loop::ReduceOp::Sum, acc);
  c.out(0, c.pointwise(t, shape, [=](const Index &i) { return loop::cast(sum.load(i), t); }));
}

// ---------------------------------------------------------------- AffineGrid

/// AffineGrid-20: for theta [N, 2, 3] (or [N, 3, 4]) and size [N, C, H, W] (or
/// [N, C, D, H, W]), grid[n, (d,) h, w, j] = Σ_k theta[n, j, k]·base_k + theta[n, j, last],
/// base being the normalized (x, y(, z)) of the output position: -1 + 2i/(L-1) with
/// align_corners, (2i + 1)/L - 1 without. The sizes may be run-time values.
void lowerAffineGrid(OpCtx &c) {
  LTensor theta = c.in(0);
  requireFloat(c, theta, "AffineGrid theta");
  if (theta.rank() != 3)
    fail("{}: theta must be 3-D [N, 2, 3] or [N, 3, 4], got rank {}", c.node.describe(),
         theta.rank());
  std::vector<sym::Expr> size = c.requireSymIn(1, "size", 0);
  if (size.size() != 4 && size.size() != 5)
    fail("{}: size must have 4 (2-D) or 5 (3-D) values, got {}", c.node.describe(), size.size());
  int nd = static_cast<int>(size.size()) - 2;
  c.guardEqual(theta.shape[1], c.ctx().constant(nd), "AffineGrid: theta dim 1");
  c.guardEqual(theta.shape[2], c.ctx().constant(nd + 1), "AffineGrid: theta dim 2");
  c.guardEqual(size[0], theta.shape[0], "AffineGrid: size[0] must be theta's batch");
  bool align = c.node.attrInt("align_corners", 0) != 0;
  ir::Shape shape{theta.shape[0]};
  for (int d = 0; d < nd; ++d)
    shape.push_back(size[2 + d]);
  shape.push_back(c.ctx().constant(nd));
  DType t = theta.dtype, acc = t == DType::Float64 ? t : DType::Float32;
  auto f = [acc](double v) { return loop::constant(acc, v); };
  c.out(0, c.pointwise(t, shape, [=](const Index &i) {
    sym::Expr j = i[nd + 1];
    auto th = [&](int k) { return loop::cast(theta.load({i[0], j, i[0].ctx().constant(k)}), acc); };
    VRef sum = th(nd);
    for (int k = 0; k < nd; ++k) {
      int axis = nd - k; // x is the last spatial axis
      VRef pos = loop::cast(sv(i[axis]), acc), len = loop::cast(sv(size[1 + axis]), acc);
      VRef base = align ? bin(BinaryOp::Add, f(-1),
                              bin(BinaryOp::Div, bin(BinaryOp::Mul, f(2), pos),
                                  bin(BinaryOp::Max, bin(BinaryOp::Sub, len, f(1)), f(1))))
                        : bin(BinaryOp::Sub,
                              bin(BinaryOp::Div,
                                  bin(BinaryOp::Add, bin(BinaryOp::Mul, f(2), pos), f(1)), len),
                              f(1));
      sum = bin(BinaryOp::Add, sum, bin(BinaryOp::Mul, th(k), base));
    }
    return loop::cast(sum, t);
  }));
}

// ---------------------------------------------------------------- ImageDecoder

// The largest height and width ImageDecoder's output is sized for: its dims are known only
// after decoding, so the buffer shaped by them takes these bounds (48 MiB for RGB). A larger
// image fails at run time saying so.
constexpr int64_t kImageMaxSide = 4096;

void lowerImageDecoder(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.dtype != DType::UInt8 || x.rank() != 1)
    fail("{}: input must be the encoded image as a 1-D uint8 tensor, got {} of rank {}",
         c.node.describe(), dtypeName(x.dtype), x.rank());
  std::string format = c.node.attrString("pixel_format", "RGB");
  int code = format == "RGB" ? 0 : format == "BGR" ? 1 : format == "Grayscale" ? 2 : -1;
  if (code < 0)
    fail("{}: pixel_format '{}' is not RGB, BGR or Grayscale", c.node.describe(), format);
  sym::Context &ctx = c.ctx();
  sym::Expr h = c.lateSymbol("height", ctx.constant(kImageMaxSide));
  sym::Expr w = c.lateSymbol("width", ctx.constant(kImageMaxSide));
  loop::Buffer *xb = c.realize(x).buffer;
  loop::Buffer *out = c.prog().newBuffer(DType::UInt8, {h, w, ctx.constant(code == 2 ? 1 : 3)},
                                         loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::ImageDecode);
  k->ext.inputs = {xb};
  k->ext.outputs = {out};
  using loop::ExternArg;
  auto lit = externInt;
  ExternArg bytes = externArg(ExternArg::Kind::Value), hOut = externArg(ExternArg::Kind::SymbolOut),
            wOut = externArg(ExternArg::Kind::SymbolOut);
  bytes.dims = {x.shape[0]};
  hOut.dims = {h};
  wOut.dims = {w};
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 externArg(ExternArg::Kind::Buffer, xb),
                 bytes,
                 lit(code),
                 lit(kImageMaxSide),
                 lit(kImageMaxSide),
                 externArg(ExternArg::Kind::Buffer, out),
                 hOut,
                 wOut};
  c.out(0, fromBuffer(ctx, out));
}

} // namespace

void registerImageOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"CenterCropPad", 18, lowerCenterCropPad},
                        {"Col2Im", 18, lowerCol2Im},
                        {"AffineGrid", 20, lowerAffineGrid},
                        {"ImageDecoder", 20, lowerImageDecoder},
                    });
}

} // namespace kiln::lower
