// The compile pipeline as a flat list (import → passes → lower → schedule → codegen →
// build), and the AOT builder that turns generated sources into model.so.
#pragma once

#include "sched/target.h"

#include "frontend/onnx/importer.h"

#include <string>

namespace kiln::aot {

struct CompileOptions {
  std::string modelPath;
  std::string outputPath;
  frontend::ImportOptions import;
  bool printAfterAll = false;
  bool externalWeights = false; // write <output>.weights instead of embedding
  std::string cacheDir;         // empty: $KILN_CACHE_DIR or ~/.cache/kiln
  size_t kernelsPerFile = 24;
  int jobs = 0;             // parallel compiler processes; 0 = hardware threads
  bool keepSources = false; // leave the generated sources next to the output
  sched::Target target;     // device and per-device choices (default: this CPU)
};

struct CompileStats {
  double seconds = 0;
  size_t kernels = 0, externs = 0, sources = 0, cacheHits = 0;
};

/// Compiles the model; throws UserError (bad model) or InternalError. Never leaves a
/// partial output file.
CompileStats compileModel(const CompileOptions &opts);

std::string defaultCacheDir();

} // namespace kiln::aot
