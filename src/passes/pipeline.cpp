#include "passes/passes.h"

namespace kiln::passes {

void optimizeGraph(ir::Graph &g, const std::function<void(const char *)> &after) {
  auto step = [&](const char *name, void (*pass)(ir::Graph &)) {
    pass(g);
    if (after) after(name);
  };
  step("inferAndFold", inferAndFold);
  step("eliminateDeadCode", eliminateDeadCode);
  step("eliminateCommonSubexpressions", eliminateCommonSubexpressions);
  step("foldBatchNormIntoConv", foldBatchNormIntoConv);
  step("fuseAttention", fuseAttention);
  step("fuseExternEpilogues", fuseExternEpilogues);
  eliminateDeadCode(g);
  ir::verify(g);
}

} // namespace kiln::passes
