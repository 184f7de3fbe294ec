// CUDA launch configurations chosen by measurement: `kiln compile --autotune` times
// candidate configurations of every kernel on a GPU and writes a tuning file; compiles given
// `--tuning-file` apply it, so builds stay deterministic and need no GPU. Kernels are
// identified by a key hashed from their loop IR, so a file fits the model and kiln version it
// was made with; a kernel the file does not name keeps the heuristic schedule.
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

struct TunedKernel {
  TuningConfig config;
  std::vector<double> ms; // measured time of the chosen config per size bucket
};

struct TuningTable {
  std::string gpu, arch;
  std::vector<std::string> buckets;           // the symbol values of each size bucket
  std::map<std::string, TunedKernel> kernels; // by tuning key
};

/// Reads / writes a tuning file (JSON, format "kiln-tuning-1"); errors name the file.
TuningTable readTuningFile(const std::string &path);
void writeTuningFile(const TuningTable &t, const std::string &path);

/// A stable key of a scheduled group: a hash of its kernels' loop IR and shapes.
std::string tuningKey(const loop::KernelGroup &g);

/// Candidate configurations of a scheduled group; the first is the heuristic's.
std::vector<TuningConfig> tuningCandidates(const loop::KernelGroup &g);

/// Sets the group's key and applies the target's tuning: a forced candidate index
/// (autotune's variant builds, modulo the group's candidates) or the file's entry.
void applyTuning(loop::KernelGroup &g, const Target &t);

} // namespace kiln::sched
