// The CUDA DeviceOps: kernels launch by index through the runtime's driver table
// (kiln_run_ctx_cuda: cuLaunchKernel on the run's stream), scratch comes from the runner's
// device arena, and nothing in generated code allocates, synchronises or picks a device.
#include "codegen/common/c_printer.h"
#include "codegen/wrapper/device_ops.h"

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

/// Status check of a driver call: the message names what failed and the driver's text.
std::string checked(const std::string &call, const std::string &what) {
  return fmt::format(
      "{{ int st_ = {}; if (st_) {{ snprintf(ctx->error, ctx->error_size, "
      "\"%s failed: %s\", {}, cu->drv->error_string(st_)); return KILN_ERR_DEVICE; }} }}",
      call, cString(what)); // `what` is data, never part of the format
}

class CudaDeviceOps final : public DeviceOps {
public:
  explicit CudaDeviceOps(const sched::Target &t)
      : kernels_(makeCudaBackend(t)), host_(makeCpuBackend(t.hostArch, t.hostGatherFlag)),
        arch_(fmt::format("\"{}\"", fmt::join(t.cudaArchs, ","))) {}
  const char *deviceName() const override { return "cuda"; }
  std::string includes() const override {
    return "extern \"C\" const uint8_t kiln_cuda_fatbin[];\n"
           "extern \"C\" const uint64_t kiln_cuda_fatbin_size;\n";
  }
  std::string runPrologue() const override {
    return "  kiln_run_ctx_cuda *cu = (kiln_run_ctx_cuda *)ctx; (void)cu;\n";
  }
  std::string allocScratch(const std::string &var, const std::string &bytes) const override {
    // The runtime reserved scratch_bytes(S) before the run: this only bumps a pointer.
    return fmt::format("char *{0} = (char *)ctx->alloc(ctx->runner, (size_t)({1}));\n"
                       "  if (!{0} && ({1}) > 0) {{ snprintf(ctx->error, ctx->error_size, "
                       "\"out of device memory allocating %lld bytes\", (long long)({1})); "
                       "return KILN_ERR_OUT_OF_MEMORY; }}\n",
                       var, bytes);
  }
  std::string declareKernel(const std::string &, const std::vector<std::string> &) const override {
    return "";
  }
  std::string launchKernel(const LaunchCall &c) const override {
    std::string s = fmt::format("{{ // {}\n", c.name);
    s += fmt::format("    const uint32_t gx = (uint32_t)({}), gy = (uint32_t)({}), gz = "
                     "(uint32_t)({});\n",
                     c.grid.at(0), c.grid.at(1), c.grid.at(2));
    s += "    if (gx && gy && gz) {\n";
    std::vector<std::string> refs;
    for (size_t i = 0; i < c.args.size(); ++i) {
      // Locals of exactly the kernel's parameter types: the launch passes their addresses.
      s += fmt::format("      {} a{} = {};\n", c.argTypes.at(i), i, c.args[i]);
      refs.push_back(fmt::format("(void *)&a{}", i));
    }
    if (refs.empty()) refs.push_back("nullptr");
    s += fmt::format("      void *args[] = {{{}}};\n", fmt::join(refs, ", "));
    s += "      " +
         checked(fmt::format("cu->drv->launch(cu->functions[{}], gx, gy, gz, {}, {}, {}, {}, "
                             "cu->stream, args)",
                             c.index, c.block[0], c.block[1], c.block[2], c.sharedBytes),
                 "launching " + c.name) +
         "\n    }\n  }\n";
    return s;
  }
  std::string copy(const std::string &dst, const std::string &src,
                   const std::string &bytes) const override {
    return checked(fmt::format("cu->drv->copy({}, {}, (size_t)({}), cu->stream)", dst, src, bytes),
                   "device copy");
  }
  std::string readToHost(const std::string &dst, const std::string &src,
                         const std::string &bytes) const override {
    return checked(
        fmt::format("cu->drv->read_to_host({}, {}, (size_t)({}), cu->stream)", dst, src, bytes),
        "reading a run-time value to the host");
  }
  std::string synchronize() const override { return ""; }
  const KernelBackend &kernelBackend() const override { return *kernels_; }
  const KernelBackend &hostBackend() const override { return *host_; }
  std::vector<std::string> wrapperFlags() const override { return {"-O2"}; }
  std::vector<std::string> linkFlags() const override { return {}; }
  int minAbi() const override { return 4; }
  std::string descriptorKernelFields(const std::string &namesTable, size_t count) const override {
    return fmt::format("kiln_cuda_fatbin, kiln_cuda_fatbin_size, {}, {}", count, namesTable);
  }
  std::string deviceArch() const override { return arch_; }

private:
  std::unique_ptr<KernelBackend> kernels_, host_;
  std::string arch_;
};

} // namespace

std::unique_ptr<DeviceOps> makeCpuDeviceOps(const sched::Target &t);

std::unique_ptr<DeviceOps> makeDeviceOps(const sched::Target &t) {
  switch (t.device) {
  case sched::DeviceKind::Cpu:
    return makeCpuDeviceOps(t);
  case sched::DeviceKind::Cuda:
    return std::make_unique<CudaDeviceOps>(t);
  }
  return nullptr;
}

} // namespace kiln::codegen
