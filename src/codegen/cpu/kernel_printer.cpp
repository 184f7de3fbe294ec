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
  if (t == DType::Float16 || t == DType::BFloat16) return "float";
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

void collectVSyms(const loop::VRef &v, std::set<const sym::Node *> &out,
                  std::set<const loop::VNode *> &seen) {
  if (!seen.insert(v.get()).second) return; // a shared node: its symbols are in already
  if (v->kind == loop::VKind::SymInt || v->kind == loop::VKind::Load) collectSyms(v->sym, out);
  for (auto &[var, val] : v->indirect)
    collectVSyms(val, out, seen);
  for (auto &a : v->args)
    collectVSyms(a, out, seen);
}

void collectVSyms(const loop::VRef &v, std::set<const sym::Node *> &out) {
  std::set<const loop::VNode *> seen;
  collectVSyms(v, out, seen);
}

std::string literal(DType t, const loop::VRef &v) {
  if (t == DType::Bool) return v->ival ? "true" : "false";
  if (isFloat(t)) {
    double x = v->fval;
    const char *ct = computeType(t);
    if (std::isnan(x)) return fmt::format("(({})NAN)", ct);
    if (std::isinf(x))
      return x > 0 ? fmt::format("(({})INFINITY)", ct) : fmt::format("(-({})INFINITY)", ct);
    if (t == DType::Float64)
      return fmt::format("{:.17g}", x) + (std::floor(x) == x && std::fabs(x) < 1e15 ? ".0" : "");
    return fmt::format("{:.9g}f", x).find_first_of(".e") == std::string::npos
               ? fmt::format("{:.9g}.0f", x)
               : fmt::format("{:.9g}f", x);
  }
  if (t == DType::UInt64) return fmt::format("UINT64_C({})", static_cast<uint64_t>(v->ival));
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
      if (it != locals_.end()) return it->second;
      return model_(s);
    });
  }

  std::string emit(const loop::VRef &v) {
    auto it = names_.find(v.get());
    if (it != names_.end()) return it->second;
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
        if (locals_.count(var.node())) continue;
        std::string vv = emit(val);
        std::string name = fmt::format("x{}", counter_++);
        os_ << indent_ << "const int64_t " << name << " = (int64_t)" << vv << ";\n";
        locals_[var.node()] = name;
      }
      std::string ref = fmt::format("{}[{}]", v->buf->name, symCpp(v->sym));
      if (v->buf->dtype == DType::Float16) return "kiln_h2f(" + ref + ")";
      if (v->buf->dtype == DType::BFloat16) return "kiln_bf2f(" + ref + ")";
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
      if (to == DType::Bool) return fmt::format("({} != 0)", a);
      if (isFloat(from) && !isFloat(to)) return fmt::format("kiln_f2i<{}>({})", computeType(to), a);
      return fmt::format("(({}){})", computeType(to), a);
    }
    }
    return "?";
  }

  static std::string replaceAll(std::string tpl, const std::string &var, const std::string &val) {
    std::string out;
    for (size_t i = 0; i < tpl.size(); ++i) {
      bool ident =
          tpl.compare(i, var.size(), var) == 0 &&
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
  if (b->dtype == DType::Float16) return "kiln_f2h(" + v + ")";
  if (b->dtype == DType::BFloat16) return "kiln_f2bf(" + v + ")";
  return fmt::format("({}){}", dtypeCType(b->dtype), v);
}

} // namespace

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

namespace {

/// Prints one kernel's loops below the first `shared` output dims, which an enclosing
/// group loop already iterates (as i0..i{shared-1}). With shared == 0 the kernel
/// parallelises its own outer loops.
class MemberPrinter {
public:
  MemberPrinter(std::ostringstream &os, const loop::Kernel &k, size_t shared,
                const SymbolNamer &model, sym::Context &ctx)
      : os_(os), k_(k), shared_(shared), model_(model), ctx_(ctx) {}

  void print(std::string indent) {
    for (size_t d = 0; d < k_.vars.size(); ++d)
      locals_[k_.vars[d].node()] = fmt::format("i{}", d);
    for (size_t d = 0; d < k_.rvars.size(); ++d)
      locals_[k_.rvars[d].node()] = fmt::format("r{}", d);
    const ir::Shape &oshape = k_.out->shape;
    sym::Expr work = ctx_.constant(1);
    for (auto &d : oshape)
      work = work * d;
    for (auto &d : k_.rsizes)
      work = work * d;
    parallelIf_ = fmt::format("if({} >= 16384)", sizeCpp(work));
    // Entering libgomp costs more than a small kernel itself: no parallel region when
    // the work is known to be small.
    serial_ = work.isConst() && work->value < 16384;
    outIdx_ = sym::toCpp(loop::linearIndex(ctx_, k_.vars, oshape), [&](sym::Expr s) {
      auto it = locals_.find(s.node());
      return it != locals_.end() ? it->second : model_(s);
    });
    size_t rank = k_.vars.size();
    bool pointwise = k_.kind == loop::KernelKind::Pointwise;
    // Own outer loops: all but the innermost for pointwise; all output dims for reductions.
    size_t outerEnd = pointwise ? (rank > 0 ? rank - 1 : 0) : rank;
    if (outerEnd < shared_) outerEnd = shared_;
    size_t own = outerEnd - shared_;
    if (own > 0 && shared_ == 0 && !serial_)
      os_ << indent << "#pragma omp parallel for "
          << (own > 1 ? fmt::format("collapse({}) ", own) : "") << parallelIf_ << "\n";
    for (size_t d = shared_; d < outerEnd; ++d) {
      os_ << indent
          << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", d, sizeCpp(oshape[d]));
      indent += "  ";
    }
    if (pointwise)
      printPointwise(indent, rank, outerEnd);
    else
      printReduction(indent, rank);
    for (size_t d = shared_; d < outerEnd; ++d) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
  }

private:
  std::string sizeCpp(sym::Expr e) { return sym::toCpp(e, model_); }

  void printPointwise(std::string indent, size_t rank, size_t outerEnd) {
    bool inner = rank > outerEnd;
    if (inner) {
      if (outerEnd == 0 && shared_ == 0 && !serial_)
        os_ << indent << "#pragma omp parallel for simd " << parallelIf_ << "\n";
      else
        os_ << indent << "#pragma omp simd\n";
      os_ << indent
          << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", rank - 1,
                         sizeCpp(k_.out->shape[rank - 1]));
      indent += "  ";
    }
    BodyPrinter bp(os_, indent, model_, locals_);
    std::string v = bp.emit(k_.body);
    os_ << indent << k_.out->name << "[" << outIdx_ << "] = " << storeExpr(k_.out, v) << ";\n";
    if (inner) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
  }

  void printReduction(std::string indent, size_t rank) {
    const char *acc = computeType(k_.accDtype);
    bool arg = k_.rop == loop::ReduceOp::ArgMax || k_.rop == loop::ReduceOp::ArgMin;
    std::string init = reduceInit(k_.rop, k_.accDtype);
    if (auto pos = init.find("ACC"); pos != std::string::npos) init.replace(pos, 3, acc);
    os_ << indent << acc << " acc = " << init << ";\n";
    if (arg) os_ << indent << "int64_t best = 0;\n";
    size_t nr = k_.rvars.size();
    bool simple = !arg && (k_.rop == loop::ReduceOp::Sum || k_.rop == loop::ReduceOp::Prod);
    const char *clause = k_.rop == loop::ReduceOp::Sum ? "+" : "*";
    if (rank == 0 && shared_ == 0 && simple && nr > 0 && !serial_)
      os_ << indent << "#pragma omp parallel for reduction(" << clause << ":acc) " << parallelIf_
          << "\n";
    for (size_t d = 0; d < nr; ++d) {
      if (d + 1 == nr && simple && !(rank == 0 && shared_ == 0 && nr == 1 && !serial_))
        os_ << indent << "#pragma omp simd reduction(" << clause << ":acc)\n";
      os_ << indent
          << fmt::format("for (int64_t r{0} = 0; r{0} < {1}; ++r{0}) {{\n", d,
                         sizeCpp(k_.rsizes[d]));
      indent += "  ";
    }
    BodyPrinter bp(os_, indent, model_, locals_);
    std::string v = bp.emit(k_.body);
    bool fl = isFloat(k_.accDtype);
    switch (k_.rop) {
    case loop::ReduceOp::Sum:
      os_ << indent << "acc += " << v << ";\n";
      break;
    case loop::ReduceOp::Prod:
      os_ << indent << "acc *= " << v << ";\n";
      break;
    case loop::ReduceOp::Max: // NaN wins, as in ONNX Runtime and numpy
      os_ << indent
          << (fl ? fmt::format("acc = ({0} > acc || {0} != {0}) ? {0} : acc;\n", v)
                 : fmt::format("acc = {0} > acc ? {0} : acc;\n", v));
      break;
    case loop::ReduceOp::Min:
      os_ << indent
          << (fl ? fmt::format("acc = ({0} < acc || {0} != {0}) ? {0} : acc;\n", v)
                 : fmt::format("acc = {0} < acc ? {0} : acc;\n", v));
      break;
    case loop::ReduceOp::ArgMax:
    case loop::ReduceOp::ArgMin: {
      std::string flat = "0";
      for (size_t d = 0; d < nr; ++d)
        flat = fmt::format("({}) * ({}) + r{}", flat, sizeCpp(k_.rsizes[d]), d);
      const char *cmp = k_.rop == loop::ReduceOp::ArgMax ? (k_.lastIndex ? ">=" : ">")
                                                         : (k_.lastIndex ? "<=" : "<");
      // Strict comparison keeps the first index of the extreme value (ONNX default).
      os_ << indent << fmt::format("if ({0} {1} acc) {{ acc = {0}; best = {2}; }}\n", v, cmp, flat);
      break;
    }
    }
    for (size_t d = 0; d < nr; ++d) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
    os_ << indent << k_.out->name << "[" << outIdx_
        << "] = " << storeExpr(k_.out, arg ? "best" : "acc") << ";\n";
  }

  std::ostringstream &os_;
  const loop::Kernel &k_;
  size_t shared_;
  const SymbolNamer &model_;
  sym::Context &ctx_;
  std::map<const sym::Node *, std::string> locals_;
  std::string parallelIf_, outIdx_;
  bool serial_ = false;
};

} // namespace

std::string printCpuGroup(const loop::KernelGroup &g, const KernelSignature &sig,
                          const SymbolNamer &modelSymbol, sym::Context &ctx) {
  const loop::Kernel &first = *g.kernels.front();
  std::ostringstream os;
  os << "// kernel " << first.id << " from";
  for (const loop::Kernel *k : g.kernels)
    os << " " << k->origin;
  os << "\nextern \"C\" void kiln_kernel_" << first.id << "(";
  for (size_t i = 0; i < sig.buffers.size(); ++i) {
    const loop::Buffer *b = sig.buffers[i];
    os << (i ? ", " : "") << (sig.written[i] ? "" : "const ") << dtypeCType(b->dtype)
       << " *__restrict__ " << b->name;
  }
  for (const sym::Expr &s : sig.symbols)
    os << ", const int64_t " << modelSymbol(s);
  os << ") {\n";
  std::string indent = "  ";
  size_t shared = g.kernels.size() > 1 ? g.outerRank : 0;
  if (shared > 0) {
    // Fused group: one parallel region over the shared outer loops; each member runs
    // its inner loops per outer point, so intermediates stay hot in cache.
    sym::Expr work = ctx.constant(0);
    for (const loop::Kernel *k : g.kernels) {
      sym::Expr w = ctx.constant(1);
      for (auto &d : k->out->shape)
        w = w * d;
      for (auto &d : k->rsizes)
        w = w * d;
      work = work + w;
    }
    if (!(work.isConst() && work->value < 16384))
      os << indent << "#pragma omp parallel for"
         << (shared > 1 ? fmt::format(" collapse({})", shared) : "")
         << fmt::format(" if({} >= 16384)", sym::toCpp(work, modelSymbol)) << "\n";
    for (size_t d = 0; d < shared; ++d) {
      os << indent
         << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", d,
                        sym::toCpp(first.out->shape[d], modelSymbol));
      indent += "  ";
    }
  }
  for (const loop::Kernel *k : g.kernels) {
    os << indent << "{ // " << k->origin << "\n";
    MemberPrinter(os, *k, shared, modelSymbol, ctx).print(indent + "  ");
    os << indent << "}\n";
  }
  for (size_t d = 0; d < shared; ++d) {
    indent.resize(indent.size() - 2);
    os << indent << "}\n";
  }
  os << "}\n\n";
  return os.str();
}

std::vector<std::string> parameterTypes(const KernelSignature &sig) {
  std::vector<std::string> types;
  for (size_t i = 0; i < sig.buffers.size(); ++i)
    types.push_back(
        fmt::format("{}{} *", sig.written[i] ? "" : "const ", dtypeCType(sig.buffers[i]->dtype)));
  types.insert(types.end(), sig.symbols.size(), "int64_t");
  return types;
}

KernelSignature signatureOf(const loop::KernelGroup &g,
                            const std::function<bool(sym::Expr)> &isModelSymbol) {
  KernelSignature sig;
  std::set<const sym::Node *> syms;
  auto addBuffer = [&](loop::Buffer *b, bool written) {
    for (size_t i = 0; i < sig.buffers.size(); ++i)
      if (sig.buffers[i] == b) {
        sig.written[i] = sig.written[i] || written;
        return;
      }
    sig.buffers.push_back(b);
    sig.written.push_back(written);
  };
  for (const loop::Kernel *k : g.kernels) {
    for (loop::Buffer *b : k->reads())
      addBuffer(b, false);
    addBuffer(k->out, true);
    collectVSyms(k->body, syms);
    for (const sym::Expr &d : k->out->shape)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->rsizes)
      collectSyms(d, syms);
  }
  std::map<uint64_t, sym::Expr> ordered;
  for (const sym::Node *n : syms)
    if (isModelSymbol(sym::Expr(n))) ordered[n->id] = sym::Expr(n);
  for (auto &[id, e] : ordered)
    sig.symbols.push_back(e);
  return sig;
}

} // namespace kiln::codegen
