// Graph passes. Each is one documented free function; the pipeline (aot/compile.cpp)
// runs them as a flat list with an optional dump after each.
#pragma once

#include "ir/graph.h"
#include "sched/target.h"

#include <functional>

namespace kiln::passes {

/// The only user of v when it has exactly one and is not a graph output, else nullptr (the
/// fusion passes' test that an intermediate can disappear into a fused node).
ir::Node *soleUser(const ir::Value *v);

/// The graph pipeline, a flat list of the passes below (the model's graph and every
/// subgraph go through it); `after` is called with each pass's name (dumps).
/// Device-specific fusions (oneDNN post-ops, the CPU attention shim) run only when the
/// target wants them.
void optimizeGraph(ir::Graph &g, const std::function<void(const char *pass)> &after = nullptr,
                   const sched::Target &target = sched::Target::cpu());

/// Infers every value's dtype and symbolic shape by lowering each node once, and folds
/// what is known at compile time: full constants (small or all-constant subgraphs) and
/// symbolic int64 shape tensors (Shape → Gather → Concat → Reshape chains).
void inferAndFold(ir::Graph &g);

/// Removes nodes whose outputs are unused or already folded to constants.
void eliminateDeadCode(ir::Graph &g);

/// Merges nodes with the same op, attributes and inputs (common subexpressions).
void eliminateCommonSubexpressions(ir::Graph &g);

/// Folds BatchNormalization (inference) into a preceding Conv with constant weights.
void foldBatchNormIntoConv(ir::Graph &g);

/// Fuses Relu/Clip and a residual Add after a Conv into the conv's post-ops, and after a
/// float32 MatMul/Gemm: a bias Add, a residual Add (a tensor of the output's shape), then
/// Relu/Clip or GELU (the Gelu op or the erf / tanh formulas exporters write out) — in
/// kiln-internal attributes on the node. Which of them fuse is the target's choice
/// (Target::fuseClipEpilogue, fuseGeluErfEpilogue, fuseGeluTanhEpilogue, fuseMatMulResidual).
void fuseExternEpilogues(ir::Graph &g, const sched::Target &target = sched::Target::cpu());

/// MatMul(Q, Kᵀ) [· or / scalar] [+ mask | Where(cond, ·, finite fill)] → Softmax(last
/// axis) → MatMul(·, V) on float32 tensors of rank 4 ([B, H, S, D]; with a mask) or 3
/// ([B·H, S, D] batched matmuls; no mask) becomes one internal `_KilnSDPA` node. The mask (HF
/// BERT's additive padding mask, GPT-2's causal Where) must broadcast to the scores only
/// along dims of size 1. maxHeadDim (0: any) leaves larger or dynamic head dims unfused.
void fuseAttention(ir::Graph &g, int maxHeadDim = 0);

/// MatMuls that share their input A (float32, rank >= 2) and have constant 2-D weights of
/// A's K and static N, each with at most a row bias (after fuseExternEpilogues) and no other
/// epilogue, become one internal `_KilnMatMulMulti` node (inputs A, B_0, bias_0, B_1, ...;
/// one output per MatMul): one GEMM along N through kiln_shim_matmul_multi_v1, whose packed
/// concatenated weights the runtime derives from the separate constants (so updating one by
/// name still works). At most KILN_MATMUL_MULTI_MAX per node.
void fuseSiblingMatMuls(ir::Graph &g);

/// Whether the pipeline runs fuseSiblingMatMuls: Target::fuseSiblingMatMul, unless the
/// environment sets KILN_FUSE_SIBLING_MATMUL=0 at compile time (A/B timing).
bool siblingMatMulFusionWanted(const sched::Target &target);

/// MobileNet inverted-residual blocks (Conv 1x1, depthwise Conv 3x3, Conv 1x1, with their
/// fused activations and residual) become one `_KilnConvChain` node, run band by band by
/// kiln_shim_conv_chain_v1. After fuseExternEpilogues.
void fuseConvChains(ir::Graph &g);
/// The target runs channels-last convs and asks for the chain, and KILN_FUSE_CONV_CHAIN is
/// not 0.
bool convChainFusionWanted(const sched::Target &target);

} // namespace kiln::passes
