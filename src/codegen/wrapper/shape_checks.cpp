#include "codegen/wrapper/shape_checks.h"

#include "support/error.h"

#include <fmt/format.h>
#include <sstream>

namespace kiln::codegen {

std::string guardCheck(const ir::ShapeGuard &gd, const SymbolCpp &cpp, const std::string &err) {
  return fmt::format("  if (({0}) != ({1})) {{\n    snprintf({3}, \"%s (%lld vs %lld)\", "
                     "{2}, (long long)({0}), (long long)({1}));\n"
                     "    return KILN_ERR_SHAPE_MISMATCH;\n  }}\n",
                     cpp(gd.lhs), cpp(gd.rhs), cString(gd.what), err);
}

std::string valueCheck(const loop::RuntimeShapeValue &v, const std::string &value,
                       const std::string &target, const SymbolCpp &cpp, const std::string &err) {
  std::string name = cString(v.symbol.name());
  std::string test, message;
  if (v.phase == loop::ValuePhase::InOrder) {
    KILN_ASSERT(v.limit.valid(), "in-order value {} has no limit to check", v.symbol.name());
    std::string limit = cpp(v.limit);
    test = fmt::format("{0} < INT64_C({1}) || {0} > ({2})", value, v.lo, limit);
    message = fmt::format(
        "\"%s = %lld, computed by the model, is outside [{}, %lld]%s\", {}, (long long){}, "
        "(long long)({}), {}",
        v.lo, name, value, limit,
        cString(v.limit.isConst() ? "" : " (at most " + sym::toString(v.limit) + ")"));
  } else {
    KILN_ASSERT(v.limit.isConst(), "before-run value {} has a symbolic limit", v.symbol.name());
    int64_t hi = v.limit->value;
    test = fmt::format("{0} < INT64_C({1}) || {0} > INT64_C({2})", value, v.lo, hi);
    if (!v.input.empty())
      message = fmt::format("\"input '%s' element {} = %lld is outside [{}, {}], the values kiln "
                            "compiled this shape input for\", {}, (long long){}",
                            v.element, v.lo, hi, cString(v.input), value);
    else
      message = fmt::format(
          "\"%s = %lld is outside [{}, {}], the values kiln supports there\", {}, (long long){}",
          v.lo, hi, name, value);
  }
  return fmt::format("    if ({}) {{\n      snprintf({}, {});\n"
                     "      return KILN_ERR_SHAPE_MISMATCH;\n    }}\n    {} = {};\n",
                     test, err, message, target, value);
}

std::string beforeRunCall(const loop::Program &p, const loop::Kernel &k, const KernelSignature &sig,
                          const BeforeRunArgs &a, const SymbolCpp &cpp) {
  std::ostringstream os;
  os << fmt::format("  {{ // shape values of {}\n    int64_t v[{}];\n", commentText(k.origin),
                    k.valueOut.size());
  std::vector<std::string> args;
  for (loop::Buffer *b : sig.buffers) {
    if (b == k.out) {
      args.push_back("v");
      continue;
    }
    KILN_ASSERT(b->kind == loop::BufferKind::Input, "value kernel {} run before the run reads {}",
                k.id, b->name);
    args.push_back(a.input(*b));
  }
  for (const sym::Expr &s : sig.symbols)
    args.push_back(a.symbol(s));
  os << fmt::format("    kiln_kernel_{}({});\n", k.id, fmt::join(args, ", "));
  for (size_t j = 0; j < k.valueOut.size(); ++j) {
    const loop::RuntimeShapeValue *v = p.shapeValue(k.valueOut[j]);
    KILN_ASSERT(v, "value kernel {} element {} is no run-time value", k.id, j);
    os << valueCheck(*v, fmt::format("v[{}]", j), a.symbol(v->symbol), cpp, a.err);
  }
  os << "  }\n";
  return os.str();
}

} // namespace kiln::codegen
