#include "ir/dtype.h"

#include <iterator>

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

std::string onnxTypeName(int code) {
  static const char *const names[] = {
      "UNDEFINED",      "FLOAT",    "UINT8",        "INT8",           "UINT16",
      "INT16",          "INT32",    "INT64",        "STRING",         "BOOL",
      "FLOAT16",        "DOUBLE",   "UINT32",       "UINT64",         "COMPLEX64",
      "COMPLEX128",     "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
      "FLOAT8E5M2FNUZ", "UINT4",    "INT4",         "FLOAT4E2M1",     "FLOAT8E8M0",
      "UINT2",          "INT2"};
  if (code >= 0 && code < static_cast<int>(std::size(names))) return names[code];
  return "code " + std::to_string(code);
}

int minifloatFormat(DType t) {
  // Values are the prelude's enum kiln_minifloat.
  switch (t) {
  case DType::Float8E4M3FN:
    return 0;
  case DType::Float8E4M3FNUZ:
    return 1;
  case DType::Float8E5M2:
    return 2;
  case DType::Float8E5M2FNUZ:
    return 3;
  case DType::Float4E2M1:
    return 4;
  case DType::Float8E8M0:
    return 5;
  default:
    return -1;
  }
}
bool isNarrowFloat(DType t) {
  return t == DType::Float16 || t == DType::BFloat16 || minifloatFormat(t) >= 0;
}
bool isFloat(DType t) {
  return t == DType::Float32 || t == DType::Float64 || isNarrowFloat(t);
}
bool isSubByteInt(DType t) {
  return t == DType::Int4 || t == DType::UInt4 || t == DType::Int2 || t == DType::UInt2;
}
bool isSigned(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::Int32 || t == DType::Int64 ||
         t == DType::Int4 || t == DType::Int2;
}
bool isInteger(DType t) {
  return isSigned(t) || t == DType::UInt8 || t == DType::UInt16 || t == DType::UInt32 ||
         t == DType::UInt64 || t == DType::UInt4 || t == DType::UInt2;
}

} // namespace kiln
