// Everything device-specific the wrapper prints comes from a DeviceOps object (the idea
// of Inductor's DeviceOpOverrides). The wrapper generator itself has no device branches.
#pragma once

#include <string>
#include <vector>

namespace kiln::codegen {

class DeviceOps {
public:
  virtual ~DeviceOps() = default;
  virtual const char *deviceName() const = 0;
  /// Includes the wrapper source needs.
  virtual std::string includes() const = 0;
  /// Statement allocating `bytes` of scratch into `var` (a char*), returning on failure.
  virtual std::string allocScratch(const std::string &var, const std::string &bytes) const = 0;
  /// Declaration of a kernel function defined in another translation unit.
  virtual std::string declareKernel(const std::string &name,
                                    const std::vector<std::string> &paramTypes) const = 0;
  /// Statement launching kernel `name` with arguments (already C expressions).
  virtual std::string launchKernel(const std::string &name,
                                   const std::vector<std::string> &args) const = 0;
  /// Statement run at the end of a run (stream synchronize on GPUs).
  virtual std::string synchronize() const = 0;
  /// Extra compiler flags for kernel translation units.
  virtual std::vector<std::string> kernelFlags() const = 0;
};

/// The CPU implementation: direct calls, arena scratch from the runner.
const DeviceOps &cpuDeviceOps();

} // namespace kiln::codegen
