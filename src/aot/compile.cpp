#include "aot/compile.h"

#include "aot/builder.h"
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

CompileStats compileModel(const CompileOptions &opts) {
  auto start = std::chrono::steady_clock::now();
  sym::Context ctx;
  auto graph = frontend::importModel(opts.modelPath, ctx, opts.import);
  auto dumpAfter = [&](const char *pass) {
    if (opts.printAfterAll) std::cerr << "// ---- after " << pass << " ----\n" << ir::dump(*graph);
  };
  dumpAfter("import");
  // The pass pipeline (passes/pipeline.cpp): a flat list, each step one documented function.
  passes::optimizeGraph(*graph, dumpAfter, opts.target);

  loop::Program prog;
  lower::Lowerer lowerer(*graph, prog, opts.target);
  lowerer.lowerGraph();
  sched::eliminateDeadKernels(prog);
  sched::unrollSmallReductions(prog, ctx);
  sched::formGroups(prog, ctx, opts.target);
  sched::legalizeExterns(prog, opts.target);
  if (opts.printAfterAll) std::cerr << "// ---- loop IR ----\n" << loop::dump(prog);

  bool embed = !opts.externalWeights;
  std::unique_ptr<codegen::DeviceOps> ops = codegen::makeDeviceOps(opts.target);
  codegen::GeneratedModel gm =
      codegen::generateModel(*graph, prog, *ops, opts.kernelsPerFile, embed);
  // x86-64 code reaches data by 32-bit PC-relative offsets: a shared library's sections must
  // stay within 2 GiB, so large weights have to live in a separate file.
  constexpr size_t kMaxEmbeddedWeights = (size_t{2} << 30) - (size_t{256} << 20);
  if (embed && gm.weights.size > kMaxEmbeddedWeights)
    fail("the model's weights are {} bytes; model.so cannot embed more than {} (x86-64 "
         "PC-relative addressing); compile with --weights external",
         gm.weights.size, kMaxEmbeddedWeights);
  std::string cacheDir = opts.cacheDir.empty() ? defaultCacheDir() : opts.cacheDir;
  if (!embed) {
    // Written first under a temp name; renamed only after model.so links.
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
      buildSharedLibrary(gm, opts.outputPath, cacheDir, opts.jobs, false, opts.keepSources);
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    fs::rename(tmp, wpath);
  }
  BuildResult br;
  if (embed)
    br = buildSharedLibrary(gm, opts.outputPath, cacheDir, opts.jobs, true, opts.keepSources);
  CompileStats st;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto &k : prog.kernels)
    (k->kind == loop::KernelKind::Extern ? st.externs : st.kernels)++;
  st.sources = gm.sources.size();
  st.cacheHits = br.cacheHits;
  return st;
}

} // namespace kiln::aot
