#include "cli/commands.h"
#include "cli/op_notes.h"
#include "frontend/onnx/importer.h"
#include "lower/lowerer.h"
#include "passes/passes.h"
#include "support/error.h"

#include <functional>
#include <iostream>
#include <map>
#include <set>

namespace kiln::cli {

/// `kiln ops`: the op coverage table (docs/ops.md is generated from it).
static void addOpsCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("ops", "print the supported-op table as markdown");
  cmd->callback([] {
    std::map<std::string, const lower::OpInfo *> sorted;
    for (const lower::OpInfo &o : lower::opRegistry())
      sorted[o.name] = &o;
    std::cout << "| op | opsets | dtypes | CPU | CUDA | notes |\n|---|---|---|---|---|---|\n";
    for (auto &[name, o] : sorted) {
      OpNote note = opNote(name);
      std::cout << fmt::format("| {} | {}–{} | {} | yes | {} | {} |\n", name, o->sinceOpset,
                               ir::kMaxOnnxOpset, note.dtypes.empty() ? "all" : note.dtypes,
                               note.gpu.empty() ? "yes" : note.gpu,
                               note.notes.empty() ? "generated kernel" : note.notes);
    }
  });
}

void addInspectCommand(CLI::App &app) {
  addOpsCommand(app);
  auto *cmd = app.add_subcommand("inspect", "list a model's inputs, outputs, ops and support");
  auto path = std::make_shared<std::string>();
  cmd->add_option("model", *path, "model.onnx")->required();
  cmd->callback([=] {
    sym::Context ctx;
    auto g = frontend::importModel(*path, ctx, {});
    std::cout << "model: " << *path << "\n";
    for (const ir::Value *v : g->inputs)
      std::cout << "  input  " << v->name << ": " << dtypeName(v->dtype) << " "
                << ir::shapeToString(v->shape) << "\n";
    std::map<std::string, int> counts;
    std::map<std::string, int> opsets;
    // Ops inside subgraphs (If/Loop/Scan bodies) count too.
    std::function<void(const ir::Graph &)> countOps = [&](const ir::Graph &graph) {
      for (auto &n : graph.nodes) {
        counts[n->op]++;
        opsets[n->op] = n->opset;
        for (auto &[k, a] : n->attrs)
          if (a.kind == ir::Attribute::Kind::Graph && a.graph) countOps(*a.graph);
      }
    };
    countOps(*g);
    std::cout << "ops:\n";
    int unsupported = 0;
    for (auto &[op, c] : counts) {
      bool ok = lower::findOp(op) != nullptr;
      unsupported += !ok;
      std::cout << fmt::format("  {:<24} x{:<4} opset {:<3} {}\n", op, c, opsets[op],
                               ok ? "supported" : "NOT SUPPORTED");
    }
    try {
      passes::inferAndFold(*g);
      for (const ir::Value *v : g->outputs)
        std::cout << "  output " << v->name << ": " << dtypeName(v->dtype) << " "
                  << ir::shapeToString(v->shape) << "\n";
    } catch (const UserError &e) {
      std::cout << "shape inference stopped: " << e.what() << "\n";
    }
    std::cout << (unsupported ? fmt::format("{} op type(s) not supported\n", unsupported)
                              : std::string("all ops supported\n"));
  });
}

} // namespace kiln::cli
