// Structure read from input data at run time: axes, slice bounds and the like given as
// model inputs. Each becomes run-time shape values computed by a value kernel before the
// run (OpCtx::runtimeSymbols), so shapes stay known before any kernel runs.
#pragma once

#include "lower/lowerer.h"

namespace kiln::lower {

/// Per-dim flags in {0, 1}: whether dim d of a rank-`rank` tensor is named by the run-time
/// axes input `i` (negative axes count from the end). A guard checks at run time that the
/// axes are in range and distinct.
std::vector<sym::Expr> runtimeAxisFlags(OpCtx &c, size_t i, int rank);

/// dims[index] as a value (-1 when index is out of range).
loop::VRef pickDim(const ir::Shape &dims, loop::VRef index);

/// Run-time symbols for int64 values computed from model inputs (one value kernel), each
/// checked against [lo, hi] before the run; `tag` names them. With `limits` (one for all or
/// one per value), values the model computes are accepted too, computed in program order
/// (OpCtx::runtimeSymbols).
std::vector<sym::Expr> runtimeValues(OpCtx &c, const std::vector<loop::VRef> &vals, const char *tag,
                                     int64_t lo, int64_t hi,
                                     const std::vector<sym::Expr> &limits = {});

/// Run-time symbols for dims given as values (`tag` names them; `limits` as runtimeValues).
ir::Shape runtimeShape(OpCtx &c, const std::vector<loop::VRef> &dims, const char *tag,
                       const std::vector<sym::Expr> &limits = {});

/// The dims whose flag is 0, in order, as run-time symbols (`count` of them).
ir::Shape keptDims(OpCtx &c, const ir::Shape &dims, const std::vector<sym::Expr> &flags,
                   int64_t count, const char *tag);

/// Reduction over the dims whose flag is 1, keeping them as size-1 dims.
LTensor reduceFlagged(OpCtx &c, const LTensor &t, const std::vector<sym::Expr> &flags,
                      loop::ReduceOp op, DType acc,
                      const std::function<loop::VRef(loop::VRef)> &pre = nullptr);

/// Number of elements reduced by reduceFlagged.
sym::Expr flaggedCount(sym::Context &ctx, const ir::Shape &dims,
                       const std::vector<sym::Expr> &flags);

} // namespace kiln::lower
