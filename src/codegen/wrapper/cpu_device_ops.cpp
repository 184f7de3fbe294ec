#include "codegen/wrapper/device_ops.h"

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

class CpuDeviceOps final : public DeviceOps {
public:
  const char *deviceName() const override { return "cpu"; }
  std::string includes() const override { return "#include <omp.h>\n"; }
  std::string allocScratch(const std::string &var, const std::string &bytes) const override {
    return fmt::format("char *{0} = (char *)ctx->alloc(ctx->runner, (size_t)({1}));\n"
                       "  if (!{0} && ({1}) > 0) {{ snprintf(ctx->error, ctx->error_size, "
                       "\"out of memory allocating %lld bytes\", (long long)({1})); return "
                       "KILN_ERR_OUT_OF_MEMORY; }}\n",
                       var, bytes);
  }
  std::string declareKernel(const std::string &name,
                            const std::vector<std::string> &paramTypes) const override {
    return fmt::format("extern \"C\" void {}({});\n", name, fmt::join(paramTypes, ", "));
  }
  std::string launchKernel(const std::string &name,
                           const std::vector<std::string> &args) const override {
    return fmt::format("{}({});\n", name, fmt::join(args, ", "));
  }
  std::string synchronize() const override { return ""; }
  std::vector<std::string> kernelFlags() const override {
    return {"-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"};
  }
};

} // namespace

const DeviceOps &cpuDeviceOps() {
  static const CpuDeviceOps ops;
  return ops;
}

} // namespace kiln::codegen
