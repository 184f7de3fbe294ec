#include "codegen/cpu/kernel_printer.h"

#include "support/error.h"

#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace kiln::codegen {

const char *computeType(DType t) {
  if (t == DType::Float16 || t == DType::BFloat16)
    return "float";
  return dtypeCType(t);
}

namespace {

void collectSyms(sym::Expr e, std::set<const sym::Node *> &out) {
  if (e.isSymbol()) {
    out.insert(e.node());
    return;
  }
  for (size_t i = 0; i < e.numOps(); ++i)
    collectSyms(e.op(i), out);
}

void collectVSyms(const loop::VRef &v, std::set<const sym::Node *> &out) {
  if (v->kind == loop::VKind::SymInt || v->kind == loop::VKind::Load)
    collectSyms(v->sym, out);
  for (auto &[var, val] : v->indirect)
    collectVSyms(val, out);
  for (auto &a : v->args)
    collectVSyms(a, out);
}

std::string literal(DType t, const loop::VRef &v) {
  if (t == DType::Bool)
    return v->ival ? "true" : "false";
  if (isFloat(t)) {
    double x = v->fval;
    const char *ct = computeType(t);
    if (std::isnan(x))
      return fmt::format("(({})NAN)", ct);
    if (std::isinf(x))
      return x > 0 ? fmt::format("(({})INFINITY)", ct) : fmt::format("(-({})INFINITY)", ct);
    if (t == DType::Float64)
      return fmt::format("{:.17g}", x) + (std::floor(x) == x && std::fabs(x) < 1e15 ? ".0" : "");
    return fmt::format("{:.9g}f", x).find_first_of(".e") == std::string::npos
               ? fmt::format("{:.9g}.0f", x)
               : fmt::format("{:.9g}f", x);
  }
  if (t == DType::UInt64)
    return fmt::format("UINT64_C({})", static_cast<uint64_t>(v->ival));
  return fmt::format("(({})INT64_C({}))", dtypeCType(t), v->ival);
}

class BodyPrinter {
public:
  BodyPrinter(std::ostringstream &os, std::string indent, const SymbolNamer &model,
              std::map<const sym::Node *, std::string> &localNames)
      : os_(os), indent_(std::move(indent)), model_(model), locals_(localNames) {}

  std::string symCpp(sym::Expr e) {
    return sym::toCpp(e, [this](sym::Expr s) {
      auto it = locals_.find(s.node());
      if (it != locals_.end())
        return it->second;
      return model_(s);
    });
  }

  std::string emit(const loop::VRef &v) {
    auto it = names_.find(v.get());
    if (it != names_.end())
      return it->second;
    std::string expr = build(v);
    std::string name = fmt::format("t{}", counter_++);
    os_ << indent_ << "const " << computeType(v->dtype) << " " << name << " = " << expr << ";\n";
    names_[v.get()] = name;
    return name;
  }

private:
  std::string build(const loop::VRef &v) {
    using loop::VKind;
    switch (v->kind) {
    case VKind::Const:
      return literal(v->dtype, v);
    case VKind::SymInt:
      return fmt::format("(({})({}))", computeType(v->dtype), symCpp(v->sym));
    case VKind::Load: {
      for (auto &[var, val] : v->indirect) {
        if (locals_.count(var.node()))
          continue;
        std::string vv = emit(val);
        std::string name = fmt::format("x{}", counter_++);
        os_ << indent_ << "const int64_t " << name << " = (int64_t)" << vv << ";\n";
        locals_[var.node()] = name;
      }
      std::string ref = fmt::format("{}[{}]", v->buf->name, symCpp(v->sym));
      if (v->buf->dtype == DType::Float16)
        return "kiln_h2f(" + ref + ")";
      if (v->buf->dtype == DType::BFloat16)
        return "kiln_bf2f(" + ref + ")";
      return ref;
    }
    case VKind::Unary: {
      std::string a = emit(v->args[0]);
      std::string tpl = loop::unaryTemplate(v->uop);
      return replaceAll(tpl, "a", a);
    }
    case VKind::Binary: {
      std::string a = emit(v->args[0]), b = emit(v->args[1]);
      std::string tpl = loop::binaryTemplate(v->bop);
      return substitute2(tpl, a, b);
    }
    case VKind::Select: {
      std::string c = emit(v->args[0]), a = emit(v->args[1]), b = emit(v->args[2]);
      return fmt::format("({} ? {} : {})", c, a, b);
    }
    case VKind::Cast: {
      std::string a = emit(v->args[0]);
      DType from = v->args[0]->dtype, to = v->dtype;
      if (to == DType::Bool)
        return fmt::format("({} != 0)", a);
      if (isFloat(from) && !isFloat(to))
        return fmt::format("kiln_f2i<{}>({})", computeType(to), a);
      return fmt::format("(({}){})", computeType(to), a);
    }
    }
    return "?";
  }

  static std::string replaceAll(std::string tpl, const std::string &var, const std::string &val) {
    std::string out;
    for (size_t i = 0; i < tpl.size(); ++i) {
      bool ident = tpl.compare(i, var.size(), var) == 0 &&
                   (i == 0 || !(std::isalnum((unsigned char)tpl[i - 1]) || tpl[i - 1] == '_')) &&
                   (i + var.size() >= tpl.size() ||
                    !(std::isalnum((unsigned char)tpl[i + var.size()]) || tpl[i + var.size()] == '_'));
      if (ident) {
        out += val;
        i += var.size() - 1;
      } else {
        out += tpl[i];
      }
    }
    return out;
  }
  static std::string substitute2(const std::string &tpl, const std::string &a,
                                 const std::string &b) {
    // Two-step through placeholders so `b` inside `a` is not re-substituted.
    std::string s = replaceAll(tpl, "a", "\x01");
    s = replaceAll(s, "b", "\x02");
    std::string out;
    for (char ch : s)
      out += ch == '\x01' ? a : ch == '\x02' ? b : std::string(1, ch);
    return out;
  }

  std::ostringstream &os_;
  std::string indent_;
  const SymbolNamer &model_;
  std::map<const sym::Node *, std::string> &locals_;
  std::map<const loop::VNode *, std::string> names_;
  int counter_ = 0;
};

std::string storeExpr(const loop::Buffer *b, const std::string &v) {
  if (b->dtype == DType::Float16)
    return "kiln_f2h(" + v + ")";
  if (b->dtype == DType::BFloat16)
    return "kiln_f2bf(" + v + ")";
  return fmt::format("({}){}", dtypeCType(b->dtype), v);
}

sym::Expr linear(const std::vector<sym::Expr> &idx, const ir::Shape &shape, sym::Context &ctx) {
  sym::Expr off = ctx.constant(0);
  for (size_t d = 0; d < shape.size(); ++d)
    off = off * shape[d] + idx[d];
  return off;
}

} // namespace

KernelSignature signatureOf(const loop::Kernel &k,
                            const std::function<bool(sym::Expr)> &isModelSymbol) {
  KernelSignature sig;
  for (loop::Buffer *b : k.reads()) {
    sig.buffers.push_back(b);
    sig.written.push_back(false);
  }
  sig.buffers.push_back(k.out);
  sig.written.push_back(true);
  std::set<const sym::Node *> syms;
  collectVSyms(k.body, syms);
  for (const sym::Expr &d : k.out->shape)
    collectSyms(d, syms);
  for (const sym::Expr &d : k.rsizes)
    collectSyms(d, syms);
  std::map<uint64_t, sym::Expr> ordered;
  for (const sym::Node *n : syms)
    if (isModelSymbol(sym::Expr(n)))
      ordered[n->id] = sym::Expr(n);
  for (auto &[id, e] : ordered)
    sig.symbols.push_back(e);
  return sig;
}

static const char *reduceInit(loop::ReduceOp op, DType acc) {
  switch (op) {
  case loop::ReduceOp::Sum:
    return "0";
  case loop::ReduceOp::Prod:
    return "1";
  case loop::ReduceOp::Max:
  case loop::ReduceOp::ArgMax:
    return isFloat(acc) ? "-INFINITY" : "std::numeric_limits<ACC>::lowest()";
  case loop::ReduceOp::Min:
  case loop::ReduceOp::ArgMin:
    return isFloat(acc) ? "INFINITY" : "std::numeric_limits<ACC>::max()";
  }
  return "0";
}

std::string printCpuKernel(const loop::Kernel &k, const KernelSignature &sig,
                           const SymbolNamer &modelSymbol, sym::Context &ctx) {
  KILN_ASSERT(k.kind != loop::KernelKind::Extern, "extern kernels are printed by the wrapper");
  std::ostringstream os;
  os << "// kernel " << k.id << " from " << k.origin << "\n";
  os << "extern \"C\" void kiln_kernel_" << k.id << "(";
  for (size_t i = 0; i < sig.buffers.size(); ++i) {
    const loop::Buffer *b = sig.buffers[i];
    os << (i ? ", " : "") << (sig.written[i] ? "" : "const ") << dtypeCType(b->dtype)
       << " *__restrict__ " << b->name;
  }
  for (const sym::Expr &s : sig.symbols)
    os << ", const int64_t " << modelSymbol(s);
  os << ") {\n";

  std::map<const sym::Node *, std::string> locals;
  for (size_t d = 0; d < k.vars.size(); ++d)
    locals[k.vars[d].node()] = fmt::format("i{}", d);
  for (size_t d = 0; d < k.rvars.size(); ++d)
    locals[k.rvars[d].node()] = fmt::format("r{}", d);
  auto sizeCpp = [&](sym::Expr e) { return sym::toCpp(e, [&](sym::Expr s) { return modelSymbol(s); }); };

  const ir::Shape &oshape = k.out->shape;
  sym::Expr numel = ctx.constant(1);
  for (auto &d : oshape)
    numel = numel * d;
  sym::Expr work = numel;
  for (auto &d : k.rsizes)
    work = work * d;
  std::string parallelIf = fmt::format("if({} >= 16384)", sizeCpp(work));
  std::string outIdx;
  {
    std::map<const sym::Node *, std::string> *l = &locals;
    outIdx = sym::toCpp(linear(k.vars, oshape, ctx), [&](sym::Expr s) {
      auto it = l->find(s.node());
      return it != l->end() ? it->second : modelSymbol(s);
    });
  }

  size_t rank = k.vars.size();
  std::string indent = "  ";
  bool pointwise = k.kind == loop::KernelKind::Pointwise;
  // Outer loops: all but the innermost for pointwise; all output dims for reductions.
  size_t outerLoops = pointwise ? (rank > 0 ? rank - 1 : 0) : rank;
  if (outerLoops > 0)
    os << indent << "#pragma omp parallel for " << (outerLoops > 1 ? fmt::format("collapse({}) ", outerLoops) : "")
       << parallelIf << "\n";
  for (size_t d = 0; d < outerLoops; ++d) {
    os << indent << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", d, sizeCpp(oshape[d]));
    indent += "  ";
  }
  if (pointwise) {
    if (rank > 0) {
      if (outerLoops == 0)
        os << indent << "#pragma omp parallel for simd " << parallelIf << "\n";
      else
        os << indent << "#pragma omp simd\n";
      os << indent << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", rank - 1,
                                  sizeCpp(oshape[rank - 1]));
      indent += "  ";
    }
    BodyPrinter bp(os, indent, modelSymbol, locals);
    std::string v = bp.emit(k.body);
    os << indent << k.out->name << "[" << outIdx << "] = " << storeExpr(k.out, v) << ";\n";
    if (rank > 0) {
      indent.resize(indent.size() - 2);
      os << indent << "}\n";
    }
  } else {
    const char *acc = computeType(k.accDtype);
    bool arg = k.rop == loop::ReduceOp::ArgMax || k.rop == loop::ReduceOp::ArgMin;
    std::string init = reduceInit(k.rop, k.accDtype);
    if (auto pos = init.find("ACC"); pos != std::string::npos)
      init.replace(pos, 3, acc);
    os << indent << acc << " acc = " << init << ";\n";
    if (arg)
      os << indent << "int64_t best = 0;\n";
    size_t nr = k.rvars.size();
    bool simple = !arg && (k.rop == loop::ReduceOp::Sum || k.rop == loop::ReduceOp::Prod ||
                           k.rop == loop::ReduceOp::Max || k.rop == loop::ReduceOp::Min);
    const char *clause = k.rop == loop::ReduceOp::Sum    ? "+"
                         : k.rop == loop::ReduceOp::Prod ? "*"
                         : k.rop == loop::ReduceOp::Max  ? "max"
                                                         : "min";
    bool hasNaNCheck = isFloat(k.accDtype) && (k.rop == loop::ReduceOp::Max || k.rop == loop::ReduceOp::Min);
    if (rank == 0 && simple && nr > 0 && !hasNaNCheck)
      os << indent << "#pragma omp parallel for reduction(" << clause << ":acc) " << parallelIf << "\n";
    std::string flatR = "";
    for (size_t d = 0; d < nr; ++d) {
      if (d + 1 == nr && simple && !hasNaNCheck && !(rank == 0 && nr == 1))
        os << indent << "#pragma omp simd reduction(" << clause << ":acc)\n";
      os << indent << fmt::format("for (int64_t r{0} = 0; r{0} < {1}; ++r{0}) {{\n", d, sizeCpp(k.rsizes[d]));
      indent += "  ";
    }
    BodyPrinter bp(os, indent, modelSymbol, locals);
    std::string v = bp.emit(k.body);
    switch (k.rop) {
    case loop::ReduceOp::Sum: os << indent << "acc += " << v << ";\n"; break;
    case loop::ReduceOp::Prod: os << indent << "acc *= " << v << ";\n"; break;
    case loop::ReduceOp::Max:
      os << indent << (isFloat(k.accDtype) ? fmt::format("acc = ({0} > acc || {0} != {0}) ? {0} : acc;\n", v)
                                            : fmt::format("acc = {0} > acc ? {0} : acc;\n", v));
      break;
    case loop::ReduceOp::Min:
      os << indent << (isFloat(k.accDtype) ? fmt::format("acc = ({0} < acc || {0} != {0}) ? {0} : acc;\n", v)
                                            : fmt::format("acc = {0} < acc ? {0} : acc;\n", v));
      break;
    case loop::ReduceOp::ArgMax:
    case loop::ReduceOp::ArgMin: {
      std::string flat = "0";
      for (size_t d = 0; d < nr; ++d)
        flat = fmt::format("({}) * ({}) + r{}", flat, sizeCpp(k.rsizes[d]), d);
      const char *cmp = k.rop == loop::ReduceOp::ArgMax ? ">" : "<";
      // Strict comparison keeps the first index of the extreme value (ONNX default).
      os << indent << fmt::format("if ({0} {1} acc) {{ acc = {0}; best = {2}; }}\n", v, cmp, flat);
      break;
    }
    }
    for (size_t d = 0; d < nr; ++d) {
      indent.resize(indent.size() - 2);
      os << indent << "}\n";
    }
    std::string result = arg ? "best" : "acc";
    os << indent << k.out->name << "[" << outIdx << "] = " << storeExpr(k.out, result) << ";\n";
  }
  for (size_t d = 0; d < outerLoops; ++d) {
    indent.resize(indent.size() - 2);
    os << indent << "}\n";
  }
  os << "}\n\n";
  return os.str();
}

} // namespace kiln::codegen
