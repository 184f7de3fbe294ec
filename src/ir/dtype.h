// Element types. One X-macro list drives the enum, names, sizes, C types, and the
// ONNX/DLPack codes, so adding a dtype is one line.
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

// X(Enum, name, C type in generated code, bytes, ONNX TensorProto code, DLPack code, bits)
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
  X(BFloat16, "bfloat16", "kiln_bfloat16", 2, 16, 4, 16)

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

bool isFloat(DType t);   // float16/bfloat16/float32/float64
bool isSigned(DType t);  // signed integers
bool isInteger(DType t); // any integer (not bool)

} // namespace kiln
