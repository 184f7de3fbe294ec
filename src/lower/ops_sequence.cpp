// ONNX sequence ops inside a graph. A sequence is a compile-time list of lazy tensors
// (LSequence): its length and every position used on it must be known at compile time,
// so each op is list surgery plus views; only ConcatFromSequence builds a kernel.
#include "lower/ops_common.h"

namespace kiln::lower {

namespace {

/// Input i as one compile-time integer (a scalar or 1-element tensor).
int64_t staticScalarIn(OpCtx &c, size_t i, const char *what) {
  std::vector<sym::Expr> v = c.requireSymIn(i, what);
  if (v.size() != 1)
    fail("{}: input {} ({}) must hold one value, got {}", c.node.describe(), i, what, v.size());
  return c.requireStatic(v[0], what);
}

/// Compile-time position input i on a sequence of n items, normalised; valid positions are
/// [-n, hi] (hi is n for insertion, n-1 otherwise); absent input gives `dflt`.
int64_t positionIn(OpCtx &c, size_t i, int64_t n, int64_t hi, int64_t dflt) {
  if (!c.has(i)) return dflt;
  int64_t p = staticScalarIn(c, i, "the sequence position");
  if (p < -n || p > hi)
    fail("{}: position {} is out of range for a sequence of {} tensors", c.node.describe(), p, n);
  return p < 0 ? p + n : p;
}

void requireElemType(OpCtx &c, const LSequence &s, const LTensor &t) {
  if (t.dtype != s.dtype)
    fail("{}: tensor of type {} does not match the sequence element type {}", c.node.describe(),
         dtypeName(t.dtype), dtypeName(s.dtype));
}

void lowerSequenceEmpty(OpCtx &c) {
  LSequence s;
  int64_t code = c.node.attrInt("dtype", 1); // FLOAT by default
  if (!dtypeFromOnnx(static_cast<int>(code), s.dtype))
    c.unsupported(fmt::format("SequenceEmpty dtype {}", code));
  c.outSeq(0, s);
}

void lowerSequenceConstruct(OpCtx &c) {
  LSequence s;
  for (size_t i = 0; i < c.numInputs(); ++i) {
    LTensor t = c.in(i);
    if (i == 0) s.dtype = t.dtype;
    requireElemType(c, s, t);
    s.items.push_back(t);
  }
  if (s.items.empty()) fail("{}: needs at least one input", c.node.describe());
  c.outSeq(0, s);
}

void lowerSequenceInsert(OpCtx &c) {
  LSequence s = c.inSeq(0);
  LTensor t = c.in(1);
  requireElemType(c, s, t);
  int64_t n = static_cast<int64_t>(s.items.size());
  int64_t p = positionIn(c, 2, n, n, n);
  s.items.insert(s.items.begin() + p, t);
  c.outSeq(0, s);
}

void lowerSequenceErase(OpCtx &c) {
  LSequence s = c.inSeq(0);
  int64_t n = static_cast<int64_t>(s.items.size());
  if (n == 0) fail("{}: cannot erase from an empty sequence", c.node.describe());
  int64_t p = positionIn(c, 1, n, n - 1, n - 1);
  s.items.erase(s.items.begin() + p);
  c.outSeq(0, s);
}

void lowerSequenceAt(OpCtx &c) {
  const LSequence &s = c.inSeq(0);
  int64_t n = static_cast<int64_t>(s.items.size());
  int64_t p = positionIn(c, 1, n, n - 1, 0);
  c.out(0, s.items[p]);
}

void lowerSequenceLength(OpCtx &c) {
  int64_t n = static_cast<int64_t>(c.inSeq(0).items.size());
  c.out(0, c.pointwise(
               DType::Int64, {}, [n](const Index &) { return loop::constantInt(DType::Int64, n); },
               true));
}

void lowerSplitToSequence(OpCtx &c) {
  LTensor x = c.in(0);
  int axis = c.normAxis(c.node.attrInt("axis", 0), x.rank());
  bool keepdims = c.node.attrInt("keepdims", 1) != 0;
  sym::Context &ctx = c.ctx();
  sym::Expr dim = x.shape[axis];
  std::vector<sym::Expr> sizes;
  bool squeeze = false;
  if (!c.has(1)) {
    // One item per index along the axis, so the axis length is the sequence length.
    int64_t n = c.requireStatic(dim, "the split axis length (the number of sequence items)");
    sizes.assign(static_cast<size_t>(n), ctx.constant(1));
    squeeze = !keepdims;
  } else if (c.in(1).rank() == 0) {
    int64_t chunk = staticScalarIn(c, 1, "the split chunk size");
    if (chunk <= 0) fail("{}: split chunk size {} must be positive", c.node.describe(), chunk);
    int64_t n = c.requireStatic(sym::floorDiv(dim + (chunk - 1), chunk),
                                "the number of split chunks (the number of sequence items)");
    for (int64_t k = 0; k < n; ++k)
      sizes.push_back(k + 1 == n ? dim - ctx.constant(chunk * k) : ctx.constant(chunk));
  } else {
    // Sizes may be read at run time; their count (the sequence length) must be static.
    sizes = c.requireSymIn(1, "split", 0);
    sym::Expr total = ctx.constant(0);
    for (const sym::Expr &s : sizes)
      total = total + s;
    c.guardEqual(total, dim, "split sizes must sum to the split axis length");
  }
  LSequence seq;
  seq.dtype = x.dtype;
  sym::Expr off = ctx.constant(0);
  for (const sym::Expr &sz : sizes) {
    ir::Shape shape = x.shape;
    if (squeeze)
      shape.erase(shape.begin() + axis);
    else
      shape[axis] = sz;
    Loader inner = x.load;
    sym::Expr o = off;
    seq.items.push_back(c.pointwise(
        x.dtype, shape,
        [=](const Index &i) {
          Index src = i;
          if (squeeze)
            src.insert(src.begin() + axis, o);
          else
            src[axis] = i[axis] + o;
          return inner(src);
        },
        x.cheap));
    off = off + sz;
  }
  c.outSeq(0, seq);
}

void lowerConcatFromSequence(OpCtx &c) {
  const LSequence &s = c.inSeq(0);
  if (s.items.empty())
    fail("{}: the sequence is empty; there is no tensor to concatenate", c.node.describe());
  if (!c.node.hasAttr("axis")) fail("{}: attribute 'axis' is required", c.node.describe());
  bool newAxis = c.node.attrInt("new_axis", 0) != 0;
  int rank = s.items[0].rank();
  int outRank = newAxis ? rank + 1 : rank;
  int axis = c.normAxis(c.node.attrInt("axis", 0), outRank);
  std::vector<LTensor> parts;
  std::vector<sym::Expr> offsets;
  sym::Expr total = c.ctx().constant(0);
  ir::Shape shape;
  for (const LTensor &t : s.items) {
    if (t.rank() != rank)
      fail("{}: sequence items have ranks {} and {}", c.node.describe(), rank, t.rank());
    LTensor p = t;
    if (newAxis) {
      // Each item becomes a size-1 slab along the new axis.
      p.shape.insert(p.shape.begin() + axis, c.ctx().constant(1));
      Loader inner = t.load;
      p.load = [=](const Index &i) {
        Index src = i;
        src.erase(src.begin() + axis);
        return inner(src);
      };
      p.buffer = nullptr;
      p.channelsLast = nullptr;
    }
    if (shape.empty()) shape = p.shape;
    for (int d = 0; d < outRank; ++d)
      if (d != axis)
        c.guardEqual(p.shape[d], shape[d], fmt::format("sequence items differ in dim {}", d));
    if (p.shape[axis].isConst(0)) continue;
    parts.push_back(p);
    offsets.push_back(total);
    total = total + p.shape[axis];
  }
  shape[axis] = total;
  DType t = s.dtype;
  if (parts.empty()) {
    c.out(0, c.pointwise(t, shape, [=](const Index &) { return loop::constant(t, 0); }));
    return;
  }
  c.out(0, c.pointwise(t, shape, [=](const Index &i) {
    // The item is chosen by the axis coordinate; the last item is the default.
    VRef result;
    for (size_t p = parts.size(); p-- > 0;) {
      Index src = i;
      sym::Expr local = i[axis] - offsets[p];
      // Clamped so that an unselected branch never reads out of bounds.
      src[axis] = sym::max(sym::min(local, parts[p].shape[axis] - 1), local.ctx().constant(0));
      VRef v = parts[p].load(src);
      if (!result) {
        result = v;
        continue;
      }
      VRef inPart = loop::binary(BinaryOp::Lt, loop::symInt(i[axis]),
                                 loop::symInt(offsets[p] + parts[p].shape[axis]));
      result = loop::select(inPart, v, result);
    }
    return result;
  }));
}

} // namespace

void registerSequenceOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {{"SequenceEmpty", 11, lowerSequenceEmpty},
                     {"SequenceConstruct", 11, lowerSequenceConstruct},
                     {"SequenceInsert", 11, lowerSequenceInsert},
                     {"SequenceErase", 11, lowerSequenceErase},
                     {"SequenceAt", 11, lowerSequenceAt},
                     {"SequenceLength", 11, lowerSequenceLength},
                     {"SplitToSequence", 11, lowerSplitToSequence},
                     {"ConcatFromSequence", 11, lowerConcatFromSequence}});
}

} // namespace kiln::lower
