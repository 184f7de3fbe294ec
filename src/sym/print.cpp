// Printers for sym expressions: a readable form for dumps and errors, and C++ source
// for generated kernels (floor_div/mod use the prelude helpers unless operands are
// provably non-negative, where C's / and % agree with floor semantics).
#include "sym/expr.h"

#include <fmt/format.h>

namespace kiln::sym {

namespace {

std::string literal(int64_t v) {
  if (v > INT32_MAX || v < INT32_MIN) return fmt::format("INT64_C({})", v);
  return std::to_string(v);
}

std::string print(Expr e, const std::function<std::string(Expr)> &names, bool cpp) {
  auto sub = [&](Expr x) { return print(x, names, cpp); };
  auto paren = [&](Expr x) {
    std::string s = sub(x);
    return x.kind() == Kind::Add ? "(" + s + ")" : s;
  };
  switch (e.kind()) {
  case Kind::Const:
    return cpp ? literal(e->value) : std::to_string(e->value);
  case Kind::Symbol:
    return names ? names(e) : e.name();
  case Kind::Add: {
    std::string s;
    for (size_t i = 0; i < e.numOps(); ++i) {
      Expr t = e.op(i);
      std::string ts = sub(t);
      bool negative = (t.isConst() && t->value < 0) ||
                      (t.kind() == Kind::Mul && t.op(0).isConst() && t.op(0)->value < 0);
      if (i == 0) {
        s = ts;
      } else if (negative) {
        Expr pos = t * int64_t{-1};
        s += " - " + sub(pos);
      } else {
        s += " + " + ts;
      }
    }
    return s;
  }
  case Kind::Mul: {
    std::string s;
    for (size_t i = 0; i < e.numOps(); ++i) {
      Expr f = e.op(i);
      if (i == 0 && f.isConst(-1) && e.numOps() > 1) {
        s = "-";
        continue;
      }
      if (i && s != "-") s += "*";
      s += paren(f);
    }
    return s;
  }
  case Kind::FloorDiv:
  case Kind::Mod: {
    bool isDiv = e.kind() == Kind::FloorDiv;
    bool nonneg = rangeOf(e.op(0)).lo >= 0 && rangeOf(e.op(1)).lo > 0;
    if (!cpp)
      return fmt::format("{}({}, {})", isDiv ? "floor_div" : "mod", sub(e.op(0)), sub(e.op(1)));
    if (nonneg) {
      Expr d = e.op(1);
      std::string ds = d.isConst() || d.isSymbol() ? sub(d) : "(" + sub(d) + ")";
      return fmt::format("({} {} {})", paren(e.op(0)), isDiv ? "/" : "%", ds);
    }
    return fmt::format("{}({}, {})", isDiv ? "kiln_floordiv" : "kiln_imod", sub(e.op(0)),
                       sub(e.op(1)));
  }
  case Kind::Min:
  case Kind::Max: {
    const char *fn =
        e.kind() == Kind::Min ? (cpp ? "kiln_imin" : "min") : (cpp ? "kiln_imax" : "max");
    return fmt::format("{}({}, {})", fn, sub(e.op(0)), sub(e.op(1)));
  }
  }
  return "?";
}

} // namespace

std::string toString(Expr e) {
  return print(e, nullptr, false);
}

std::string toCpp(Expr e, const std::function<std::string(Expr)> &names) {
  return print(e, names, true);
}

} // namespace kiln::sym
