// Fuzz target 2: `sym` differential. The input builds an expression twice: as a plain tree
// evaluated directly with integer math (the reference), and through sym::Context, which
// simplifies as it builds. At points inside the symbols' ranges the simplified expression
// must evaluate to the reference value and lie inside rangeOf(). Values are kept small
// enough that the reference never overflows (inputs that would are skipped).
#include "support/error.h"
#include "sym/expr.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace kiln;

namespace {

struct Bytes {
  const uint8_t *p;
  size_t n;
  uint8_t next() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int64_t small(int64_t lo, int64_t hi) { return lo + next() % (hi - lo + 1); }
};

struct Ref {
  enum Op { Const, Sym, Add, Mul, Div, Mod, Min, Max } op;
  int64_t value = 0;
  int sym = 0;
  std::unique_ptr<Ref> a, b;
};

const char *kNames[3] = {"s0", "s1", "s2"};

std::optional<int64_t> eval(const Ref &r, const int64_t *env) {
  if (r.op == Ref::Const) return r.value;
  if (r.op == Ref::Sym) return env[r.sym];
  auto x = eval(*r.a, env), y = eval(*r.b, env);
  if (!x || !y) return std::nullopt;
  int64_t out;
  switch (r.op) {
  case Ref::Add:
    if (__builtin_add_overflow(*x, *y, &out)) return std::nullopt;
    return out;
  case Ref::Mul:
    if (__builtin_mul_overflow(*x, *y, &out)) return std::nullopt;
    return out;
  case Ref::Div: { // floor division, divisor > 0 by construction
    int64_t q = *x / *y;
    return (*x % *y != 0 && *x < 0) ? q - 1 : q;
  }
  case Ref::Mod: {
    int64_t m = *x % *y;
    return m < 0 ? m + *y : m;
  }
  case Ref::Min:
    return std::min(*x, *y);
  case Ref::Max:
    return std::max(*x, *y);
  default:
    std::abort();
  }
}

/// Builds the reference tree and the sym expression side by side.
std::unique_ptr<Ref> build(Bytes &in, sym::Context &ctx, int depth, sym::Expr &out) {
  auto r = std::make_unique<Ref>();
  uint8_t c = in.next();
  int op = depth >= 6 ? c % 2 : c % 8;
  if (op == 0) {
    r->op = Ref::Const;
    r->value = in.small(-40, 40);
    out = ctx.constant(r->value);
    return r;
  }
  if (op == 1) {
    r->op = Ref::Sym;
    r->sym = in.next() % 3;
    out = *ctx.findSymbol(kNames[r->sym]);
    return r;
  }
  sym::Expr a, b;
  r->a = build(in, ctx, depth + 1, a);
  r->op = static_cast<Ref::Op>(op);
  if (op == Ref::Div || op == Ref::Mod) {
    // Divisor > 0: a positive constant, or a symbol whose range starts at 1 (s2).
    if (in.next() % 2) {
      r->b = std::make_unique<Ref>();
      r->b->op = Ref::Const;
      r->b->value = in.small(1, 17);
      b = ctx.constant(r->b->value);
    } else {
      r->b = std::make_unique<Ref>();
      r->b->op = Ref::Sym;
      r->b->sym = 2;
      b = *ctx.findSymbol("s2");
    }
  } else {
    r->b = build(in, ctx, depth + 1, b);
  }
  switch (r->op) {
  case Ref::Add:
    out = ctx.add(a, b);
    break;
  case Ref::Mul:
    out = ctx.mul(a, b);
    break;
  case Ref::Div:
    out = ctx.floorDiv(a, b);
    break;
  case Ref::Mod:
    out = ctx.mod(a, b);
    break;
  case Ref::Min:
    out = ctx.min(a, b);
    break;
  case Ref::Max:
    out = ctx.max(a, b);
    break;
  default:
    std::abort();
  }
  return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Bytes in{data, size};
  sym::Context ctx;
  int64_t lo[3], hi[3];
  for (int s = 0; s < 3; ++s) {
    lo[s] = s == 2 ? in.small(1, 20) : in.small(-50, 50);
    hi[s] = lo[s] + in.small(0, 60);
    ctx.symbol(kNames[s], lo[s], hi[s]);
  }
  sym::Expr e;
  std::unique_ptr<Ref> ref;
  try {
    ref = build(in, ctx, 0, e);
  } catch (const UserError &) {
    return 0;
  }
  sym::Range range = sym::rangeOf(e);
  for (int point = 0; point < 8; ++point) {
    int64_t env[3];
    std::map<std::string, int64_t> named;
    for (int s = 0; s < 3; ++s) {
      env[s] = lo[s] + static_cast<int64_t>(in.next()) % (hi[s] - lo[s] + 1);
      named[kNames[s]] = env[s];
    }
    std::optional<int64_t> want = eval(*ref, env);
    if (!want) return 0;
    if (std::getenv("KILN_FUZZ_VERBOSE"))
      std::fprintf(stderr, "expr %s\n", sym::toString(e).c_str());
    int64_t got;
    try {
      got = sym::evaluate(e, named);
    } catch (const UserError &) {
      return 0; // an intermediate of the canonical form overflows where the tree's did not
    }
    if (got != *want || got < range.lo || got > range.hi) {
      std::fprintf(stderr,
                   "sym mismatch: %s at s0=%lld s1=%lld s2=%lld: simplified %lld, "
                   "reference %lld, range [%lld, %lld]\n",
                   sym::toString(e).c_str(), (long long)env[0], (long long)env[1],
                   (long long)env[2], (long long)got, (long long)*want, (long long)range.lo,
                   (long long)range.hi);
      std::abort();
    }
  }
  return 0;
}
