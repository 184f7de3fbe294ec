#include "loop/vexpr.h"

#include "loop/program.h"
#include "loop/scalar.h"
#include "support/error.h"

#include <cmath>
#include <fmt/format.h>
#include <set>

namespace kiln::loop {

namespace {

VRef make(VNode n) {
  return std::make_shared<const VNode>(std::move(n));
}

VNode blank(VKind k, DType t) {
  VNode n{};
  n.kind = k;
  n.dtype = t;
  return n;
}

Scalar scalarOf(const VRef &v) {
  return Scalar{v->fval, v->ival};
}

VRef fromScalar(DType t, Scalar s) {
  VNode n = blank(VKind::Const, t);
  n.fval = s.f;
  n.ival = s.i;
  if (isFloat(t))
    n.ival = 0;
  else
    n.fval = 0;
  return make(std::move(n));
}

bool isIntLike(DType t) {
  return isInteger(t);
}

} // namespace

VRef constant(DType t, double v) {
  Scalar s;
  if (isFloat(t))
    s.f = v;
  else if (std::isnan(v))
    s.i = 0; // a float → int conversion outside int64 is UB in C++: saturate instead
  else if (v >= 9223372036854775807.0)
    s.i = INT64_MAX;
  else if (v <= -9223372036854775808.0)
    s.i = INT64_MIN;
  else
    s.i = static_cast<int64_t>(v);
  return fromScalar(t, normalize(t, s));
}

VRef constantInt(DType t, int64_t v) {
  Scalar s;
  if (isFloat(t))
    s.f = static_cast<double>(v);
  else
    s.i = v;
  return fromScalar(t, normalize(t, s));
}

VRef symInt(sym::Expr e, DType t) {
  if (e.isConst()) return constantInt(t, e->value);
  VNode n = blank(VKind::SymInt, t);
  n.sym = e;
  return make(std::move(n));
}

VRef load(Buffer *b, sym::Expr index, std::vector<std::pair<sym::Expr, VRef>> indirect) {
  // A constant buffer read at a known point with no indirection folds to its value;
  // this is what keeps shape tensors (Shape/Gather/Concat chains) compile-time.
  if (b->data && index.isConst() && indirect.empty() && b->dtype != DType::String) {
    const ir::TensorData &d = *b->data;
    int64_t i = index->value;
    if (i >= 0 && i < d.numel()) {
      if (isFloat(d.dtype)) return constant(d.dtype, d.getDouble(i));
      return constantInt(d.dtype, d.getInt(i));
    }
  }
  VNode n = blank(VKind::Load, b->dtype);
  n.buf = b;
  n.sym = index;
  n.indirect = std::move(indirect);
  return make(std::move(n));
}

bool isConst(const VRef &v) {
  return v->kind == VKind::Const;
}

double constAsDouble(const VRef &v) {
  return asDouble(v->dtype, scalarOf(v));
}

std::optional<sym::Expr> asSym(const VRef &v, sym::Context &ctx) {
  if (!isIntLike(v->dtype)) return std::nullopt;
  if (v->kind == VKind::Const) return ctx.constant(v->ival);
  if (v->kind == VKind::SymInt) return v->sym;
  return std::nullopt;
}

VRef unary(UnaryOp op, VRef a) {
  DType out = unaryIsPredicate(op) ? DType::Bool : a->dtype;
  if (isConst(a)) return fromScalar(out, evalUnary(op, a->dtype, scalarOf(a)));
  if (op == UnaryOp::Neg && a->kind == VKind::SymInt) return symInt(-a->sym, a->dtype);
  VNode n = blank(VKind::Unary, out);
  n.uop = op;
  n.args = {std::move(a)};
  return make(std::move(n));
}

static std::optional<VRef> foldSymBinary(BinaryOp op, const VRef &a, const VRef &b) {
  if (!isIntLike(a->dtype)) return std::nullopt;
  if (!(a->kind == VKind::SymInt || b->kind == VKind::SymInt)) return std::nullopt;
  sym::Context &ctx = (a->kind == VKind::SymInt ? a : b)->sym.ctx();
  auto sa = asSym(a, ctx), sb = asSym(b, ctx);
  if (!sa || !sb) return std::nullopt;
  sym::Expr x = *sa, y = *sb;
  auto nonneg = [](sym::Expr e) { return sym::rangeOf(e).lo >= 0; };
  auto boolean = [](bool v) { return constantInt(DType::Bool, v); };
  switch (op) {
  case BinaryOp::Add:
    return symInt(x + y, a->dtype);
  case BinaryOp::Sub:
    return symInt(x - y, a->dtype);
  case BinaryOp::Mul:
    return symInt(x * y, a->dtype);
  case BinaryOp::Div:
    if (nonneg(x) && sym::rangeOf(y).lo > 0) return symInt(sym::floorDiv(x, y), a->dtype);
    return std::nullopt;
  case BinaryOp::Mod:
    if (sym::rangeOf(y).lo > 0) return symInt(sym::mod(x, y), a->dtype);
    return std::nullopt;
  case BinaryOp::Max:
    return symInt(sym::max(x, y), a->dtype);
  case BinaryOp::Min:
    return symInt(sym::min(x, y), a->dtype);
  case BinaryOp::Eq:
    if (sym::provablyEqual(x, y)) return boolean(true);
    if (sym::provablyGE(x, y + 1) || sym::provablyGE(y, x + 1)) return boolean(false);
    return std::nullopt;
  case BinaryOp::Ne:
    if (sym::provablyEqual(x, y)) return boolean(false);
    if (sym::provablyGE(x, y + 1) || sym::provablyGE(y, x + 1)) return boolean(true);
    return std::nullopt;
  case BinaryOp::Lt:
  case BinaryOp::Ge:
    if (sym::provablyGE(x, y)) return boolean(op == BinaryOp::Ge);
    if (sym::provablyGE(y, x + 1)) return boolean(op == BinaryOp::Lt);
    return std::nullopt;
  case BinaryOp::Gt:
  case BinaryOp::Le:
    if (sym::provablyGE(x, y + 1)) return boolean(op == BinaryOp::Gt);
    if (sym::provablyGE(y, x)) return boolean(op == BinaryOp::Le);
    return std::nullopt;
  default:
    return std::nullopt;
  }
}

VRef binary(BinaryOp op, VRef a, VRef b) {
  KILN_ASSERT(a->dtype == b->dtype, "binary {} on {} and {}", binaryName(op), dtypeName(a->dtype),
              dtypeName(b->dtype));
  DType out = binaryIsPredicate(op) ? DType::Bool : a->dtype;
  if (isConst(a) && isConst(b))
    return fromScalar(out, evalBinary(op, a->dtype, scalarOf(a), scalarOf(b)));
  if (auto f = foldSymBinary(op, a, b)) return *f;
  // Algebraic identities that matter for generated code size (x*1, x+0).
  if (!isFloat(a->dtype) || true) {
    if (op == BinaryOp::Mul && isConst(b) && constAsDouble(b) == 1.0) return a;
    if (op == BinaryOp::Mul && isConst(a) && constAsDouble(a) == 1.0) return b;
    if ((op == BinaryOp::Add || op == BinaryOp::Sub) && isConst(b) && constAsDouble(b) == 0.0 &&
        !std::signbit(b->fval))
      return a;
    if (op == BinaryOp::Div && isConst(b) && constAsDouble(b) == 1.0) return a;
  }
  VNode n = blank(VKind::Binary, out);
  n.bop = op;
  n.args = {std::move(a), std::move(b)};
  return make(std::move(n));
}

VRef select(VRef c, VRef a, VRef b) {
  KILN_ASSERT(a->dtype == b->dtype, "select on {} and {}", dtypeName(a->dtype),
              dtypeName(b->dtype));
  if (isConst(c)) return c->ival ? a : b;
  if (a == b) return a;
  VNode n = blank(VKind::Select, a->dtype);
  n.args = {std::move(c), std::move(a), std::move(b)};
  return make(std::move(n));
}

VRef cast(VRef a, DType to) {
  if (a->dtype == to) return a;
  if (isConst(a)) return fromScalar(to, evalCast(a->dtype, to, scalarOf(a)));
  if (a->kind == VKind::SymInt && isIntLike(to) && dtypeSize(to) >= 4) return symInt(a->sym, to);
  VNode n = blank(VKind::Cast, to);
  n.args = {std::move(a)};
  return make(std::move(n));
}

VRef bitcast(VRef a, DType to) {
  if (a->dtype == to) return a;
  KILN_ASSERT(dtypeSize(a->dtype) == dtypeSize(to), "bitcast {} to {}", dtypeName(a->dtype),
              dtypeName(to));
  VNode n = blank(VKind::Cast, to);
  n.bits = true;
  n.args = {std::move(a)};
  return make(std::move(n));
}

static bool mentions(sym::Expr e, sym::Expr var) {
  if (e == var) return true;
  for (size_t i = 0; i < e.numOps(); ++i)
    if (mentions(e.op(i), var)) return true;
  return false;
}

/// Whether a value reads `var` (in an index or a symbolic integer) without binding it.
static bool usesFree(const VRef &v, sym::Expr var, std::set<const VNode *> &seen) {
  if (!seen.insert(v.get()).second) return false;
  if (v->kind == VKind::SymInt && mentions(v->sym, var)) return true;
  if (v->kind == VKind::Load) {
    for (auto &[s, iv] : v->indirect)
      if (s == var) return false;
    if (mentions(v->sym, var)) return true;
    for (auto &[s, iv] : v->indirect)
      if (usesFree(iv, var, seen)) return true;
  }
  for (const VRef &a : v->args)
    if (usesFree(a, var, seen)) return true;
  return false;
}

/// e (an integer expression of symbols) as a value with var replaced by `value`: a SymInt
/// outside any load that mentions var (e.g. a Concat's "which input" test read through a
/// Gather) has no binding of its own, so the symbol arithmetic becomes value arithmetic.
static VRef symWithValue(sym::Expr e, sym::Expr var, const VRef &value, DType t) {
  if (!mentions(e, var)) return symInt(e, t);
  if (e == var) return cast(value, t);
  auto arg = [&](size_t i) { return symWithValue(e.op(i), var, value, t); };
  auto fold = [&](BinaryOp op) {
    VRef r = arg(0);
    for (size_t i = 1; i < e.numOps(); ++i)
      r = binary(op, r, arg(i));
    return r;
  };
  switch (e.kind()) {
  case sym::Kind::Add:
    return fold(BinaryOp::Add);
  case sym::Kind::Mul:
    return fold(BinaryOp::Mul);
  case sym::Kind::Min:
    return fold(BinaryOp::Min);
  case sym::Kind::Max:
    return fold(BinaryOp::Max);
  case sym::Kind::FloorDiv: { // b > 0: floor(a / b) = (a - mod(a, b)) / b, exact
    VRef a = arg(0), b = arg(1);
    return binary(BinaryOp::Div, binary(BinaryOp::Sub, a, binary(BinaryOp::Mod, a, b)), b);
  }
  case sym::Kind::Mod: // ONNX Mod (fmod = 0) takes the divisor's sign: b > 0 gives [0, b)
    return binary(BinaryOp::Mod, arg(0), arg(1));
  case sym::Kind::Const:
  case sym::Kind::Symbol:
    break;
  }
  return symInt(e, t);
}

VRef bindIndirect(const VRef &v, sym::Expr var, const VRef &value) {
  if (v->kind == VKind::Const) return v;
  if (v->kind == VKind::SymInt) return symWithValue(v->sym, var, value, v->dtype);
  VNode n = *v;
  bool changed = false;
  for (auto &a : n.args) {
    VRef na = bindIndirect(a, var, value);
    changed |= na != a;
    a = na;
  }
  // A gather of a gather: var may be used by this load's own index bindings (the inner
  // gather's index is read at var); it is bound first so they see it.
  bool nested = false;
  if (v->kind == VKind::Load)
    for (auto &[s, iv] : v->indirect) {
      std::set<const VNode *> seen;
      nested |= usesFree(iv, var, seen);
    }
  if (v->kind == VKind::Load && (mentions(v->sym, var) || nested)) {
    n.indirect.insert(n.indirect.begin(), {var, value});
    changed = true;
  }
  return changed ? std::make_shared<const VNode>(std::move(n)) : v;
}

VRef substituteSyms(const VRef &v, const std::map<const sym::Node *, sym::Expr> &repl) {
  switch (v->kind) {
  case VKind::Const:
    return v;
  case VKind::SymInt:
    return symInt(sym::substitute(v->sym, repl), v->dtype);
  case VKind::Load: {
    std::vector<std::pair<sym::Expr, VRef>> ind;
    for (auto &[var, val] : v->indirect)
      ind.push_back({var, substituteSyms(val, repl)});
    return load(v->buf, sym::substitute(v->sym, repl), std::move(ind));
  }
  case VKind::Unary:
    return unary(v->uop, substituteSyms(v->args[0], repl));
  case VKind::Binary:
    return binary(v->bop, substituteSyms(v->args[0], repl), substituteSyms(v->args[1], repl));
  case VKind::Select:
    return select(substituteSyms(v->args[0], repl), substituteSyms(v->args[1], repl),
                  substituteSyms(v->args[2], repl));
  case VKind::Cast:
    return v->bits ? bitcast(substituteSyms(v->args[0], repl), v->dtype)
                   : cast(substituteSyms(v->args[0], repl), v->dtype);
  }
  return v;
}

std::string toString(const VRef &v) {
  switch (v->kind) {
  case VKind::Const:
    return isFloat(v->dtype) ? fmt::format("{}", v->fval) : fmt::format("{}", v->ival);
  case VKind::SymInt:
    return "sym(" + sym::toString(v->sym) + ")";
  case VKind::Load: {
    std::string s = fmt::format("{}[{}]", v->buf->name, sym::toString(v->sym));
    for (auto &[var, val] : v->indirect)
      s += fmt::format(" where {}={}", sym::toString(var), toString(val));
    return s;
  }
  case VKind::Unary:
    return fmt::format("{}({})", unaryName(v->uop), toString(v->args[0]));
  case VKind::Binary:
    return fmt::format("{}({}, {})", binaryName(v->bop), toString(v->args[0]),
                       toString(v->args[1]));
  case VKind::Select:
    return fmt::format("select({}, {}, {})", toString(v->args[0]), toString(v->args[1]),
                       toString(v->args[2]));
  case VKind::Cast:
    return fmt::format("{}{}({})", v->bits ? "bits_" : "", dtypeName(v->dtype),
                       toString(v->args[0]));
  }
  return "?";
}

bool hasIndirect(const VRef &v) {
  if (!v->indirect.empty()) return true;
  for (const VRef &a : v->args)
    if (hasIndirect(a)) return true;
  return false;
}

} // namespace kiln::loop
