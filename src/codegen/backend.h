// The kernel-backend interface: a scheduled kernel group in, source text and a launch spec
// out, plus how the printed kernels become source files and which tool compiles them.
// codegen/cpu (C++ + OpenMP) and codegen/cuda (CUDA C++) implement it; a Triton backend
// would too (its tool: a Python driver emitting cubin).
#pragma once

#include "codegen/common/c_printer.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln::sched {
struct Target;
}

namespace kiln::codegen {

/// The tool a source file is built with (aot/builder.cpp maps each to a command line).
enum class SourceTool {
  HostCxx,   // g++ -c → object linked into model.so
  CudaFatbin // nvcc -fatbin → one blob embedded in model.so (kiln_cuda_fatbin)
};

/// The kiln headers generated sources include first, which the builder precompiles
/// (SourceFile::precompiledHeader): one name for the include line and for the field.
inline constexpr const char *kKernelFirstHeader = "kiln/prelude.h";
inline constexpr const char *kWrapperFirstHeader = "kiln/wrapper_includes.h";

struct SourceFile {
  std::string name; // e.g. "kernels_0.cpp"
  std::string text;
  std::vector<std::string> flags;
  SourceTool tool = SourceTool::HostCxx;
  /// A kiln header (under include/) that `text` includes first and nothing before, which
  /// the builder may precompile once per flag set (HostCxx only; empty: none).
  std::string precompiledHeader;
};

/// One launch the wrapper may pick at run time (a tuned variant, sched/tuning.h): used while
/// KernelSource::measure lies in one of `ranges` ([lo, hi), INT64_MIN / INT64_MAX: no bound).
struct LaunchVariant {
  int function = 0; // index into KernelSource::functions
  LaunchSpec launch;
  std::vector<std::pair<int64_t, int64_t>> ranges;
};

struct KernelSource {
  std::string text;
  LaunchSpec launch;
  // Tuned run-time variants (both empty: one function, kiln_kernel_<id>, run with `launch`):
  // the functions `text` defines, in launch-table order, and each variant's launch.
  std::vector<std::string> functions{};
  std::vector<LaunchVariant> variants{};
  sym::Expr measure{};
};

class KernelBackend {
public:
  virtual ~KernelBackend() = default;
  virtual const char *name() const = 0;
  /// Prints group g as the function `kiln_kernel_<id of its first kernel>` (and, for tuned
  /// run-time variants, the further functions KernelSource::functions names).
  virtual KernelSource printGroup(const loop::KernelGroup &g, const KernelSignature &sig,
                                  const SymbolNamer &modelSymbol, sym::Context &ctx) const = 0;
  /// Source files holding `kernels` (printed texts), `perFile` kernels a file where the
  /// backend splits them, each with its tool and flags.
  virtual std::vector<SourceFile> sourceFiles(const std::vector<std::string> &kernels,
                                              size_t perFile) const = 0;
};

/// C++ with OpenMP over outer loops and `omp simd` inner loops, built for `hostArch`.
/// `gatherFlag`: an extra g++ option for the kernels (CpuIsa::gatherFlag), or empty.
std::unique_ptr<KernelBackend> makeCpuBackend(const std::string &hostArch,
                                              const std::string &gatherFlag);
/// CUDA C++ kernels launched with cuLaunchKernel, built into one fatbin for `target`'s archs.
std::unique_ptr<KernelBackend> makeCudaBackend(const sched::Target &target);

} // namespace kiln::codegen
