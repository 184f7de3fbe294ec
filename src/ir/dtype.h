// Element types. One X-macro list drives the enum, names, sizes, C types, and the
// ONNX/DLPack codes, so adding a dtype is one line.
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

// X(Enum, name, C type in generated code, bytes, ONNX TensorProto code, DLPack code, bits)
// Float8/float4 use DLPack 1.1's codes (kDLFloat8_e4m3fn = 10 ... kDLFloat8_e8m0fnu = 14 ...
// kDLFloat4_e2m1fn = 17), which Debian's dlpack.h predates. Sub-byte types
// (int4/uint4/float4e2m1/int2/uint2) hold ONE ELEMENT PER BYTE in kiln's buffers and at the C API
// (DLPack's per-element size (bits * lanes + 7) / 8): integers sign- or zero-extended, float4 as
// its code in the low nibble. Only ONNX files pack them (two or four per byte); the importer
// unpacks.
#define KILN_DTYPES(X)                                                                             \
  X(Float32, "float32", "float", 4, 1, 2, 32)                                                      \
  X(UInt8, "uint8", "uint8_t", 1, 2, 1, 8)                                                         \
  X(Int8, "int8", "int8_t", 1, 3, 0, 8)                                                            \
  X(UInt16, "uint16", "uint16_t", 2, 4, 1, 16)                                                     \
  X(Int16, "int16", "int16_t", 2, 5, 0, 16)                                                        \
  X(Int32, "int32", "int32_t", 4, 6, 0, 32)                                                        \
  X(Int64, "int64", "int64_t", 8, 7, 0, 64)                                                        \
  X(String, "string", "const char*", 8, 8, 3, 64)                                                  \
  X(Bool, "bool", "bool", 1, 9, 6, 8)                                                              \
  X(Float16, "float16", "kiln_half", 2, 10, 2, 16)                                                 \
  X(Float64, "float64", "double", 8, 11, 2, 64)                                                    \
  X(UInt32, "uint32", "uint32_t", 4, 12, 1, 32)                                                    \
  X(UInt64, "uint64", "uint64_t", 8, 13, 1, 64)                                                    \
  X(BFloat16, "bfloat16", "kiln_bfloat16", 2, 16, 4, 16)                                           \
  X(Float8E4M3FN, "float8e4m3fn", "uint8_t", 1, 17, 10, 8)                                         \
  X(Float8E4M3FNUZ, "float8e4m3fnuz", "uint8_t", 1, 18, 11, 8)                                     \
  X(Float8E5M2, "float8e5m2", "uint8_t", 1, 19, 12, 8)                                             \
  X(Float8E5M2FNUZ, "float8e5m2fnuz", "uint8_t", 1, 20, 13, 8)                                     \
  X(UInt4, "uint4", "uint8_t", 1, 21, 1, 4)                                                        \
  X(Int4, "int4", "int8_t", 1, 22, 0, 4)                                                           \
  X(Float4E2M1, "float4e2m1", "uint8_t", 1, 23, 17, 4)                                             \
  X(UInt2, "uint2", "uint8_t", 1, 25, 1, 2)                                                        \
  X(Int2, "int2", "int8_t", 1, 26, 0, 2)                                                           \
  X(Float8E8M0, "float8e8m0", "uint8_t", 1, 24, 14, 8)

enum class DType : uint8_t {
#define X(e, ...) e,
  KILN_DTYPES(X)
#undef X
};

const char *dtypeName(DType t);
const char *dtypeCType(DType t);
int dtypeSize(DType t);
int dtypeOnnxCode(DType t);
int dtypeDLCode(DType t);
int dtypeBits(DType t);
/// ONNX TensorProto.DataType code → DType; false if kiln has no such type.
bool dtypeFromOnnx(int code, DType &out);
/// The TensorProto.DataType name of an ONNX code (also those newer than Debian's onnx
/// headers know: float8, int4, float4, int2), or "code N" if unknown.
std::string onnxTypeName(int code);

bool isFloat(DType t); // float16/bfloat16/float32/float64 and the float8/float4 types
/// The prelude's `kiln_minifloat` format of a float8/float4 type, or -1 for any other type.
int minifloatFormat(DType t);
/// Float types kernels compute as float but store narrower (float16, bfloat16, float8, float4).
bool isNarrowFloat(DType t);
/// int4/uint4/int2/uint2: integers narrower than their one-byte storage.
bool isSubByteInt(DType t);
bool isSigned(DType t);  // signed integers
bool isInteger(DType t); // any integer (not bool)

} // namespace kiln
