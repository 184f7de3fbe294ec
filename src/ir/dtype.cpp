#include "ir/dtype.h"

namespace kiln {

#define KILN_DTYPE_GETTER(fn, type, field)                                                         \
  type fn(DType t) {                                                                               \
    switch (t) { KILN_DTYPES(field) }                                                              \
    return {};                                                                                     \
  }

#define NAME(e, n, c, s, o, d, b)                                                                  \
  case DType::e:                                                                                   \
    return n;
#define CTYPE(e, n, c, s, o, d, b)                                                                 \
  case DType::e:                                                                                   \
    return c;
#define SIZE(e, n, c, s, o, d, b)                                                                  \
  case DType::e:                                                                                   \
    return s;
#define ONNX(e, n, c, s, o, d, b)                                                                  \
  case DType::e:                                                                                   \
    return o;
#define DL(e, n, c, s, o, d, b)                                                                    \
  case DType::e:                                                                                   \
    return d;
#define BITS(e, n, c, s, o, d, b)                                                                  \
  case DType::e:                                                                                   \
    return b;

KILN_DTYPE_GETTER(dtypeName, const char *, NAME)
KILN_DTYPE_GETTER(dtypeCType, const char *, CTYPE)
KILN_DTYPE_GETTER(dtypeSize, int, SIZE)
KILN_DTYPE_GETTER(dtypeOnnxCode, int, ONNX)
KILN_DTYPE_GETTER(dtypeDLCode, int, DL)
KILN_DTYPE_GETTER(dtypeBits, int, BITS)

bool dtypeFromOnnx(int code, DType &out) {
#define FROM(e, n, c, s, o, d, b)                                                                  \
  if (code == o) {                                                                                 \
    out = DType::e;                                                                                \
    return true;                                                                                   \
  }
  KILN_DTYPES(FROM)
#undef FROM
  return false;
}

bool isFloat(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}
bool isSigned(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::Int32 || t == DType::Int64;
}
bool isInteger(DType t) {
  return isSigned(t) || t == DType::UInt8 || t == DType::UInt16 || t == DType::UInt32 ||
         t == DType::UInt64;
}

} // namespace kiln
