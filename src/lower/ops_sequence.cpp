// ONNX sequence ops inside a graph. A sequence is a compile-time list of lazy tensors
// (LSequence): its length must be known at compile time, so each op is list surgery plus
// views. A position read at run time (SequenceInsert/Erase/At) makes each affected item a
// select among its candidates, with dims that differ between them as run-time sums.
#include "lower/ops_common.h"
#include "lower/subgraph.h"

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

/// Whether position input i is absent or known at compile time.
bool staticPosition(OpCtx &c, size_t i) {
  return !c.has(i) || c.symIn(i).has_value();
}

/// 1 when a < b, else 0 (integers).
sym::Expr lessThan(sym::Expr a, sym::Expr b) {
  sym::Context &ctx = a.ctx();
  return sym::min(sym::max(b - a, ctx.constant(0)), ctx.constant(1));
}

/// A position read at run time, checked (before the run) to lie in [-n, hi], normalised.
sym::Expr runtimePosition(OpCtx &c, size_t i, int64_t n, int64_t hi) {
  std::vector<sym::Expr> v = c.requireSymIn(i, "the sequence position", -n);
  if (v.size() != 1)
    fail("{}: input {} (the sequence position) must hold one value, got {}", c.node.describe(), i,
         v.size());
  sym::Expr p = v[0];
  sym::Context &ctx = c.ctx();
  std::string range = fmt::format("the sequence position must lie in [{}, {}]", -n, hi);
  c.guardEqual(sym::min(p, ctx.constant(hi)), p, range);
  c.guardEqual(sym::max(p, ctx.constant(-n)), p, range);
  return p + lessThan(p, ctx.constant(0)) * n;
}

/// The item chosen at run time among `cands`, each with a 0/1 indicator (exactly one is 1
/// at run time). Dims that differ between candidates become sums of indicator * dim, and
/// each candidate is read at clamped indices so that unchosen ones stay in bounds.
LTensor chooseItem(OpCtx &c, const std::vector<std::pair<sym::Expr, LTensor>> &cands) {
  const LTensor &first = cands[0].second;
  int rank = first.rank();
  ir::Shape shape = first.shape;
  for (const auto &[ind, t] : cands)
    if (t.rank() != rank)
      fail("{}: sequence items of ranks {} and {} meet at a position known only at run time",
           c.node.describe(), rank, t.rank());
  for (int d = 0; d < rank; ++d) {
    bool same = std::all_of(cands.begin(), cands.end(), [&](const auto &ct) {
      return sym::provablyEqual(ct.second.shape[d], first.shape[d]);
    });
    if (same) continue;
    shape[d] = c.ctx().constant(0);
    for (const auto &[ind, t] : cands)
      shape[d] = shape[d] + ind * t.shape[d];
  }
  if (cands.size() == 1) return first;
  return c.pointwise(first.dtype, shape, [=](const Index &i) {
    VRef result;
    for (size_t j = cands.size(); j-- > 0;) {
      const auto &[ind, t] = cands[j];
      Index src = i;
      for (int d = 0; d < rank; ++d)
        if (!sym::provablyEqual(t.shape[d], shape[d]))
          src[d] = sym::max(sym::min(i[d], t.shape[d] - 1), i[d].ctx().constant(0));
      VRef v = t.load(src);
      result = result ? loop::select(loop::binary(BinaryOp::Ne, loop::symInt(ind),
                                                  loop::constantInt(DType::Int64, 0)),
                                     v, result)
                      : v;
    }
    return result;
  });
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
  if (staticPosition(c, 2)) {
    int64_t p = positionIn(c, 2, n, n, n);
    s.items.insert(s.items.begin() + p, t);
    c.outSeq(0, s);
    return;
  }
  // Item k is s[k] before the position, t at it, s[k-1] after it.
  sym::Expr q = runtimePosition(c, 2, n, n);
  sym::Context &ctx = c.ctx();
  LSequence r;
  r.dtype = s.dtype;
  for (int64_t k = 0; k <= n; ++k) {
    sym::Expr kk = ctx.constant(k), before = lessThan(kk, q), after = lessThan(q, kk);
    std::vector<std::pair<sym::Expr, LTensor>> cands;
    if (k < n) cands.push_back({before, s.items[k]});
    cands.push_back({ctx.constant(1) - before - after, t});
    if (k > 0) cands.push_back({after, s.items[k - 1]});
    r.items.push_back(chooseItem(c, cands));
  }
  c.outSeq(0, r);
}

void lowerSequenceErase(OpCtx &c) {
  LSequence s = c.inSeq(0);
  int64_t n = static_cast<int64_t>(s.items.size());
  if (n == 0) fail("{}: cannot erase from an empty sequence", c.node.describe());
  if (staticPosition(c, 1)) {
    int64_t p = positionIn(c, 1, n, n - 1, n - 1);
    s.items.erase(s.items.begin() + p);
    c.outSeq(0, s);
    return;
  }
  // Item k is s[k] before the position, s[k+1] from it on.
  sym::Expr q = runtimePosition(c, 1, n, n - 1);
  LSequence r;
  r.dtype = s.dtype;
  for (int64_t k = 0; k + 1 < n; ++k) {
    sym::Expr before = lessThan(c.ctx().constant(k), q);
    r.items.push_back(
        chooseItem(c, {{before, s.items[k]}, {c.ctx().constant(1) - before, s.items[k + 1]}}));
  }
  c.outSeq(0, r);
}

void lowerSequenceAt(OpCtx &c) {
  const LSequence &s = c.inSeq(0);
  int64_t n = static_cast<int64_t>(s.items.size());
  if (staticPosition(c, 1)) {
    c.out(0, s.items[positionIn(c, 1, n, n - 1, 0)]);
    return;
  }
  if (n == 0) fail("{}: the sequence is empty; there is no item to read", c.node.describe());
  sym::Expr q = runtimePosition(c, 1, n, n - 1);
  std::vector<std::pair<sym::Expr, LTensor>> cands;
  for (int64_t k = 0; k < n; ++k) {
    sym::Expr kk = c.ctx().constant(k);
    cands.push_back({c.ctx().constant(1) - lessThan(kk, q) - lessThan(q, kk), s.items[k]});
  }
  c.out(0, chooseItem(c, cands));
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
    parts.push_back(p);
  }
  c.out(0, concatAlong(c, parts, axis, s.dtype));
}

void lowerSequenceMap(OpCtx &c) {
  const ir::Graph &body = graphAttr(c, "body");
  size_t inputs = explicitInputs(c.node);
  size_t n = c.inSeq(0).items.size();
  for (size_t j = 1; j < inputs; ++j)
    if (c.isSeqIn(j) && c.inSeq(j).items.size() != n)
      fail("{}: input {} is a sequence of {} items; input 0 has {}", c.node.describe(), j,
           c.inSeq(j).items.size(), n);
  std::vector<LSequence> outs(c.node.outputs.size());
  for (size_t k = 0; k < n; ++k) {
    std::vector<LTensor> formals;
    for (size_t j = 0; j < inputs; ++j)
      formals.push_back(c.isSeqIn(j) ? c.inSeq(j).items[k] : c.in(j));
    std::vector<LTensor> r = inlineBody(c, body, fmt::format("body (item {})", k), formals);
    if (r.size() != outs.size())
      fail("{}: its body gives {} outputs; the node has {}", c.node.describe(), r.size(),
           outs.size());
    for (size_t j = 0; j < outs.size(); ++j) {
      if (k > 0 && r[j].dtype != outs[j].dtype)
        fail("{}: body output {} is {} for item {} but {} before", c.node.describe(), j,
             dtypeName(r[j].dtype), k, dtypeName(outs[j].dtype));
      outs[j].dtype = r[j].dtype;
      outs[j].items.push_back(r[j]);
    }
  }
  if (n == 0)
    c.unsupported("SequenceMap over an empty sequence (the output element types are unknown)");
  for (size_t j = 0; j < outs.size(); ++j)
    c.outSeq(j, outs[j]);
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
                     {"ConcatFromSequence", 11, lowerConcatFromSequence},
                     {"SequenceMap", 17, lowerSequenceMap}});
}

} // namespace kiln::lower
