// CUDA launch configurations chosen by measurement: `kiln compile --autotune` times
// candidate configurations of every kernel on a GPU at each size bucket of the dynamic dims
// and writes a tuning file; compiles given `--tuning-file` apply it, so builds stay
// deterministic and need no GPU. Kernels are identified by a key hashed from their loop IR,
// so a file fits the model and kiln version it was made with; a kernel the file does not
// name keeps the heuristic schedule. Where the fastest configuration differs by size by
// more than noise, the group gets run-time variants (loop::KernelGroup::cudaVariants).
#pragma once

#include "loop/program.h"

#include <map>
#include <string>
#include <vector>

namespace kiln::sched {

struct Target;

/// The knobs autotuning sets on a CudaSchedule (what the heuristics chose, else).
struct TuningConfig {
  int block = 0;       // threads per block
  int vector = 0;      // elementwise: elements per thread (1 or 4)
  int rowsPerWarp = 0; // attention: query rows per warp
  bool operator==(const TuningConfig &o) const = default;
};

/// One measured configuration of a kernel: its time at every size bucket.
struct TimedConfig {
  TuningConfig config;
  std::vector<double> ms; // per bucket (may be empty in "kiln-tuning-1" files)
};

struct TunedKernel {
  std::vector<TimedConfig> configs; // what was measured (one in "kiln-tuning-1" files)
  std::vector<int> best;            // per bucket: index of its fastest config (empty: none)
};

/// A size bucket: the value of every dynamic symbol there (empty for a static model).
using SizeBucket = std::map<std::string, int64_t>;

struct TuningTable {
  std::string path; // the file it was read from ("" when made by --autotune in memory)
  std::string gpu, arch;
  std::vector<SizeBucket> buckets;
  std::map<std::string, TunedKernel> kernels; // by tuning key
};

/// A kernel's run-time configuration is switched only where another bucket's fastest
/// configuration is at least this much faster there than the one kept for all sizes.
/// Timings of one build move by a few percent between runs (ResNet-50 on the H200:
/// 3.73 vs 3.83 ms, docs/perf.md; small kernels add clock-boost and launch jitter), so
/// smaller gains are mostly noise, and each extra variant costs code and a branch per launch.
constexpr double kSelectionMargin = 1.10;

/// Reads / writes a tuning file (JSON, format "kiln-tuning-2"; "kiln-tuning-1" files still
/// read, as one configuration per kernel). Errors name the file and what is wrong.
TuningTable readTuningFile(const std::string &path);
void writeTuningFile(const TuningTable &t, const std::string &path);
/// "batch=1,seq=8" ("static" when empty).
std::string bucketText(const SizeBucket &b);

/// A stable key of a scheduled group: a hash of its kernels' loop IR and shapes.
std::string tuningKey(const loop::KernelGroup &g);

/// Candidate configurations of a scheduled group; the first is the heuristic's.
std::vector<TuningConfig> tuningCandidates(const loop::KernelGroup &g);

/// Sets the group's key and applies the target's tuning: a forced candidate index
/// (autotune's variant builds, modulo the group's candidates) or the file's entry, which
/// may give the group run-time variants with thresholds on its work.
void applyTuning(loop::KernelGroup &g, sym::Context &ctx, const Target &t);

/// After scheduling a whole model with a tuning file: fails, naming the file, when it does
/// not fit the model (none of its kernels is one of the model's, or its buckets name a
/// symbol the model's inputs do not have).
void checkTuningFits(const loop::Program &p, const Target &t);

/// One line describing a group's run-time selection ("" without variants), e.g.
/// "by 256*batch: < 724: block 256 vector 1; < 5793: block 256 vector 4; else: block 512 ...".
std::string describeSelection(const loop::KernelGroup &g);

} // namespace kiln::sched
