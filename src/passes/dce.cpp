#include "passes/passes.h"

#include <set>

namespace kiln::passes {

void eliminateDeadCode(ir::Graph &g) {
  std::set<const ir::Value *> live(g.outputs.begin(), g.outputs.end());
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    ir::Node &n = **it;
    bool needed = false;
    for (const ir::Value *o : n.outputs)
      // Values known at compile time (data, or symbolic contents that lower to symbol
      // arithmetic) never need their producer at run time.
      if (o && live.count(o) && !o->data && !o->symData) needed = true;
    if (!needed) {
      n.dead = true;
      continue;
    }
    for (const ir::Value *in : n.inputs)
      if (in) live.insert(in);
  }
  g.compact();
}

} // namespace kiln::passes
