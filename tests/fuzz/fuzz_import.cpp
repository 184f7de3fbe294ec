// Fuzz target 1: ONNX bytes → import → graph passes → lowering → schedule → generated source
// text (no host compiler). A bad model must end in UserError; anything else that escapes
// (another exception type, a sanitizer report, a crash) is a finding. InternalError (a
// broken invariant, reported with context) aborts too when KILN_FUZZ_STRICT=1.
#include "codegen/wrapper/wrapper.h"
#include "frontend/onnx/importer.h"
#include "lower/lowerer.h"
#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace kiln;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const bool strict = std::getenv("KILN_FUZZ_STRICT") != nullptr;
  std::string bytes(reinterpret_cast<const char *>(data), size);
  try {
    sym::Context ctx;
    frontend::ImportOptions opts;
    // The model directory: an empty one, so external data can only fail cleanly.
    auto graph =
        frontend::importModelBytes(bytes, "/nonexistent-kiln-fuzz-dir", "fuzz.onnx", ctx, opts);
    sched::Target target = sched::Target::cpu();
    passes::optimizeGraph(*graph, nullptr, target);
    loop::Program prog;
    lower::Lowerer lowerer(*graph, prog, target);
    lowerer.lowerGraph();
    sched::eliminateDeadKernels(prog);
    sched::unrollSmallReductions(prog, ctx);
    sched::formGroups(prog, ctx, target);
    sched::legalizeExterns(prog, target);
    auto ops = codegen::makeDeviceOps(target);
    codegen::GeneratedModel gm = codegen::generateModel(*graph, prog, *ops, 64);
    size_t chars = 0;
    for (const auto &s : gm.sources)
      chars += s.text.size();
    if (chars == 0) std::abort(); // a model that compiles has a wrapper at least
  } catch (const UserError &) {
  } catch (const InternalError &e) {
    if (strict) {
      std::fprintf(stderr, "internal error: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}
