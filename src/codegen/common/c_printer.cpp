#include "codegen/common/c_printer.h"

#include "support/error.h"

#include <cmath>
#include <fmt/format.h>
#include <set>

namespace kiln::codegen {

const char *computeType(DType t) {
  if (isNarrowFloat(t)) return "float";
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

std::string replaceAll(std::string tpl, const std::string &var, const std::string &val) {
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
std::string substitute2(const std::string &tpl, const std::string &a, const std::string &b) {
  // Two-step through placeholders so `b` inside `a` is not re-substituted.
  std::string s = replaceAll(tpl, "a", "\x01");
  s = replaceAll(s, "b", "\x02");
  std::string out;
  for (char ch : s)
    out += ch == '\x01' ? a : ch == '\x02' ? b : std::string(1, ch);
  return out;
}

} // namespace

std::set<const sym::Node *> valueSymbols(const loop::VRef &v) {
  std::set<const sym::Node *> out;
  collectVSyms(v, out);
  return out;
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

static std::string bitcastText(DType from, DType to, const std::string &a) {
  // Narrow floats are floats in a kernel: their bits are encoded/decoded at the edges.
  auto bitsOf = [&](DType t, const std::string &v) -> std::string {
    if (t == DType::Float16) return "kiln_f2h(" + v + ")";
    if (t == DType::BFloat16) return "kiln_f2bf(" + v + ")";
    if (int f = minifloatFormat(t); f >= 0)
      return fmt::format("(uint8_t)kiln_mf_encode({}, {}, 0)", v, f);
    return v;
  };
  auto fromBits = [&](DType t, const std::string &v) -> std::string {
    if (t == DType::Float16) return "kiln_h2f(" + v + ")";
    if (t == DType::BFloat16) return "kiln_bf2f(" + v + ")";
    if (int f = minifloatFormat(t); f >= 0) return fmt::format("kiln_mf_decode({}, {})", v, f);
    return v;
  };
  std::string raw = bitsOf(from, a);
  return fromBits(to, fmt::format("([&] {{ {} r_; const {} f_ = {}; memcpy(&r_, &f_, sizeof r_); "
                                  "return r_; }}())",
                                  dtypeCType(to), dtypeCType(from), raw));
}

std::string storeExpr(const loop::Buffer *b, const std::string &v) {
  if (b->dtype == DType::Float16) return "kiln_f2h(" + v + ")";
  if (b->dtype == DType::BFloat16) return "kiln_f2bf(" + v + ")";
  if (int f = minifloatFormat(b->dtype); f >= 0)
    return fmt::format("(uint8_t)kiln_mf_encode({}, {}, 0)", v, f); // a value of the type: exact
  if (isSubByteInt(b->dtype))
    return fmt::format("kiln_wrap_bits<{}>({}, {}, {})", dtypeCType(b->dtype), v,
                       dtypeBits(b->dtype), isSigned(b->dtype));
  return fmt::format("({}){}", dtypeCType(b->dtype), v);
}

std::string cString(const std::string &s) {
  std::string r = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\' || c == '?') {
      r += '\\';
      r += c;
    } else if (u < 0x20 || u >= 0x7f) {
      r += fmt::format("\\{:03o}", u);
    } else {
      r += c;
    }
  }
  return r + "\"";
}

std::string commentText(const std::string &s) {
  std::string r = s;
  for (size_t i = 0; i < r.size(); ++i) {
    auto u = static_cast<unsigned char>(r[i]);
    if (u < 0x20 || u >= 0x7f || r[i] == '\\') r[i] = '?';
    if (r[i] == '?' && i > 0 && r[i - 1] == '?') r[i] = '.';
  }
  return r;
}

std::string reduceInit(loop::ReduceOp op, DType acc) {
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

std::string ValuePrinter::symCpp(sym::Expr e) {
  return sym::toCpp(e, [this](sym::Expr s) {
    auto it = locals_.find(s.node());
    if (it != locals_.end()) return it->second;
    return model_(s);
  });
}

std::string ValuePrinter::emit(const loop::VRef &v) {
  auto it = names_.find(v.get());
  if (it != names_.end()) return it->second;
  std::string expr = build(v);
  std::string name = fmt::format("{}{}", prefix_, counter_++);
  // A string element is already a `const char *`: the local is a const pointer to it.
  if (v->dtype == DType::String)
    os_ << indent_ << "const char *const " << name << " = " << expr << ";\n";
  else
    os_ << indent_ << "const " << computeType(v->dtype) << " " << name << " = " << expr << ";\n";
  names_[v.get()] = name;
  return name;
}

std::string ValuePrinter::build(const loop::VRef &v) {
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
    if (gccVectorForms_ && v->buf->dtype == DType::Bool)
      return fmt::format("(((const unsigned char *){})[{}] != 0)", v->buf->name, symCpp(v->sym));
    std::string ref = fmt::format("{}[{}]", v->buf->name, symCpp(v->sym));
    if (v->buf->dtype == DType::Float16) return "kiln_h2f(" + ref + ")";
    if (v->buf->dtype == DType::BFloat16) return "kiln_bf2f(" + ref + ")";
    if (int f = minifloatFormat(v->buf->dtype); f >= 0)
      return fmt::format("kiln_mf_decode({}, {})", ref, f);
    return ref;
  }
  case VKind::Unary: {
    std::string a = emit(v->args[0]);
    std::string tpl = unaryText(v->uop);
    return replaceAll(tpl, "a", a);
  }
  case VKind::Binary: {
    std::string a = emit(v->args[0]), b = emit(v->args[1]);
    if (v->args[0]->dtype == DType::String) {
      // Strings compare by content (Equal is the one binary op kiln allows on them).
      KILN_ASSERT(v->bop == loop::BinaryOp::Eq, "binary op {} on strings",
                  static_cast<int>(v->bop));
      return fmt::format("(std::strcmp({}, {}) == 0)", a, b);
    }
    std::string tpl = binaryText(v->bop);
    return substitute2(tpl, a, b);
  }
  case VKind::Select: {
    std::string c = emit(v->args[0]), a = emit(v->args[1]), b = emit(v->args[2]);
    if (gccVectorForms_ && v->dtype != DType::Bool && v->dtype != DType::String)
      return fmt::format("kiln_select<{}>({}, {}, {})", computeType(v->dtype), c, a, b);
    return fmt::format("({} ? {} : {})", c, a, b);
  }
  case VKind::Cast: {
    std::string a = emit(v->args[0]);
    DType from = v->args[0]->dtype, to = v->dtype;
    if (v->bits) return bitcastText(from, to, a);
    if (to == DType::Bool) return fmt::format("({} != 0)", a);
    if (isSubByteInt(to)) {
      std::string wide =
          isFloat(from) ? fmt::format("kiln_f2i<int64_t>({})", a) : fmt::format("((int64_t){})", a);
      return fmt::format("kiln_wrap_bits<{}>({}, {}, {})", dtypeCType(to), wide, dtypeBits(to),
                         isSigned(to));
    }
    if (isFloat(from) && !isFloat(to)) return fmt::format("kiln_f2i<{}>({})", computeType(to), a);
    // A narrow float computes as float: the cast itself must round (a float32 → bfloat16 →
    // float32 round trip is not the identity). ONNX Cast's default saturate = 1.
    if (to == DType::Float16) return fmt::format("kiln_h2f(kiln_f2h((float){}))", a);
    if (to == DType::BFloat16) return fmt::format("kiln_bf2f(kiln_f2bf((float){}))", a);
    if (int f = minifloatFormat(to); f >= 0) {
      const char *in = from == DType::Float64 ? "double" : "float";
      return fmt::format("kiln_mf_round(({}){}, {}, 1)", in, a, f);
    }
    return fmt::format("(({}){})", computeType(to), a);
  }
  }
  return "?";
}

std::string bufferPointerType(DType t, bool written) {
  if (t == DType::String) return written ? "const char **" : "const char *const *";
  return fmt::format("{}{} *", written ? "" : "const ", dtypeCType(t));
}

std::vector<std::string> parameterTypes(const KernelSignature &sig) {
  std::vector<std::string> types;
  for (size_t i = 0; i < sig.buffers.size(); ++i)
    types.push_back(bufferPointerType(sig.buffers[i]->dtype, sig.written[i]));
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
    if (k->body) collectVSyms(k->body, syms);
    if (k->scatterIndex) collectVSyms(k->scatterIndex, syms);
    for (const sym::Expr &d : k->scatterShape)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->out->shape)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->rsizes)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->attn.dims)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->attn.maskStrides)
      collectSyms(d, syms);
    for (const sym::Expr &d : k->attn.layout)
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

namespace kiln::codegen {

std::string accumulateStmt(const loop::Kernel &k, const std::string &v, const std::string &flat) {
  bool fl = isFloat(k.accDtype);
  switch (k.rop) {
  case loop::ReduceOp::Sum:
    return "acc += " + v + ";";
  case loop::ReduceOp::Prod:
    return "acc *= " + v + ";";
  case loop::ReduceOp::Max: // NaN wins, as in ONNX Runtime and numpy
    return fl ? fmt::format("acc = ({0} > acc || {0} != {0}) ? {0} : acc;", v)
              : fmt::format("acc = {0} > acc ? {0} : acc;", v);
  case loop::ReduceOp::Min:
    return fl ? fmt::format("acc = ({0} < acc || {0} != {0}) ? {0} : acc;", v)
              : fmt::format("acc = {0} < acc ? {0} : acc;", v);
  case loop::ReduceOp::ArgMax:
  case loop::ReduceOp::ArgMin: {
    // Strict comparison keeps the first index of the extreme value (ONNX default).
    const char *cmp =
        k.rop == loop::ReduceOp::ArgMax ? (k.lastIndex ? ">=" : ">") : (k.lastIndex ? "<=" : "<");
    return fmt::format("if ({0} {1} acc) {{ acc = {0}; best = {2}; }}", v, cmp, flat);
  }
  }
  return "";
}

std::string combineStmt(const loop::Kernel &k, const std::string &ov, const std::string &ob) {
  switch (k.rop) {
  case loop::ReduceOp::Sum:
  case loop::ReduceOp::Prod:
  case loop::ReduceOp::Max:
  case loop::ReduceOp::Min:
    return accumulateStmt(k, ov, "");
  case loop::ReduceOp::ArgMax:
  case loop::ReduceOp::ArgMin: {
    const char *cmp = k.rop == loop::ReduceOp::ArgMax ? ">" : "<";
    // Equal values: the smaller index wins (first occurrence), or the larger one.
    return fmt::format("if ({0} {1} acc || ({0} == acc && {2} {3} best)) {{ acc = {0}; best = "
                       "{2}; }}",
                       ov, cmp, ob, k.lastIndex ? ">" : "<");
  }
  }
  return "";
}

} // namespace kiln::codegen
