#include "codegen/wrapper/device_ops.h"

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

class CpuDeviceOps final : public DeviceOps {
public:
  explicit CpuDeviceOps(const sched::Target &t)
      : backend_(makeCpuBackend(t.hostArch, t.hostGatherFlag)) {}
  const char *deviceName() const override { return "cpu"; }
  std::string includes() const override { return "#include <omp.h>\n"; }
  std::string runPrologue() const override { return ""; }
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
  std::string launchKernel(const LaunchCall &call) const override {
    return fmt::format("{}({});\n", call.name, fmt::join(call.args, ", "));
  }
  std::string copy(const std::string &dst, const std::string &src,
                   const std::string &bytes) const override {
    return fmt::format("memcpy({}, {}, {});", dst, src, bytes);
  }
  std::string readToHost(const std::string &dst, const std::string &src,
                         const std::string &bytes) const override {
    return copy(dst, src, bytes);
  }
  std::string synchronize() const override { return ""; }
  const KernelBackend &kernelBackend() const override { return *backend_; }
  const KernelBackend &hostBackend() const override { return *backend_; }
  std::vector<std::string> wrapperFlags() const override { return {"-O2", "-fopenmp"}; }
  std::vector<std::string> linkFlags() const override { return {"-fopenmp"}; }
  int minAbi() const override { return 2; }
  std::string descriptorKernelFields(const std::string &, size_t) const override {
    return "nullptr, 0, 0, nullptr";
  }
  std::string deviceArch() const override { return "nullptr"; }
  // Host timing around each direct call; kiln_rt_run_profiler is weak so the model still
  // loads on a runtime without it (no profiling there).
  bool profiles() const override { return true; }
  std::string profilerPrologue() const override {
    return "  const kiln_profiler_v1 *prof = kiln_rt_run_profiler ? "
           "kiln_rt_run_profiler(ctx->runner) : nullptr;\n";
  }
  std::string profileBegin(const std::string &site) const override {
    return fmt::format("if (prof) prof->begin(prof->user, &{});\n", site);
  }
  std::string profileEnd(const std::string &site) const override {
    return fmt::format("if (prof) prof->end(prof->user, &{});\n", site);
  }

private:
  std::unique_ptr<KernelBackend> backend_;
};

} // namespace

std::unique_ptr<DeviceOps> makeCpuDeviceOps(const sched::Target &t) {
  return std::make_unique<CpuDeviceOps>(t);
}

} // namespace kiln::codegen
