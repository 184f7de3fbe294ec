// Helpers shared by the op lowering files.
#pragma once

#include "lower/lowerer.h"
#include "support/error.h"

namespace kiln::lower {

using loop::BinaryOp;
using loop::UnaryOp;
using loop::VRef;

/// Short names for the value expressions lowerings build most.
inline VRef i64(int64_t v) {
  return loop::constantInt(DType::Int64, v);
}
inline VRef sv(sym::Expr e) {
  return loop::symInt(e);
}
inline VRef bin(BinaryOp op, VRef a, VRef b) {
  return loop::binary(op, std::move(a), std::move(b));
}
/// The accumulation type of a float computation (float64 stays float64).
inline DType accOf(DType t) {
  return t == DType::Float64 ? DType::Float64 : DType::Float32;
}

/// out = op(a, b) with numpy broadcasting; both operands must share a dtype.
LTensor broadcastBinary(OpCtx &c, const LTensor &a, const LTensor &b, BinaryOp op);
/// out = f(a) elementwise.
LTensor mapUnary(OpCtx &c, const LTensor &a, const std::function<VRef(VRef)> &f);
/// v cast to `to` with ONNX Cast's `saturate` attribute (it matters for float8 targets only).
VRef castSaturating(VRef v, DType to, bool saturate);
/// Fails unless t's dtype is one of the allowed kinds.
void requireFloat(OpCtx &c, const LTensor &t, const char *what);
/// Fails unless a and b have one element type; `what` names them ("operands", "X and Y").
void requireSameDtype(OpCtx &c, const LTensor &a, const LTensor &b, const char *what);
/// Fails unless every value (strides, dilations, kernel sizes) is at least 1.
void requirePositive(OpCtx &c, const std::vector<int64_t> &v, const char *what);
/// Fails unless t has want's rank, and guards each dim equal to want's: refused now when
/// known to differ, else checked before the run (t is then never read outside its shape).
void requireShape(OpCtx &c, const LTensor &t, const ir::Shape &want, const char *name);
/// Scalar float attribute or compile-time scalar input `i` (opset-dependent ops).
std::optional<VRef> scalarInput(OpCtx &c, size_t i, DType t);
/// scalarInput of an input that must be present (fails naming the node if it is absent).
VRef requireScalarInput(OpCtx &c, size_t i, DType t);
/// ScatterElements through the scatter shim (reduction: a KILN_REDUCE_* code from
/// kiln/shim.h): a copy of data with upd written at ind along axis.
LTensor scatterElements(OpCtx &c, const LTensor &data, const LTensor &ind, const LTensor &upd,
                        int axis, int reduction);
/// kiln_elem_type code of a dtype for dtype-generic shims (-1 if none).
int shimElemType(DType t);
/// One argument of an extern (shim) call.
loop::ExternArg externArg(loop::ExternArg::Kind k, loop::Buffer *b = nullptr);
/// A buffer argument, or a null pointer (Kind::Null) when there is no buffer (an absent input).
loop::ExternArg externBuffer(loop::Buffer *b);
/// An integer argument (a count, a rank, an element-type code).
loop::ExternArg externInt(int64_t v);
/// A dims array argument (printed as an int64 array of the evaluated dims).
loop::ExternArg externDims(const ir::Shape &s);
/// Concatenation of `ins` (equal ranks; other dims guarded equal) along `axis`.
LTensor concatAlong(OpCtx &c, const std::vector<LTensor> &ins, int axis, DType t);
/// Static int list → sym exprs.
std::vector<sym::Expr> constants(sym::Context &ctx, const std::vector<int64_t> &v);

void registerElementwiseOps(std::vector<OpInfo> &r);
void registerShapeOps(std::vector<OpInfo> &r);
void registerSliceOps(std::vector<OpInfo> &r); // called by registerShapeOps
void registerReduceOps(std::vector<OpInfo> &r);
void registerNNOps(std::vector<OpInfo> &r);
void registerPoolOps(std::vector<OpInfo> &r);          // ops_pool.cpp
void registerTensorOps(std::vector<OpInfo> &r);        // ops_tensor.cpp
void registerTensorValueOps(std::vector<OpInfo> &r);   // ops_tensor_values.cpp
void registerNormalizationOps(std::vector<OpInfo> &r); // ops_normalize.cpp
void registerModelOps(std::vector<OpInfo> &r);         // ops_model.cpp
void registerRecurrentOps(std::vector<OpInfo> &r);     // ops_recurrent.cpp
void registerQuantOps(std::vector<OpInfo> &r);         // ops_quant.cpp
void registerScatterOps(std::vector<OpInfo> &r);       // ops_scatter.cpp
void registerAttentionOps(std::vector<OpInfo> &r);     // ops_attention.cpp
void registerEinsumOps(std::vector<OpInfo> &r);        // ops_einsum.cpp
void registerTopKOps(std::vector<OpInfo> &r);          // ops_topk.cpp
void registerSignalOps(std::vector<OpInfo> &r);        // ops_signal.cpp
void registerSamplingOps(std::vector<OpInfo> &r);      // ops_sampling.cpp
void registerSelectOps(std::vector<OpInfo> &r);        // ops_select.cpp
void registerStringOps(std::vector<OpInfo> &r);        // ops_string.cpp
/// Cast between string and a numeric type (or string to string) through the string shims.
LTensor castString(OpCtx &c, const LTensor &x, DType to);
void registerMiscOps(std::vector<OpInfo> &r);     // ops_misc.cpp
void registerSequenceOps(std::vector<OpInfo> &r); // ops_sequence.cpp
void registerControlOps(std::vector<OpInfo> &r);  // ops_control.cpp
void registerScanOps(std::vector<OpInfo> &r);     // ops_scan.cpp
void registerOptionalOps(std::vector<OpInfo> &r); // ops_optional.cpp

/// RMSNormalization, RotaryEmbedding, Attention, TensorScatter (ops_transformer.cpp).
void registerTransformerOps(std::vector<OpInfo> &r);
/// CenterCropPad, Col2Im (ops_image.cpp).
void registerImageOps(std::vector<OpInfo> &r);

/// A compile-time table built by the lowering from attributes, stored like an initializer
/// (defined in ops_misc.cpp).
LTensor constTable(OpCtx &c, const std::vector<int64_t> &dims, const void *bytes, DType t,
                   const std::string &label);

} // namespace kiln::lower
