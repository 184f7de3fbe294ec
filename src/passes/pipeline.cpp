#include "passes/passes.h"

namespace kiln::passes {

void optimizeGraph(ir::Graph &g, const std::function<void(const char *)> &after,
                   const sched::Target &target) {
  auto step = [&](const char *name, void (*pass)(ir::Graph &)) {
    pass(g);
    if (after) after(name);
  };
  step("inferAndFold", inferAndFold);
  step("eliminateDeadCode", eliminateDeadCode);
  step("eliminateCommonSubexpressions", eliminateCommonSubexpressions);
  step("foldBatchNormIntoConv", foldBatchNormIntoConv);
  if (target.fuseAttention) {
    fuseAttention(g, target.fuseAttentionMaxHeadDim);
    if (after) after("fuseAttention");
  }
  if (target.fuseExternEpilogues) {
    fuseExternEpilogues(g, target);
    if (after) after("fuseExternEpilogues");
  }
  if (convChainFusionWanted(target)) {
    fuseConvChains(g);
    if (after) after("fuseConvChains");
  }
  if (siblingMatMulFusionWanted(target)) {
    fuseSiblingMatMuls(g);
    if (after) after("fuseSiblingMatMuls");
  }
  eliminateDeadCode(g);
  ir::verify(g);
}

} // namespace kiln::passes
