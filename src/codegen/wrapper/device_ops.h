// Everything device-specific the wrapper prints comes from a DeviceOps object (the idea
// of Inductor's DeviceOpOverrides). The wrapper generator itself has no device branches.
#pragma once

#include "codegen/backend.h"
#include "sched/target.h"

#include <memory>
#include <string>
#include <vector>

namespace kiln::codegen {

/// One kernel launch as the wrapper computed it: C expressions only.
struct LaunchCall {
  std::string name;                  // kiln_kernel_<id>
  int index = 0;                     // position in the model's kernel table
  std::vector<std::string> args;     // C expressions, in parameter order
  std::vector<std::string> argTypes; // parameterTypes() of the same signature
  std::vector<std::string> grid;     // x, y, z (empty: a direct call)
  int block[3] = {1, 1, 1};
  int sharedBytes = 0;
};

class DeviceOps {
public:
  virtual ~DeviceOps() = default;
  virtual const char *deviceName() const = 0;
  /// Includes the wrapper source needs.
  virtual std::string includes() const = 0;
  /// Statements opening every run function (e.g. the device's view of the run context).
  virtual std::string runPrologue() const = 0;
  /// Statement allocating `bytes` of scratch into `var` (a char*), returning on failure.
  virtual std::string allocScratch(const std::string &var, const std::string &bytes) const = 0;
  /// Declaration of a kernel defined in another translation unit ("" when launched by index).
  virtual std::string declareKernel(const std::string &name,
                                    const std::vector<std::string> &paramTypes) const = 0;
  /// Statement(s) launching a kernel; a launch whose grid is empty at run time is skipped.
  virtual std::string launchKernel(const LaunchCall &call) const = 0;
  /// Statement copying `bytes` from device buffer src to device buffer dst.
  virtual std::string copy(const std::string &dst, const std::string &src,
                           const std::string &bytes) const = 0;
  /// Statement reading `bytes` of device buffer src into host memory dst, complete on return
  /// (on a GPU a synchronisation: control flow's conditions and shape values the model
  /// computes, e.g. a TopK k, need it).
  virtual std::string readToHost(const std::string &dst, const std::string &src,
                                 const std::string &bytes) const = 0;
  /// Statement run at the end of a run (nothing: the runtime tracks completion).
  virtual std::string synchronize() const = 0;
  /// The backend printing this device's kernels, and the one printing host-side kernels
  /// (shape values bind_shapes computes from input data before the run).
  virtual const KernelBackend &kernelBackend() const = 0;
  virtual const KernelBackend &hostBackend() const = 0;
  /// Compiler flags of the wrapper and extra link flags of model.so.
  virtual std::vector<std::string> wrapperFlags() const = 0;
  virtual std::vector<std::string> linkFlags() const = 0;
  /// Lowest descriptor ABI a model of this device needs.
  virtual int minAbi() const = 0;
  /// Initialisers of the ABI-4 descriptor fields cuda_fatbin .. num/names of kernels, given
  /// the name of the kernel-name table the wrapper printed and its length.
  virtual std::string descriptorKernelFields(const std::string &namesTable, size_t count) const = 0;
  /// C literal of the descriptor's cuda_arch field ("nullptr" when not a GPU model).
  virtual std::string deviceArch() const = 0;

  /// Per-kernel profiling hooks (kiln_profiler_v1 in kiln/model_desc.h). A device that times
  /// its kernels on the host returns true from profiles(), a statement opening each run
  /// function that fetches the run's profiler, and the statements around one timed call,
  /// given the name of its kiln_profile_site_v1. The defaults print nothing (no hooks).
  virtual bool profiles() const { return false; }
  virtual std::string profilerPrologue() const { return ""; }
  virtual std::string profileBegin(const std::string &) const { return ""; }
  virtual std::string profileEnd(const std::string &) const { return ""; }
};

/// The DeviceOps of a target: direct calls and OpenMP on the CPU; cuLaunchKernel through
/// the runtime's driver table on CUDA.
std::unique_ptr<DeviceOps> makeDeviceOps(const sched::Target &target);

} // namespace kiln::codegen
