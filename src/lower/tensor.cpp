#include "lower/tensor.h"

#include "support/error.h"

#include <map>

namespace kiln::lower {

Index unravel(sym::Context &ctx, sym::Expr flat, const ir::Shape &shape) {
  Index idx(shape.size());
  sym::Expr stride = ctx.constant(1);
  for (size_t d = shape.size(); d-- > 0;) {
    sym::Expr q = sym::floorDiv(flat, stride);
    idx[d] = d == 0 ? q : sym::mod(q, shape[d]);
    stride = stride * shape[d];
  }
  return idx;
}

LTensor fromBuffer(sym::Context &ctx, loop::Buffer *b) {
  LTensor t;
  t.dtype = b->dtype;
  t.shape = b->shape;
  t.buffer = b;
  t.cheap = true;
  ir::Shape shape = b->shape;
  sym::Context *c = &ctx;
  t.load = [c, b, shape](const Index &idx) { return loop::load(b, linearIndex(*c, idx, shape)); };
  return t;
}

LTensor symbolicVector(sym::Context &ctx, DType t, const ir::Shape &shape,
                       std::vector<sym::Expr> vals) {
  LTensor r;
  r.dtype = t;
  r.shape = shape;
  r.cheap = true;
  sym::Context *c = &ctx;
  r.load = [c, t, vals](const Index &idx) {
    sym::Expr flat = idx.empty() ? c->constant(0) : idx[0];
    if (flat.isConst() && flat->value >= 0 && flat->value < (int64_t)vals.size())
      return loop::symInt(vals[flat->value], t);
    loop::VRef v = loop::symInt(vals.back(), t);
    for (size_t k = vals.size() - 1; k-- > 0;)
      v = loop::select(loop::binary(loop::BinaryOp::Eq, loop::symInt(flat),
                                    loop::constantInt(DType::Int64, (int64_t)k)),
                       loop::symInt(vals[k], t), v);
    return v;
  };
  return r;
}

ir::Shape channelsLastShape(const ir::Shape &logical) {
  ir::Shape phys{logical[0]};
  phys.insert(phys.end(), logical.begin() + 2, logical.end());
  phys.push_back(logical[1]);
  return phys;
}

LTensor fromChannelsLastBuffer(sym::Context &ctx, loop::Buffer *b, const ir::Shape &logical) {
  LTensor t;
  t.dtype = b->dtype;
  t.shape = logical;
  t.cheap = true;
  t.channelsLast = b;
  sym::Context *c = &ctx;
  ir::Shape phys = b->shape;
  t.load = [c, b, phys](const Index &idx) {
    Index p{idx[0]};
    p.insert(p.end(), idx.begin() + 2, idx.end());
    p.push_back(idx[1]);
    return loop::load(b, linearIndex(*c, p, phys));
  };
  return t;
}

LTensor reshapeView(sym::Context &ctx, const LTensor &t, const ir::Shape &shape) {
  LTensor r;
  r.dtype = t.dtype;
  r.shape = shape;
  r.cheap = t.cheap;
  sym::Context *c = &ctx;
  // Leading dims both shapes share pass their index through; only the rest is linearised
  // and unravelled. Row-major, so this is the same element, but the index stays free of
  // floor_div/mod by symbolic sizes (which sym cannot simplify from loop bounds and which
  // keep a copy loop from vectorizing: [B, S, H*D] viewed as [B, S, H, D]).
  size_t keep = 0;
  while (keep < t.shape.size() && keep < shape.size() &&
         sym::provablyEqual(t.shape[keep], shape[keep]))
    ++keep;
  ir::Shape from(t.shape.begin() + keep, t.shape.end()), to(shape.begin() + keep, shape.end());
  Loader inner = t.load;
  r.load = [c, from, to, inner, keep](const Index &idx) {
    Index src(idx.begin(), idx.begin() + keep);
    if (!from.empty()) {
      Index tail(idx.begin() + keep, idx.end());
      Index sub = unravel(*c, linearIndex(*c, tail, to), from);
      src.insert(src.end(), sub.begin(), sub.end());
    }
    return inner(src);
  };
  if (t.buffer) r.buffer = nullptr; // shape differs from the buffer's; callers realize if needed
  return r;
}

sym::Expr broadcastStep(sym::Context &ctx, const sym::Expr &own, const sym::Expr &out) {
  if (own.isConst(1) && !out.isConst(1)) return ctx.constant(0);
  if (own.isConst() || sym::provablyEqual(own, out)) return ctx.constant(1);
  return sym::min(own - 1, ctx.constant(1)); // own == 1 ? 0 : 1 at run time
}

void requireBroadcastsTo(const ir::Shape &own, const ir::Shape &to, const std::string &what) {
  if (own.size() > to.size())
    fail("{}: shape {} has more dimensions than {}, which it must broadcast to", what,
         ir::shapeToString(own), ir::shapeToString(to));
  size_t off = to.size() - own.size();
  for (size_t d = 0; d < own.size(); ++d) {
    const sym::Expr &o = own[d], &t = to[off + d];
    if (o.isConst() && t.isConst() && !o.isConst(1) && o->value != t->value)
      fail("{}: shape {} does not broadcast to {} (dim {}: {} vs {})", what, ir::shapeToString(own),
           ir::shapeToString(to), d, o->value, t->value);
  }
}

loop::VRef loadBroadcast(sym::Context &ctx, const LTensor &t, const ir::Shape &shape,
                         const Index &idx) {
  // The ops check their operands with a named message first; this keeps a missed check from
  // reading outside t.
  requireBroadcastsTo(t.shape, shape, "operand");
  size_t off = shape.size() - t.shape.size();
  Index sub(t.shape.size());
  for (size_t d = 0; d < t.shape.size(); ++d)
    sub[d] = idx[off + d] * broadcastStep(ctx, t.shape[d], shape[off + d]);
  return t.load(sub);
}

ir::Shape broadcastShapes(const ir::Shape &a, const ir::Shape &b, const std::string &what) {
  size_t n = std::max(a.size(), b.size());
  ir::Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    bool hasA = i + a.size() >= n, hasB = i + b.size() >= n;
    if (!hasA) {
      r[i] = b[i + b.size() - n];
      continue;
    }
    if (!hasB) {
      r[i] = a[i + a.size() - n];
      continue;
    }
    sym::Expr x = a[i + a.size() - n], y = b[i + b.size() - n];
    if (x == y || y.isConst(1))
      r[i] = x;
    else if (x.isConst(1))
      r[i] = y;
    else if (x.isConst() && y.isConst())
      fail("{}: shapes {} and {} cannot be broadcast (dim {}: {} vs {})", what,
           ir::shapeToString(a), ir::shapeToString(b), i, x->value, y->value);
    else if (x.isConst())
      r[i] = x; // the symbolic one must be 1 or equal at run time
    else if (y.isConst())
      r[i] = y;
    else
      r[i] = sym::max(x, y); // either may be 1 at run time
  }
  return r;
}

std::vector<sym::Expr> rowMajorStrides(sym::Context &ctx, const ir::Shape &shape) {
  std::vector<sym::Expr> strides(shape.size());
  sym::Expr step = ctx.constant(1);
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = step;
    step = step * shape[d];
  }
  return strides;
}

std::optional<AffineLoad> affineLoad(sym::Context &ctx, const LTensor &t) {
  if (t.buffer) return AffineLoad{t.buffer, ctx.constant(0), rowMajorStrides(ctx, t.shape)};
  // Loads at fresh index symbols (ranged like loop variables, so unravelled reshapes fold);
  // the offset at 0 and the step of each dim give the affine form, which must rebuild the
  // load's index exactly.
  Index idx;
  for (const sym::Expr &d : t.shape) {
    const sym::Range r = sym::rangeOf(d);
    idx.push_back(ctx.freshSymbol("_av", 0, r.hi == INT64_MAX ? INT64_MAX : r.hi - 1));
  }
  const loop::VRef v = t.load(idx);
  if (!v || v->kind != loop::VKind::Load || !v->indirect.empty() || !v->buf ||
      v->buf->dtype != t.dtype)
    return std::nullopt;
  std::map<const sym::Node *, sym::Expr> at;
  for (const sym::Expr &i : idx)
    at[i.node()] = ctx.constant(0);
  AffineLoad r{v->buf, sym::substitute(v->sym, at), {}};
  sym::Expr affine = r.offset;
  for (const sym::Expr &i : idx) {
    at[i.node()] = ctx.constant(1);
    r.strides.push_back(sym::substitute(v->sym, at) - r.offset);
    at[i.node()] = ctx.constant(0);
    affine = affine + r.strides.back() * i;
  }
  if (!sym::provablyEqual(affine, v->sym)) return std::nullopt;
  return r;
}

loop::Buffer *contiguousBuffer(sym::Context &ctx, const LTensor &t) {
  if (t.buffer) return t.buffer;
  const std::optional<AffineLoad> view = affineLoad(ctx, t);
  if (!view || !view->offset.isConst(0)) return nullptr;
  const std::vector<sym::Expr> dense = rowMajorStrides(ctx, t.shape);
  for (size_t d = 0; d < dense.size(); ++d)
    // A dim of extent 1 is never stepped: its stride does not matter.
    if (!t.shape[d].isConst(1) && !sym::provablyEqual(view->strides[d], dense[d])) return nullptr;
  return view->buf;
}

} // namespace kiln::lower
