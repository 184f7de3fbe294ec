// Helpers shared by the ai.onnx.ml lowerings (ops_ml.cpp, ops_ml_trees.cpp).
#pragma once

#include "lower/ops_common.h"

#include <string>
#include <vector>

namespace kiln::lower {
/// The ai.onnx.ml domain's ops (ops_ml.cpp); nullptr if kiln lacks `op`.
const OpInfo *findMlOp(const std::string &op);
/// Every ai.onnx.ml op kiln lowers (for `kiln ops`).
const std::vector<OpInfo> &mlOpRegistry();
/// The newest ai.onnx.ml opset kiln knows (ONNX 1.21).
constexpr int kMaxOnnxMlOpset = 5;
} // namespace kiln::lower

namespace kiln::lower::ml {

/// A float64 attribute list: `name` (floats) or `name_as_tensor` (a double tensor).
std::vector<double> attrDoubles(const ir::Node &n, const std::string &name);
/// A float64 / int64 list from a tensor attribute (empty when absent).
std::vector<double> tensorAttrDoubles(const ir::Node &n, const std::string &name);
/// Post transforms of the classifier and regressor ops (ONNX-ML names and v5 codes).
enum class PostTransform { None, Softmax, Logistic, SoftmaxZero, Probit };
PostTransform parsePostTransform(OpCtx &c, const std::string &name);
/// Applies the post transform along the last axis of a [N, C] float64 tensor.
LTensor applyPostTransform(OpCtx &c, const LTensor &scores, PostTransform pt);
/// Index of the first maximum along the last axis of [N, C] → int64 [N].
LTensor argmaxLast(OpCtx &c, const LTensor &scores);
/// labels[idx] for an int64 index tensor (labels a compile-time list).
LTensor pickLabels(OpCtx &c, const LTensor &idx, const std::vector<int64_t> &labels);

/// The constant 0 of idx's sym context (keepdims positions).
sym::Expr c0(const Index &i);

void registerTreeOps(std::vector<OpInfo> &r); // ops_ml_trees.cpp

} // namespace kiln::lower::ml
