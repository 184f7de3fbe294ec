// Questions about built expressions: the range of values one can take, whether one is
// provably >= or == another, its value for given symbols, substitution and free symbols.
#include "sym/expr.h"

#include "support/error.h"
#include "sym/floor_div.h"

#include <algorithm>

namespace kiln::sym {

namespace {

int64_t satAdd(int64_t a, int64_t b) {
  __int128 r = static_cast<__int128>(a) + b;
  if (r > INT64_MAX) return INT64_MAX;
  if (r < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(r);
}
int64_t satMul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  __int128 r = static_cast<__int128>(a) * b;
  if (r > INT64_MAX) return INT64_MAX;
  if (r < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(r);
}

} // namespace

Range rangeOf(Expr e) {
  switch (e.kind()) {
  case Kind::Const:
    return {e->value, e->value};
  case Kind::Symbol:
    return e.ctx().symbolRange(e);
  case Kind::Add: {
    Range r{0, 0};
    for (size_t i = 0; i < e.numOps(); ++i) {
      Range o = rangeOf(e.op(i));
      r.lo = satAdd(r.lo, o.lo);
      r.hi = satAdd(r.hi, o.hi);
    }
    return r;
  }
  case Kind::Mul: {
    Range r{1, 1};
    for (size_t i = 0; i < e.numOps(); ++i) {
      Range o = rangeOf(e.op(i));
      int64_t c[4] = {satMul(r.lo, o.lo), satMul(r.lo, o.hi), satMul(r.hi, o.lo),
                      satMul(r.hi, o.hi)};
      r = {*std::min_element(c, c + 4), *std::max_element(c, c + 4)};
    }
    return r;
  }
  case Kind::FloorDiv: {
    Range a = rangeOf(e.op(0)), b = rangeOf(e.op(1));
    if (b.lo <= 0) return {};
    auto fd = [](int64_t x, int64_t y) {
      return (x == INT64_MIN || x == INT64_MAX) ? x : floorDivInt(x, y);
    };
    return {std::min(fd(a.lo, b.lo), fd(a.lo, b.hi)), std::max(fd(a.hi, b.lo), fd(a.hi, b.hi))};
  }
  case Kind::Mod: {
    Range b = rangeOf(e.op(1));
    if (b.lo <= 0 || b.hi == INT64_MAX) return {0, INT64_MAX};
    return {0, b.hi - 1};
  }
  case Kind::Min: {
    Range a = rangeOf(e.op(0)), b = rangeOf(e.op(1));
    return {std::min(a.lo, b.lo), std::min(a.hi, b.hi)};
  }
  case Kind::Max: {
    Range a = rangeOf(e.op(0)), b = rangeOf(e.op(1));
    return {std::max(a.lo, b.lo), std::max(a.hi, b.hi)};
  }
  }
  return {};
}

bool provablyGE(Expr a, Expr b) {
  if (a == b) return true;
  // min(.., a, ..) <= a and max(.., b, ..) >= b whatever the ranges (an unbounded dim, as in
  // a model compiled without --dynamic, has none): BERT's max(seq, min(512, seq)) is seq.
  if (b.kind() == Kind::Min)
    for (size_t i = 0; i < b.numOps(); ++i)
      if (b.op(i) == a) return true;
  if (a.kind() == Kind::Max)
    for (size_t i = 0; i < a.numOps(); ++i)
      if (a.op(i) == b) return true;
  Context &ctx = a.ctx();
  // A query, not a size: when a - b leaves int64 (INT64_MAX stands for "to the end" in a
  // Slice), nothing is provable, which is not the model's error.
  if (a.isConst() && b.isConst()) return a->value >= b->value;
  Expr d;
  try {
    d = ctx.add(a, ctx.mul(ctx.constant(-1), b));
  } catch (const UserError &) {
    return false;
  }
  if (d.isConst()) return d->value >= 0;
  Range r = rangeOf(d);
  return r.lo >= 0 && r.lo != INT64_MIN;
}

bool provablyEqual(Expr a, Expr b) {
  if (a == b) return true;
  return (a - b).isConst(0);
}

int64_t evaluate(Expr e, const std::map<std::string, int64_t> &env) {
  switch (e.kind()) {
  case Kind::Const:
    return e->value;
  case Kind::Symbol: {
    auto it = env.find(e.name());
    if (it == env.end()) fail("symbol '{}' has no value", e.name());
    return it->second;
  }
  case Kind::Add: {
    int64_t r = 0;
    for (size_t i = 0; i < e.numOps(); ++i)
      if (__builtin_add_overflow(r, evaluate(e.op(i), env), &r))
        fail("'{}' overflows int64 for these sizes", toString(e));
    return r;
  }
  case Kind::Mul: {
    // A zero factor wins whatever the others are (their product alone may not fit).
    int64_t r = 1;
    bool overflow = false;
    for (size_t i = 0; i < e.numOps(); ++i) {
      int64_t f = evaluate(e.op(i), env);
      if (f == 0) return 0;
      overflow |= __builtin_mul_overflow(r, f, &r);
    }
    if (overflow) fail("'{}' overflows int64 for these sizes", toString(e));
    return r;
  }
  case Kind::FloorDiv:
    return floorDivInt(evaluate(e.op(0), env), evaluate(e.op(1), env));
  case Kind::Mod:
    return modInt(evaluate(e.op(0), env), evaluate(e.op(1), env));
  case Kind::Min:
    return std::min(evaluate(e.op(0), env), evaluate(e.op(1), env));
  case Kind::Max:
    return std::max(evaluate(e.op(0), env), evaluate(e.op(1), env));
  }
  return 0;
}

Expr substitute(Expr e, const std::map<const Node *, Expr> &repl) {
  auto it = repl.find(e.node());
  if (it != repl.end()) return it->second;
  if (e.numOps() == 0) return e;
  Context &ctx = e.ctx();
  std::vector<Expr> ops;
  for (size_t i = 0; i < e.numOps(); ++i)
    ops.push_back(substitute(e.op(i), repl));
  switch (e.kind()) {
  case Kind::Add: {
    Expr r = ctx.constant(0);
    for (Expr o : ops)
      r = ctx.add(r, o);
    return r;
  }
  case Kind::Mul: {
    Expr r = ctx.constant(1);
    for (Expr o : ops)
      r = ctx.mul(r, o);
    return r;
  }
  case Kind::FloorDiv:
    return ctx.floorDiv(ops[0], ops[1]);
  case Kind::Mod:
    return ctx.mod(ops[0], ops[1]);
  case Kind::Min:
    return ctx.min(ops[0], ops[1]);
  case Kind::Max:
    return ctx.max(ops[0], ops[1]);
  case Kind::Const:
  case Kind::Symbol:
    break;
  }
  return e;
}

static void gatherSymbols(Expr e, std::map<uint64_t, Expr> &out) {
  if (e.isSymbol()) {
    out[e->id] = e;
    return;
  }
  for (size_t i = 0; i < e.numOps(); ++i)
    gatherSymbols(e.op(i), out);
}

std::vector<Expr> freeSymbols(Expr e) {
  std::map<uint64_t, Expr> m;
  gatherSymbols(e, m);
  std::vector<Expr> r;
  for (auto &[id, s] : m)
    r.push_back(s);
  return r;
}

} // namespace kiln::sym
