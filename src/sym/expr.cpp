// Interning and the algebraic simplifier. Canonical forms: a sum is a list of terms
// coeff*base sorted by base id with the constant last; a product carries its constant
// coefficient first; constants distribute over sums so affine indices stay flat.
// Range analysis, proofs, evaluation and substitution are in analysis.cpp.
#include "sym/expr.h"

#include "support/error.h"
#include "sym/floor_div.h"

#include <algorithm>
#include <unordered_map>

namespace kiln::sym {

const char *kindName(Kind k) {
  switch (k) {
#define X(k)                                                                                       \
  case Kind::k:                                                                                    \
    return #k;
    KILN_SYM_KINDS(X)
#undef X
  }
  return "?";
}

namespace {

/// Constant arithmetic of the simplifier: a symbolic size whose constants leave int64 comes
/// from absurd dims in the model, which is the user's error (never silent wrap-around).
int64_t addConst(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    fail("a symbolic size overflows int64 ({} + {}); the model's dims are too large", a, b);
  return r;
}
int64_t mulConst(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    fail("a symbolic size overflows int64 ({} * {}); the model's dims are too large", a, b);
  return r;
}

} // namespace

namespace {

size_t hashNode(Kind k, const std::vector<const Node *> &ops, int64_t value,
                const std::string &name) {
  size_t h = std::hash<int>()(static_cast<int>(k)) * 1000003u;
  h ^= std::hash<int64_t>()(value) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= std::hash<std::string>()(name) + (h << 6) + (h >> 2);
  for (const Node *o : ops)
    h ^= std::hash<const void *>()(o) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

struct KeyHash {
  size_t operator()(const Node *n) const { return n->hash; }
};
struct KeyEq {
  bool operator()(const Node *a, const Node *b) const {
    return a->kind == b->kind && a->value == b->value && a->name == b->name && a->ops == b->ops;
  }
};

} // namespace

struct Context::Impl {
  std::unordered_map<const Node *, std::unique_ptr<Node>, KeyHash, KeyEq> table;
  std::map<std::string, const Node *> symbols;
  std::unordered_map<const Node *, Range> ranges;
  std::unordered_map<const Node *, int64_t> hints;
  uint64_t nextId = 0;
  uint64_t fresh = 0;
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

Expr Context::make(Kind k, std::vector<const Node *> ops, int64_t value, std::string name) {
  Node probe;
  probe.kind = k;
  probe.ops = std::move(ops);
  probe.value = value;
  probe.name = std::move(name);
  probe.hash = hashNode(probe.kind, probe.ops, probe.value, probe.name);
  auto it = impl_->table.find(&probe);
  if (it != impl_->table.end()) return Expr(it->second.get());
  auto node = std::make_unique<Node>(std::move(probe));
  node->id = impl_->nextId++;
  node->ctx = this;
  const Node *raw = node.get();
  impl_->table.emplace(raw, std::move(node));
  return Expr(raw);
}

Expr Context::constant(int64_t v) {
  return make(Kind::Const, {}, v);
}

Expr Context::symbol(const std::string &name, int64_t lo, int64_t hi) {
  auto it = impl_->symbols.find(name);
  if (it != impl_->symbols.end()) return Expr(it->second);
  Expr s = make(Kind::Symbol, {}, 0, name);
  impl_->symbols[name] = s.node();
  impl_->ranges[s.node()] = Range{lo, hi};
  return s;
}

void Context::setHint(Expr symbol, int64_t value) {
  impl_->hints[symbol.node()] = value;
}

std::optional<int64_t> Context::hint(Expr symbol) const {
  auto it = impl_->hints.find(symbol.node());
  if (it == impl_->hints.end()) return std::nullopt;
  return it->second;
}

Expr Context::freshSymbol(const std::string &prefix, int64_t lo, int64_t hi) {
  for (;;) {
    std::string name = prefix + std::to_string(impl_->fresh++);
    if (!impl_->symbols.count(name)) return symbol(name, lo, hi);
  }
}

std::optional<Expr> Context::findSymbol(const std::string &name) const {
  auto it = impl_->symbols.find(name);
  if (it == impl_->symbols.end()) return std::nullopt;
  return Expr(it->second);
}

void Context::setRange(Expr s, Range r) {
  KILN_ASSERT(s.isSymbol(), "setRange on non-symbol {}", toString(s));
  impl_->ranges[s.node()] = r;
}

Range Context::symbolRange(Expr s) const {
  auto it = impl_->ranges.find(s.node());
  return it == impl_->ranges.end() ? Range{} : it->second;
}

// ---- sums ---------------------------------------------------------------------------

namespace {

/// Splits a term into (coefficient, base); base is null for a constant.
std::pair<int64_t, const Node *> splitTerm(Context &ctx, Expr e) {
  if (e.isConst()) return {e->value, nullptr};
  if (e.kind() == Kind::Mul && e.op(0).isConst()) {
    std::vector<const Node *> rest(e->ops.begin() + 1, e->ops.end());
    if (rest.size() == 1) return {e.op(0)->value, rest[0]};
    return {e.op(0)->value, ctx.make(Kind::Mul, rest).node()};
  }
  return {1, e.node()};
}

void collectTerms(Context &ctx, Expr e, std::map<uint64_t, std::pair<const Node *, int64_t>> &terms,
                  int64_t &constant) {
  if (e.kind() == Kind::Add) {
    for (size_t i = 0; i < e.numOps(); ++i)
      collectTerms(ctx, e.op(i), terms, constant);
    return;
  }
  auto [coeff, base] = splitTerm(ctx, e);
  if (!base) {
    constant = addConst(constant, coeff);
    return;
  }
  auto &slot = terms[base->id];
  slot.first = base;
  slot.second = addConst(slot.second, coeff);
}

Expr scaleBase(Context &ctx, int64_t coeff, const Node *base) {
  if (coeff == 1) return Expr(base);
  std::vector<const Node *> ops{ctx.constant(coeff).node()};
  if (base->kind == Kind::Mul)
    ops.insert(ops.end(), base->ops.begin(), base->ops.end());
  else
    ops.push_back(base);
  return ctx.make(Kind::Mul, ops);
}

Expr buildSum(Context &ctx, const std::map<uint64_t, std::pair<const Node *, int64_t>> &terms,
              int64_t constant) {
  std::vector<const Node *> ops;
  for (auto &[id, t] : terms)
    if (t.second != 0) ops.push_back(scaleBase(ctx, t.second, t.first).node());
  if (ops.empty()) return ctx.constant(constant);
  if (constant != 0) ops.push_back(ctx.constant(constant).node());
  if (ops.size() == 1) return Expr(ops[0]);
  return ctx.make(Kind::Add, ops);
}

} // namespace

Expr Context::add(Expr a, Expr b) {
  if (a.isConst() && b.isConst()) return constant(addConst(a->value, b->value));
  if (a.isConst(0)) return b;
  if (b.isConst(0)) return a;
  std::map<uint64_t, std::pair<const Node *, int64_t>> terms;
  int64_t c = 0;
  collectTerms(*this, a, terms, c);
  collectTerms(*this, b, terms, c);
  // k*mod(e, d) + k*d*floor_div(e, d) == k*e: recombines what unravel() split, so
  // reshape views of contiguous data index without divisions.
  for (auto &[id, t] : terms) {
    const Node *m = t.first;
    if (t.second == 0 || m->kind != Kind::Mod || m->ops[1]->kind != Kind::Const) continue;
    int64_t d = m->ops[1]->value;
    Expr fd = floorDiv(Expr(m->ops[0]), Expr(m->ops[1]));
    auto it = terms.find(fd->id);
    if (it == terms.end() || it->second.second != t.second * d) continue;
    int64_t k = t.second;
    t.second = 0;
    it->second.second = 0;
    collectTerms(*this, mul(constant(k), Expr(m->ops[0])), terms, c);
    return add(buildSum(*this, terms, c), constant(0));
  }
  return buildSum(*this, terms, c);
}

// ---- products -----------------------------------------------------------------------

Expr Context::mul(Expr a, Expr b) {
  if (a.isConst() && b.isConst()) return constant(mulConst(a->value, b->value));
  if (b.isConst()) std::swap(a, b);
  if (a.isConst()) {
    int64_t c = a->value;
    if (c == 0) return constant(0);
    if (c == 1) return b;
    if (b.kind() == Kind::Add) { // distribute: keeps affine indices flat
      std::map<uint64_t, std::pair<const Node *, int64_t>> terms;
      int64_t k = 0;
      collectTerms(*this, b, terms, k);
      for (auto &[id, t] : terms)
        t.second = mulConst(t.second, c);
      return buildSum(*this, terms, mulConst(k, c));
    }
    auto [coeff, base] = splitTerm(*this, b);
    return scaleBase(*this, mulConst(coeff, c), base);
  }
  auto [ca, ba] = splitTerm(*this, a);
  auto [cb, bb] = splitTerm(*this, b);
  std::vector<const Node *> factors;
  for (const Node *base : {ba, bb}) {
    if (base->kind == Kind::Mul)
      factors.insert(factors.end(), base->ops.begin(), base->ops.end());
    else
      factors.push_back(base);
  }
  std::sort(factors.begin(), factors.end(),
            [](const Node *x, const Node *y) { return x->id < y->id; });
  Expr base = make(Kind::Mul, factors);
  return scaleBase(*this, mulConst(ca, cb), base.node());
}

// ---- division -----------------------------------------------------------------------

namespace {

/// Splits sum e into (multiple of d, remainder) where the first part divided by d is exact.
std::pair<Expr, Expr> splitDivisible(Context &ctx, Expr e, int64_t d) {
  std::map<uint64_t, std::pair<const Node *, int64_t>> terms;
  int64_t c = 0;
  collectTerms(ctx, e, terms, c);
  std::map<uint64_t, std::pair<const Node *, int64_t>> q, r;
  for (auto &[id, t] : terms) {
    if (t.second % d == 0)
      q[id] = {t.first, t.second / d};
    else
      r[id] = t;
  }
  int64_t cq = floorDivInt(c, d);
  int64_t cr = modInt(c, d);
  return {buildSum(ctx, q, cq), buildSum(ctx, r, cr)};
}

/// If e == k * d as a product containing factor d, returns k.
std::optional<Expr> exactQuotient(Context &ctx, Expr e, Expr d) {
  if (e == d) return ctx.constant(1);
  if (e.kind() != Kind::Mul) return std::nullopt;
  std::vector<const Node *> ops = e->ops;
  auto it = std::find(ops.begin(), ops.end(), d.node());
  if (it == ops.end()) return std::nullopt;
  ops.erase(it);
  Expr r = ctx.constant(1);
  for (const Node *o : ops)
    r = ctx.mul(r, Expr(o));
  return r;
}

} // namespace

Expr Context::floorDiv(Expr a, Expr b) {
  if (a.isConst() && b.isConst()) {
    KILN_ASSERT(b->value != 0, "floor_div by zero");
    return constant(floorDivInt(a->value, b->value));
  }
  if (b.isConst(1)) return a;
  if (b.isConst() && b->value > 0) {
    int64_t d = b->value;
    if (a.kind() == Kind::FloorDiv && a.op(1).isConst() && a.op(1)->value > 0)
      return floorDiv(a.op(0), constant(mulConst(a.op(1)->value, d)));
    auto [q, r] = splitDivisible(*this, a, d);
    Range rr = rangeOf(r);
    Expr rest = (rr.lo >= 0 && rr.hi < d) ? constant(0)
                : r.isConst()             ? constant(floorDivInt(r->value, d))
                                          : make(Kind::FloorDiv, {r.node(), b.node()});
    return add(q, rest);
  }
  if (auto k = exactQuotient(*this, a, b)) return *k;
  return make(Kind::FloorDiv, {a.node(), b.node()});
}

Expr Context::mod(Expr a, Expr b) {
  if (a.isConst() && b.isConst()) {
    KILN_ASSERT(b->value != 0, "mod by zero");
    return constant(modInt(a->value, b->value));
  }
  if (b.isConst(1)) return constant(0);
  if (b.isConst() && b->value > 0) {
    int64_t d = b->value;
    auto [q, r] = splitDivisible(*this, a, d);
    (void)q;
    Range rr = rangeOf(r);
    if (rr.lo >= 0 && rr.hi < d) return r;
    if (r.isConst()) return constant(modInt(r->value, d));
    return make(Kind::Mod, {r.node(), b.node()});
  }
  if (exactQuotient(*this, a, b)) return constant(0);
  Range ra = rangeOf(a), rb = rangeOf(b);
  if (ra.lo >= 0 && rb.lo > 0 && provablyGE(b - 1, a)) return a;
  return make(Kind::Mod, {a.node(), b.node()});
}

Expr Context::min(Expr a, Expr b) {
  if (a == b) return a;
  if (a.isConst() && b.isConst()) return constant(std::min(a->value, b->value));
  if (provablyGE(b, a)) return a;
  if (provablyGE(a, b)) return b;
  if (b < a) std::swap(a, b);
  return make(Kind::Min, {a.node(), b.node()});
}

Expr Context::max(Expr a, Expr b) {
  if (a == b) return a;
  if (a.isConst() && b.isConst()) return constant(std::max(a->value, b->value));
  if (provablyGE(a, b)) return a;
  if (provablyGE(b, a)) return b;
  if (b < a) std::swap(a, b);
  return make(Kind::Max, {a.node(), b.node()});
}

// ---- free functions ---------------------------------------------------------------

Expr operator+(Expr a, Expr b) {
  return a.ctx().add(a, b);
}
Expr operator-(Expr a, Expr b) {
  return a.ctx().add(a, a.ctx().mul(a.ctx().constant(-1), b));
}
Expr operator*(Expr a, Expr b) {
  return a.ctx().mul(a, b);
}
Expr operator+(Expr a, int64_t b) {
  return a + a.ctx().constant(b);
}
Expr operator-(Expr a, int64_t b) {
  return a + a.ctx().constant(-b);
}
Expr operator*(Expr a, int64_t b) {
  return a * a.ctx().constant(b);
}
Expr operator-(Expr a) {
  return a * int64_t{-1};
}
Expr floorDiv(Expr a, Expr b) {
  return a.ctx().floorDiv(a, b);
}
Expr floorDiv(Expr a, int64_t b) {
  return a.ctx().floorDiv(a, a.ctx().constant(b));
}
Expr mod(Expr a, Expr b) {
  return a.ctx().mod(a, b);
}
Expr mod(Expr a, int64_t b) {
  return a.ctx().mod(a, a.ctx().constant(b));
}
Expr min(Expr a, Expr b) {
  return a.ctx().min(a, b);
}
Expr max(Expr a, Expr b) {
  return a.ctx().max(a, b);
}

} // namespace kiln::sym
