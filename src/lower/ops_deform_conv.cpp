// DeformConv (opset 22): a convolution whose taps are moved by per-output offsets. Lowered as
// a deformable im2col (bilinear samples of X at the moved taps, times the optional mask,
// realized once as [N, C, out..., k...]) and a reduction of those columns with W over the
// group's input channels and the kernel taps. N-D; semantics of the ONNX reference
// (torchvision's deform_conv2d): a sample corner outside X reads zero.
#include "lower/ops_common.h"
#include "lower/value_math.h"
#include "lower/window.h"

namespace kiln::lower {

namespace {

using loop::ReduceOp;
using namespace vmath;

struct DeformGeometry {
  int spatial = 0;
  std::vector<int64_t> kernel;
  int64_t taps = 1; // product of kernel
  int64_t group = 1, offsetGroup = 1;
  Window win;
};

DeformGeometry deformGeometry(OpCtx &c, const LTensor &x, const LTensor &w, const LTensor &off) {
  DeformGeometry g;
  g.spatial = x.rank() - 2;
  if (g.spatial < 1 || w.rank() != x.rank() || off.rank() != x.rank())
    fail("{}: X, W and offset must share a rank of at least 3 ([N, C, spatial...]); got {}, {} "
         "and {}",
         c.node.describe(), x.rank(), w.rank(), off.rank());
  g.kernel = c.node.attrInts("kernel_shape");
  if (g.kernel.empty())
    for (int d = 0; d < g.spatial; ++d)
      g.kernel.push_back(c.requireStatic(w.shape[2 + d], "the kernel size"));
  if (static_cast<int>(g.kernel.size()) != g.spatial)
    fail("{}: kernel_shape has {} dims for {} spatial dims", c.node.describe(), g.kernel.size(),
         g.spatial);
  for (int d = 0; d < g.spatial; ++d) {
    if (g.kernel[d] < 1) fail("{}: kernel_shape must be positive", c.node.describe());
    c.guardEqual(w.shape[2 + d], c.ctx().constant(g.kernel[d]), "W disagrees with kernel_shape");
    g.taps *= g.kernel[d];
  }
  g.group = c.node.attrInt("group", 1);
  g.offsetGroup = c.node.attrInt("offset_group", 1);
  if (g.group < 1 || g.offsetGroup < 1)
    fail("{}: group and offset_group must be positive", c.node.describe());
  g.win = windowGeometry(c, x.shape, constants(c.ctx(), g.kernel), false);
  return g;
}

/// Row-major index of the kernel tap i[first .. first + kernel.size()).
sym::Expr tapIndex(const Index &i, size_t first, const std::vector<int64_t> &kernel) {
  sym::Expr t = i[first];
  for (size_t d = 1; d < kernel.size(); ++d)
    t = t * kernel[d] + i[first + d];
  return t;
}

void lowerDeformConv(OpCtx &c) {
  LTensor x = c.in(0), w = c.in(1), off = c.in(2);
  requireFloat(c, x, "DeformConv input X");
  DeformGeometry g = deformGeometry(c, x, w, off);
  sym::Context *ctx = &c.ctx();
  int S = g.spatial;
  sym::Expr C = x.shape[1], oC = w.shape[0], icg = w.shape[1];
  c.guardEqual(icg * g.group, C, "W's input channels times group must equal X's channels");
  c.guardEqual(sym::floorDiv(oC, g.group) * g.group, oC, "output channels must divide by group");
  sym::Expr perOffsetGroup = sym::floorDiv(C, g.offsetGroup);
  c.guardEqual(perOffsetGroup * g.offsetGroup, C, "X's channels must divide by offset_group");
  c.guardEqual(off.shape[0], x.shape[0], "offset and X disagree on the batch");
  c.guardEqual(off.shape[1], ctx->constant(g.offsetGroup * g.taps * S),
               "offset must have offset_group * kernel taps * spatial dims channels");
  for (int d = 0; d < S; ++d)
    c.guardEqual(off.shape[2 + d], g.win.out[d], "offset's spatial dims must be the output's");
  std::optional<LTensor> bias, mask;
  if (c.has(3)) {
    bias = c.in(3);
    if (bias->rank() != 1) fail("{}: B must be 1-D", c.node.describe());
    c.guardEqual(bias->shape[0], oC, "B must have one value per output channel");
  }
  if (c.has(4)) {
    mask = c.in(4);
    if (mask->rank() != x.rank()) fail("{}: mask must have X's rank", c.node.describe());
    c.guardEqual(mask->shape[0], x.shape[0], "mask and X disagree on the batch");
    c.guardEqual(mask->shape[1], ctx->constant(g.offsetGroup * g.taps),
                 "mask must have offset_group * kernel taps channels");
    for (int d = 0; d < S; ++d)
      c.guardEqual(mask->shape[2 + d], g.win.out[d], "mask's spatial dims must be the output's");
  }
  DType t = x.dtype, F = t == DType::Float64 ? DType::Float64 : DType::Float32;
  LTensor src = x.cheap ? x : c.realize(x);
  Lowerer *low = &c.lowerer();
  ir::Shape colShape{x.shape[0], C};
  colShape.insert(colShape.end(), g.win.out.begin(), g.win.out.end());
  for (int64_t k : g.kernel)
    colShape.push_back(ctx->constant(k));
  LTensor cols = c.realize(c.pointwise(F, colShape, [=](const Index &i) {
    sym::Expr og = sym::floorDiv(i[1], perOffsetGroup);
    sym::Expr tap = tapIndex(i, 2 + S, g.kernel);
    Index outAt(i.begin() + 2, i.begin() + 2 + S);
    std::vector<VRef> pos;
    for (int d = 0; d < S; ++d) {
      sym::Expr base =
          i[2 + d] * g.win.strides[d] - g.win.padsBegin[d] + i[2 + S + d] * g.win.dilations[d];
      Index oi{i[0], (og * g.taps + tap) * S + d};
      oi.insert(oi.end(), outAt.begin(), outAt.end());
      pos.push_back(add(symF(base, F), loop::cast(off.load(oi), F)));
    }
    // Sum over the 2^S corners of the cell around pos, each weighted by its fractions.
    VRef sum;
    for (int corner = 0; corner < (1 << S); ++corner) {
      Index at{i[0], i[1]};
      VRef weight = fc(F, 1), inside;
      std::vector<std::pair<sym::Expr, VRef>> binds;
      for (int d = 0; d < S; ++d) {
        VRef lowF = loop::unary(UnaryOp::Floor, pos[d]);
        VRef frac = sub(pos[d], lowF);
        bool high = (corner >> d) & 1;
        weight = mul(weight, high ? frac : sub(fc(F, 1), frac));
        VRef idx = loop::cast(high ? add(lowF, fc(F, 1)) : lowF, DType::Int64);
        sym::Expr n = x.shape[2 + d];
        inside = land(inside, loop::binary(BinaryOp::Ge, idx, ic(0)));
        inside = land(inside, lt(idx, loop::symInt(n)));
        sym::Expr var = low->newVar("dc", n);
        at.push_back(var);
        binds.push_back({var, vmax(vmin(idx, loop::symInt(n - 1)), ic(0))});
      }
      VRef v = src.load(at);
      for (auto &[var, iv] : binds)
        v = loop::bindIndirect(v, var, iv);
      v = loop::select(inside, mul(weight, loop::cast(v, F)), fc(F, 0));
      sum = sum ? add(sum, v) : v;
    }
    if (mask) {
      Index mi{i[0], og * g.taps + tap};
      mi.insert(mi.end(), outAt.begin(), outAt.end());
      sum = mul(sum, loop::cast(mask->load(mi), F));
    }
    return sum;
  }));
  // y[n, oc, out...] = sum over the group's input channels and taps of W * columns.
  sym::Expr ocg = sym::floorDiv(oC, g.group);
  ir::Shape full{x.shape[0], oC};
  full.insert(full.end(), g.win.out.begin(), g.win.out.end());
  full.push_back(icg);
  for (int64_t k : g.kernel)
    full.push_back(ctx->constant(k));
  LTensor prod = c.pointwise(F, full, [=](const Index &i) {
    sym::Expr ic = sym::floorDiv(i[1], ocg) * icg + i[2 + S];
    Index ci{i[0], ic}, wi{i[1], i[2 + S]};
    ci.insert(ci.end(), i.begin() + 2, i.begin() + 2 + S);
    ci.insert(ci.end(), i.begin() + 3 + S, i.end());
    wi.insert(wi.end(), i.begin() + 3 + S, i.end());
    return mul(cols.load(ci), loop::cast(w.load(wi), F));
  });
  std::vector<int> axes;
  for (int d = 0; d <= S; ++d)
    axes.push_back(2 + S + d);
  LTensor red = c.reduce(prod, axes, false, ReduceOp::Sum, F);
  c.out(0, c.pointwise(t, red.shape, [=](const Index &i) {
    VRef v = red.load(i);
    if (bias) v = add(v, loop::cast(bias->load({i[1]}), F));
    return loop::cast(v, t);
  }));
}

} // namespace

void registerDeformConvOps(std::vector<OpInfo> &r) {
  r.push_back({"DeformConv", 22, lowerDeformConv});
}

} // namespace kiln::lower
