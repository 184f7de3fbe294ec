#include "codegen/wrapper/shape_binding.h"

#include "codegen/common/c_printer.h"
#include "loop/control_flow.h"
#include "support/error.h"

#include <fmt/format.h>
#include <sstream>

namespace kiln::codegen {

std::string symbolLocals(const ModelSymbols &syms) {
  std::string out;
  for (size_t s = 0; s < syms.symbols.size(); ++s)
    out += fmt::format("  const int64_t S{0} = S[{0}]; (void)S{0};\n", s);
  return out;
}

std::vector<sym::Expr> valuesSetBy(const loop::KernelGroup &group) {
  std::vector<sym::Expr> out;
  for (const loop::Kernel *k : group.kernels) {
    for (const sym::Expr &s : k->valueOut)
      if (s.valid()) out.push_back(s);
    if (k->kind == loop::KernelKind::Extern)
      for (const loop::ExternArg &a : k->ext.args)
        if (a.kind == loop::ExternArg::Kind::SymbolOut) out.push_back(a.dims.at(0));
    if (k->kind == loop::KernelKind::Call && k->call->iterations.valid())
      out.push_back(k->call->iterations);
    if (k->kind == loop::KernelKind::Call) { // an If's computed output dims
      for (const auto &ld : k->call->lateDims)
        out.push_back(ld.symbol);
      for (const auto &body : k->call->bodyLate)
        out.insert(out.end(), body.begin(), body.end());
    }
  }
  return out;
}

bool ShapePrinter::mentionsInOrder(const ir::ShapeGuard &gd) const {
  for (sym::Expr e : {gd.lhs, gd.rhs})
    for (const sym::Expr &s : sym::freeSymbols(e))
      if (p.isInOrderValue(s)) return true;
  return false;
}

std::string ShapePrinter::readValues(const loop::Kernel &k) const {
  std::ostringstream os;
  size_t n = k.valueOut.size();
  os << fmt::format("  {{ // shape values computed by {}\n    int64_t v[{}];\n    ",
                    commentText(k.origin), n);
  os << ops.readToHost("v", k.out->name, fmt::format("sizeof(int64_t) * {}", n)) << "\n";
  for (size_t j = 0; j < n; ++j) {
    if (!k.valueOut[j].valid()) continue;
    const loop::RuntimeShapeValue *v = p.shapeValue(k.valueOut[j]);
    KILN_ASSERT(v, "{} is not a run-time shape value", k.valueOut[j].name());
    os << valueCheck(*v, fmt::format("v[{}]", j), symName(v->symbol), cpp,
                     "ctx->error, ctx->error_size");
  }
  os << "  }\n";
  return os.str();
}

std::string ShapePrinter::readyGuards(const std::set<const sym::Node *> &set,
                                      std::vector<bool> &done) const {
  std::string out;
  for (size_t i = 0; i < g.guards.size(); ++i) {
    const ir::ShapeGuard &gd = g.guards[i];
    if (done[i] || !mentionsInOrder(gd)) continue;
    bool ready = true;
    for (sym::Expr e : {gd.lhs, gd.rhs})
      for (const sym::Expr &s : sym::freeSymbols(e))
        ready &= !p.isInOrderValue(s) || set.count(s.node());
    if (!ready) continue;
    done[i] = true;
    out += guardCheck(gd, cpp, "ctx->error, ctx->error_size");
  }
  return out;
}

std::string ShapePrinter::bindShapes(const std::string &beforeRunCalls, bool readsInputData) const {
  std::ostringstream os;
  os << "static int bind_impl(const int64_t *const *dims, const int32_t *ndims,\n"
        "                     const void *const *data, int64_t *S, char *err, size_t err_size) "
        "{\n"
        "  (void)ndims; (void)data;\n";
  std::vector<bool> solved(syms.symbols.size(), false);
  // Solve each symbol from the first input dim that is exactly that symbol.
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const loop::Buffer *b = p.inputs[i];
    for (size_t d = 0; d < b->shape.size(); ++d) {
      sym::Expr e = b->shape[d];
      int si = e.isSymbol() ? syms.indexOf(e) : -1;
      if (si < 0 || solved[si]) continue;
      solved[si] = true;
      sym::Range r = ctx.symbolRange(e);
      os << fmt::format("  S[{}] = dims[{}][{}];\n", si, i, d);
      os << fmt::format("  if (S[{0}] < INT64_C({1}) || S[{0}] > INT64_C({2})) {{\n"
                        "    snprintf(err, err_size, \"input '%s' dim {3} (%s) = %lld is outside "
                        "the compiled range [{1}, {2}]\", {5}, {4}, (long long)S[{0}]);\n"
                        "    return KILN_ERR_SHAPE_MISMATCH;\n  }}\n",
                        si, r.lo, r.hi, d, cString(e.name()), cString(g.inputs[i]->name));
    }
  }
  os << beforeRunCalls;
  for (const loop::RuntimeShapeValue &v : p.shapeValues)
    solved[syms.indexOf(v.symbol)] = true;
  for (size_t s = 0; s < solved.size(); ++s)
    if (!solved[s])
      fail("dimension '{}' appears only inside derived input dims; kiln needs it as a plain "
           "input dim to solve it at run time",
           syms.symbols[s].name());
  os << symbolLocals(syms);
  // Sizes the run computes start at their bounds (outputs and scratch are sized by them).
  for (const loop::RuntimeShapeValue &v : p.shapeValues)
    if (v.phase == loop::ValuePhase::InOrder)
      os << fmt::format("  S[{}] = {};\n", syms.indexOf(v.symbol), cpp(v.bound));
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const loop::Buffer *b = p.inputs[i];
    for (size_t d = 0; d < b->shape.size(); ++d) {
      sym::Expr e = b->shape[d];
      os << fmt::format("  if (dims[{0}][{1}] != ({2})) {{\n    snprintf(err, err_size, \"input "
                        "'%s' dim {1}: expected %lld (%s), got %lld\", {4}, (long long)({2}), {3}, "
                        "(long long)dims[{0}][{1}]);\n    return KILN_ERR_SHAPE_MISMATCH;\n  }}\n",
                        i, d, cpp(e), cString(sym::toString(e)), cString(g.inputs[i]->name));
    }
  }
  for (const ir::ShapeGuard &gd : g.guards)
    if (!mentionsInOrder(gd)) os << guardCheck(gd, cpp, "err, err_size");
  os << "  return 0;\n}\n\n";
  if (!readsInputData) {
    os << "static int bind_shapes(const int64_t *const *dims, const int32_t *ndims, int64_t *S,\n"
          "                       char *err, size_t err_size) {\n"
          "  return bind_impl(dims, ndims, nullptr, S, err, err_size);\n}\n\n";
  } else {
    os << "static int bind_shapes(const int64_t *const *, const int32_t *, int64_t *, char "
          "*err,\n"
          "                       size_t err_size) {\n"
          "  snprintf(err, err_size, \"this model reads shape values from input data; it needs "
          "libkiln_rt with ABI 2 or newer\");\n  return KILN_ERR_VERSION_MISMATCH;\n}\n\n";
  }
  os << "static void output_dims(const int64_t *S, int64_t *const *out) {\n";
  os << symbolLocals(syms);
  if (syms.symbols.empty()) os << "  (void)S;\n";
  for (size_t i = 0; i < p.outputs.size(); ++i)
    for (size_t d = 0; d < p.outputs[i]->shape.size(); ++d)
      os << fmt::format("  out[{}][{}] = {};\n", i, d, cpp(p.outputs[i]->shape[d]));
  os << "}\n\n";
  return os.str();
}

} // namespace kiln::codegen
