// The compile pipeline as a flat list (import → passes → lower → schedule → codegen →
// build), and the AOT builder that turns generated sources into model.so.
#pragma once

#include "sched/target.h"
#include "sched/tuning.h"

#include "frontend/onnx/importer.h"

#include "aot/builder.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

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
                            // target.hostArch is the --cpu value (-march of the host code)
  // Progress: called as each stage starts ("import", "optimize", "lower", "schedule",
  // "generate", "build"), and with (done, total) while objects compile.
  std::function<void(const char *stage)> onStage;
  BuildProgress onBuildProgress;
};

struct CompileStats {
  double seconds = 0;
  size_t kernels = 0, externs = 0, sources = 0, cacheHits = 0, compiled = 0;
  bool linkCached = false; // model.so came from the cache whole
  bool unchanged = false;  // model.so already held it, byte for byte: only touched
  std::vector<std::pair<std::string, double>> stageSeconds; // in pipeline order
  std::string cpuIsa;                                       // what the host code targets
  // CUDA: each generated kernel's name, tuning key and launch configuration (autotune), and
  // its run-time selection among tuned variants ("" for none; sched::describeSelection).
  struct CudaKernel {
    std::string name, tuneKey;
    sched::TuningConfig config;
    std::string selection;
  };
  std::vector<CudaKernel> cudaKernels;
};

/// Compiles the model; throws UserError (bad model), InternalError or Interrupted. Never
/// leaves a partial output file or a temp file.
CompileStats compileModel(const CompileOptions &opts);

std::string defaultCacheDir();

} // namespace kiln::aot
