#include "aot/compile.h"

#include "aot/builder.h"
#include "aot/cpu_isa.h"
#include "aot/install_paths.h"
#include "aot/subprocess.h"
#include "codegen/wrapper/wrapper.h"
#include "lower/lowerer.h"
#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

namespace kiln::aot {

namespace fs = std::filesystem;

std::string defaultCacheDir() {
  if (const char *env = std::getenv("KILN_CACHE_DIR"); env && *env) return env;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/kiln";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/kiln";
  return "/tmp/kiln-cache";
}

namespace {

/// Times the pipeline's stages; each start checks for an interrupt and reports progress.
class StageClock {
public:
  StageClock(const CompileOptions &opts, CompileStats &stats) : opts_(opts), stats_(stats) {}
  ~StageClock() { stop(); }
  void start(const char *stage) {
    stop();
    checkInterrupt();
    if (opts_.onStage) opts_.onStage(stage);
    stage_ = stage;
    t0_ = std::chrono::steady_clock::now();
  }
  void stop() {
    if (stage_.empty()) return;
    stats_.stageSeconds.emplace_back(
        stage_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
    stage_.clear();
  }

private:
  const CompileOptions &opts_;
  CompileStats &stats_;
  std::string stage_;
  std::chrono::steady_clock::time_point t0_;
};

} // namespace

CompileStats compileModel(const CompileOptions &opts) {
  auto start = std::chrono::steady_clock::now();
  CompileStats st;
  StageClock clock(opts, st);
  // Before any work: a bad --cpu is reported at once.
  clock.start("target");
  std::string cacheDir = opts.cacheDir.empty() ? defaultCacheDir() : opts.cacheDir;
  CpuIsa isa = resolveCpuIsa(opts.target.hostArch, cacheDir);
  st.cpuIsa = isa.name;
  clock.start("import");
  sym::Context ctx;
  auto graph = frontend::importModel(opts.modelPath, ctx, opts.import);
  auto dumpAfter = [&](const char *pass) {
    if (opts.printAfterAll) std::cerr << "// ---- after " << pass << " ----\n" << ir::dump(*graph);
  };
  dumpAfter("import");
  // The pass pipeline (passes/pipeline.cpp): a flat list, each step one documented function.
  clock.start("optimize");
  passes::optimizeGraph(*graph, dumpAfter, opts.target);

  clock.start("lower");
  loop::Program prog;
  lower::Lowerer lowerer(*graph, prog, opts.target);
  lowerer.lowerGraph();
  clock.start("schedule");
  sched::scheduleProgram(prog, ctx, opts.target);
  sched::checkTuningFits(prog, opts.target);
  if (opts.target.device == sched::DeviceKind::Cuda)
    for (const loop::KernelGroup &g : prog.groups)
      if (!g.isExtern() && !g.isCall())
        st.cudaKernels.push_back({fmt::format("kiln_kernel_{}", g.kernels.front()->id),
                                  g.cuda.tuneKey,
                                  {g.cuda.block, g.cuda.vector, g.cuda.rowsPerWarp},
                                  sched::describeSelection(g)});
  if (opts.printAfterAll) std::cerr << "// ---- loop IR ----\n" << loop::dump(prog);

  clock.start("generate");
  bool embed = !opts.externalWeights;
  sched::Target buildTarget = opts.target;
  buildTarget.hostGatherFlag = isa.gatherFlag;
  std::unique_ptr<codegen::DeviceOps> ops = codegen::makeDeviceOps(buildTarget);
  codegen::BuildStamp stamp{isa.name, isa.features, kilnVersion()};
  codegen::GeneratedModel gm =
      codegen::generateModel(*graph, prog, *ops, opts.kernelsPerFile, stamp);
  gm.cacheSalt = isa.features; // -march=native differs between machines sharing a cache
  clock.start("build");
  BuildResult br;
  if (!embed) {
    // Written first under a temp name; renamed only after model.so links.
    TempFilesScope interruptible;
    fs::path wpath = opts.outputPath + ".weights";
    fs::path tmp = wpath;
    tmp += ".tmp" + std::to_string(getpid());
    std::FILE *out = std::fopen(tmp.c_str(), "wb");
    bool ok = out && gm.weights.write(out);
    int err = errno;
    if (out && std::fclose(out) != 0 && ok) {
      ok = false;
      err = errno;
    }
    if (!ok) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail("cannot write weights file '{}': {}{}", wpath.string(), std::strerror(err),
           err == ENOSPC || err == EFBIG ? " (disk full or file size limit)" : "");
    }
    try {
      br = buildSharedLibrary(gm, opts.outputPath, cacheDir, opts.jobs, false, opts.keepSources,
                              opts.onBuildProgress);
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    fs::rename(tmp, wpath);
  } else {
    br = buildSharedLibrary(gm, opts.outputPath, cacheDir, opts.jobs, true, opts.keepSources,
                            opts.onBuildProgress);
  }
  clock.stop();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto &k : prog.kernels)
    (k->kind == loop::KernelKind::Extern ? st.externs : st.kernels)++;
  st.sources = gm.sources.size();
  st.cacheHits = br.cacheHits;
  st.linkCached = br.linkCached;
  st.unchanged = br.unchanged;
  st.compiled = br.compiled;
  return st;
}

} // namespace kiln::aot
