// OpCtx's integer values: inputs known at compile time as sym exprs (symIn, requireStatic),
// run-time shape values (computed before the run or in program order) and shape guards.
#include "lower/lowerer.h"

#include "support/error.h"

#include <algorithm>

namespace kiln::lower {

std::optional<std::vector<sym::Expr>> OpCtx::symIn(size_t i) {
  const ir::Value *v = node.input(i);
  if (!v) return std::nullopt;
  if (v->symData) return v->symData;
  if (v->data && isInteger(v->data->dtype)) {
    std::vector<sym::Expr> r;
    for (int64_t k = 0; k < v->data->numel(); ++k)
      r.push_back(ctx().constant(v->data->getInt(k)));
    return r;
  }
  return std::nullopt;
}

std::vector<sym::Expr> OpCtx::requireSymIn(size_t i, const char *what,
                                           std::optional<int64_t> runtimeMin, sym::Expr limit) {
  auto r = symIn(i);
  const ir::Value *v = node.input(i);
  if (!r && runtimeMin && v && v->isGraphInput && isInteger(v->dtype) && v->rank() <= 1) {
    int64_t n = v->rank() == 0 ? 1 : specialize(v->shape[0], what).value_or(-1);
    if (n >= 0 && n <= 16)
      if (std::optional<std::vector<sym::Expr>> syms = inputElementValues(v, n, *runtimeMin))
        return *syms;
  }
  if (!r && runtimeMin && v && v->rank() <= 1) {
    // Computed (or not an integer): evaluate it in a value kernel.
    LTensor t = in(i);
    if (!isInteger(t.dtype))
      t = pointwise(DType::Int64, t.shape,
                    [t](const Index &ix) { return loop::cast(t.load(ix), DType::Int64); });
    if (!limit.valid()) return runtimeSymbols(t, what, *runtimeMin, INT32_MAX);
    return runtimeSymbols(t, what, *runtimeMin, INT32_MAX, {limit});
  }
  if (!r)
    fail("{}: input {} ({}) must be known at compile time; it is computed from run-time data",
         node.describe(), i, what);
  return *r;
}

sym::Expr OpCtx::requireScalarSymIn(size_t i, const char *what, std::optional<int64_t> runtimeMin,
                                    sym::Expr limit) {
  std::vector<sym::Expr> v = requireSymIn(i, what, runtimeMin, limit);
  if (v.size() != 1)
    fail("{}: input {} ({}) must hold exactly one value, got {}", node.describe(), i, what,
         v.size());
  return v[0];
}

std::vector<int64_t> OpCtx::requireIntsIn(size_t i, const char *what) {
  std::vector<int64_t> r;
  for (sym::Expr e : requireSymIn(i, what)) {
    if (!e.isConst())
      fail("{}: input {} ({}) must be a compile-time constant, got {}", node.describe(), i, what,
           sym::toString(e));
    r.push_back(e->value);
  }
  return r;
}

std::optional<int64_t> OpCtx::specialize(sym::Expr e, const char *what) {
  if (e.isConst()) return e->value;
  std::map<std::string, int64_t> env;
  for (sym::Expr s : sym::freeSymbols(e)) {
    std::optional<int64_t> h = ctx().hint(s);
    if (!h) return std::nullopt;
    env[s.name()] = *h;
  }
  int64_t v = sym::evaluate(e, env);
  guardEqual(e, ctx().constant(v),
             fmt::format("kiln specialised {} ({}) to the model's declared value {}; it must be "
                         "static here",
                         what, sym::toString(e), v));
  return v;
}

int64_t OpCtx::requireStatic(sym::Expr e, const char *what) {
  std::optional<int64_t> v = specialize(e, what);
  if (!v) fail("{}: {} must be static, got {}", node.describe(), what, sym::toString(e));
  return *v;
}

namespace {

/// The literal at element `off` of a compile-time constant buffer.
loop::VRef constantElement(const loop::VRef &load, int64_t off) {
  const ir::TensorData &d = *load->buf->data;
  if (isFloat(load->buf->dtype)) return loop::constant(load->dtype, d.getDouble(off));
  return loop::constantInt(load->dtype, d.getInt(off));
}

/// Replaces loads of compile-time constants by literals, so a value kernel run before the
/// run needs no constant buffers (bind_shapes runs before weights are bound). A load at a
/// variable offset of a small constant (a shape-sized vector, e.g. CenterCropPad's target
/// dims combined with Shape(x)) becomes a select over its elements.
loop::VRef inlineConstantLoads(const loop::VRef &v) {
  constexpr int64_t kMaxSelectElements = 16;
  if (v->kind == loop::VKind::Load && v->buf && v->buf->kind == loop::BufferKind::Constant &&
      v->indirect.empty() && v->buf->data) {
    if (v->sym.isConst()) return constantElement(v, v->sym->value);
    int64_t n = v->buf->data->numel();
    if (n >= 1 && n <= kMaxSelectElements) {
      loop::VRef at = loop::symInt(v->sym);
      loop::VRef r = constantElement(v, n - 1);
      for (int64_t e = n - 1; e-- > 0;)
        r = loop::select(loop::binary(loop::BinaryOp::Eq, at, loop::constantInt(DType::Int64, e)),
                         constantElement(v, e), r);
      return r;
    }
  }
  bool changed = false;
  auto n = std::make_shared<loop::VNode>(*v);
  for (auto &a : n->args) {
    loop::VRef r = inlineConstantLoads(a);
    changed |= r != a;
    a = r;
  }
  for (auto &[s, iv] : n->indirect) {
    loop::VRef r = inlineConstantLoads(iv);
    changed |= r != iv;
    iv = r;
  }
  return changed ? loop::VRef(n) : v;
}

} // namespace

std::vector<sym::Expr> OpCtx::runtimeSymbols(const LTensor &values, const char *tag, int64_t lo,
                                             int64_t hi, const std::vector<sym::Expr> &limits) {
  if (values.rank() > 1 || !isInteger(values.dtype))
    fail("{}: {} must be a rank-0 or rank-1 integer tensor", node.describe(), tag);
  int64_t n = values.rank() == 0 ? 1 : requireStatic(values.shape[0], tag);
  std::vector<sym::Expr> syms;
  auto name = [&](int64_t e) { return fmt::format("{}.{}{}", node.name, tag, e); };
  for (int64_t e = 0; e < n; ++e)
    syms.push_back(ctx().symbol(name(e), lo, hi));
  if (n == 0) return syms;
  KILN_ASSERT(limits.empty() || limits.size() == 1 || limits.size() == size_t(n),
              "{}: {} limits for {} values of {}", node.describe(), limits.size(), n, tag);
  loop::Buffer *b =
      prog().newBuffer(DType::Int64, {ctx().constant(n)}, loop::BufferKind::Intermediate, tag);
  loop::Kernel *k = prog().newKernel(loop::KernelKind::Pointwise);
  k->origin = node.name;
  k->out = b;
  Index idx;
  if (values.rank() == 1) {
    k->vars.push_back(l_.newVar("i", ctx().constant(n)));
    idx = k->vars;
  } else {
    k->vars.push_back(l_.newVar("i", ctx().constant(1)));
  }
  k->body = loop::cast(inlineConstantLoads(values.load(idx)), DType::Int64);
  if (loop::shapeValuePhase(prog(), *k) == loop::ValuePhase::BeforeRun) {
    // bind_shapes runs it on the input data before the run; range-checked like input dims.
    k->valueOut = syms;
    for (int64_t e = 0; e < n; ++e)
      addBeforeRunValue(syms[e], e);
    return syms;
  }
  if (limits.empty())
    fail("{}: {} is computed by the model at run time; kiln reads run-time shape values "
         "only from model inputs (directly or through elementwise math)",
         node.describe(), tag);
  // Computed during the run, in program order: the wrapper reads the values after the
  // kernel ran. Elements that fold to a sym expression stay exact.
  syms.clear();
  for (int64_t e = 0; e < n; ++e) {
    Index at;
    if (values.rank() == 1) at.push_back(ctx().constant(e));
    if (std::optional<sym::Expr> exact = loop::asSym(values.load(at), ctx())) {
      syms.push_back(*exact);
      k->valueOut.push_back(sym::Expr());
      continue;
    }
    sym::Expr limit = limits.size() == 1 ? limits[0] : limits[e];
    syms.push_back(addInOrderValue(name(e), lo, hi, limit, limit, e));
    k->valueOut.push_back(syms.back());
  }
  return syms;
}

std::optional<std::vector<sym::Expr>> OpCtx::inputElementValues(const ir::Value *v, int64_t n,
                                                                int64_t lo) {
  std::vector<sym::Expr> syms;
  for (int64_t k = 0; k < n; ++k) {
    std::string name = v->rank() == 0 ? v->name : fmt::format("{}[{}]", v->name, k);
    syms.push_back(ctx().symbol(name, lo, INT32_MAX));
  }
  // One value kernel per input, shared by every node that reads it.
  if (n == 0 || prog().shapeValue(syms[0])) return syms;
  LTensor t = l_.valueTensor(v);
  loop::Kernel k;
  k.vars.push_back(l_.newVar("i", ctx().constant(n)));
  Index idx;
  if (t.rank() == 1) idx = k.vars;
  k.body = loop::cast(t.load(idx), DType::Int64);
  // An inlined body's formal may stand for another value (one the model computes, or an
  // input of another name): then it is no input element here.
  std::vector<loop::Buffer *> reads = k.reads();
  bool itself = !reads.empty() && std::all_of(reads.begin(), reads.end(), [&](loop::Buffer *b) {
    return b->kind == loop::BufferKind::Input && b->label == v->name;
  });
  if (!itself || loop::shapeValuePhase(prog(), k) != loop::ValuePhase::BeforeRun)
    return std::nullopt;
  loop::Kernel *vk = prog().newKernel(loop::KernelKind::Pointwise);
  vk->origin = node.name;
  vk->out =
      prog().newBuffer(DType::Int64, {ctx().constant(n)}, loop::BufferKind::Intermediate, "value");
  vk->vars = k.vars;
  vk->body = k.body;
  vk->valueOut = syms;
  for (int64_t e = 0; e < n; ++e) {
    addBeforeRunValue(syms[e], e);
    prog().shapeValues.back().input = v->name;
  }
  return syms;
}

sym::Expr OpCtx::lateSymbol(const char *tag, sym::Expr bound) {
  sym::Expr s =
      addInOrderValue(fmt::format("{}.{}", node.name, tag), 0, INT64_MAX, bound, sym::Expr(), 0);
  // Written through ExternArg::SymbolOut or ControlFlow::iterations.
  for (loop::RuntimeShapeValue &rv : prog().shapeValues)
    if (rv.symbol == s) rv.producer = loop::RuntimeShapeValue::Producer::SymbolOut;
  return s;
}

void OpCtx::addBeforeRunValue(sym::Expr s, int64_t element) {
  if (prog().shapeValue(s)) return;
  sym::Range r = ctx().symbolRange(s);
  loop::RuntimeShapeValue v;
  v.symbol = s;
  v.element = element;
  v.phase = loop::ValuePhase::BeforeRun;
  v.lo = r.lo;
  v.limit = ctx().constant(r.hi);
  prog().shapeValues.push_back(std::move(v));
}

sym::Expr OpCtx::addInOrderValue(const std::string &name, int64_t lo, int64_t hi, sym::Expr bound,
                                 sym::Expr limit, int64_t element) {
  // Buffers are sized before the run: a bound that mentions an earlier InOrder value uses
  // that value's own bound instead.
  std::map<const sym::Node *, sym::Expr> earlier;
  for (const loop::RuntimeShapeValue &v : prog().shapeValues)
    if (v.phase == loop::ValuePhase::InOrder) earlier[v.symbol.node()] = v.bound;
  bound = sym::substitute(bound, earlier);
  sym::Range range{lo, std::min(hi, sym::rangeOf(bound).hi)};
  sym::Expr s = ctx().symbol(name, range.lo, range.hi);
  ctx().setRange(s, range); // also when the name was made before (runtimeSymbols)
  if (prog().shapeValue(s)) return s;
  loop::RuntimeShapeValue v;
  v.symbol = s;
  v.element = element;
  v.phase = loop::ValuePhase::InOrder;
  v.lo = lo;
  v.limit = limit;
  v.bound = bound;
  prog().shapeValues.push_back(std::move(v));
  return s;
}

bool OpCtx::knownBeforeRun(loop::VRef value) {
  return loop::knownBeforeRun(prog(), inlineConstantLoads(value));
}

sym::Expr OpCtx::runtimeSymbol(loop::VRef value, const char *tag, int64_t lo, int64_t hi) {
  LTensor t = pointwise(value->dtype, {}, [value](const Index &) { return value; });
  return runtimeSymbols(t, tag, lo, hi)[0];
}

void OpCtx::guardEqual(sym::Expr a, sym::Expr b, const std::string &what) {
  if (sym::provablyEqual(a, b)) return;
  if (a.isConst() && b.isConst())
    fail("{}: {} ({} vs {})", node.describe(), what, a->value, b->value);
  auto &guards = lowerer().graph.guards;
  for (const ir::ShapeGuard &g : guards)
    if (g.lhs == a && g.rhs == b) return;
  guards.push_back({a, b, fmt::format("{}: {}", node.describe(), what)});
}

} // namespace kiln::lower
