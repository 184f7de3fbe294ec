// Floor division and modulo of int64 values (the result of mod takes the divisor's sign),
// shared by the simplifier (expr.cpp) and evaluation and range analysis (analysis.cpp).
#pragma once

#include <cstdint>

namespace kiln::sym {

inline int64_t floorDivInt(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
inline int64_t modInt(int64_t a, int64_t b) {
  return a - b * floorDivInt(a, b);
}

} // namespace kiln::sym
