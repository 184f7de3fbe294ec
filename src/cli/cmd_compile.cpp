// `kiln compile`: ONNX model → model.so, with progress on a terminal and --timings.
#include "aot/compile.h"
#include "aot/subprocess.h"
#include "cli/autotune.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "support/error.h"

#include <filesystem>
#include <iostream>
#include <regex>
#include <unistd.h>

namespace kiln::cli {

namespace {

struct CompileFlags {
  aot::CompileOptions opts;
  std::vector<std::string> dynamics, seqLens, optionals, shapes;
  std::string weights = "embedded", device = "cpu", archs = "sm_80,sm_90", cpu, tuningFile;
  bool tf32 = false, timings = false, autotune = false;
};

/// --dynamic NAME=MIN:MAX, validated (each name once, 0 <= MIN <= MAX < 2^31).
void parseDynamic(const CompileFlags &f, frontend::ImportOptions &import) {
  for (auto &[name, range] : parseNamedValues(f.dynamics, "--dynamic", "batch=1:64")) {
    std::string whole = name + "=" + range;
    size_t colon = range.find(':');
    if (colon == std::string::npos)
      fail("--dynamic '{}': expected NAME=MIN:MAX, e.g. batch=1:64", whole);
    int64_t lo = parseCount(range.substr(0, colon), "--dynamic", whole);
    int64_t hi = parseCount(range.substr(colon + 1), "--dynamic", whole);
    if (lo > hi) fail("--dynamic '{}': MIN {} is larger than MAX {}", whole, lo, hi);
    if (hi > INT32_MAX) fail("--dynamic '{}': MAX must be at most {}", whole, INT32_MAX);
    import.dynamic[name] = frontend::DynamicDim{lo, hi};
  }
}

void parseImportFlags(CompileFlags &f) {
  frontend::ImportOptions &import = f.opts.import;
  parseDynamic(f, import);
  for (auto &[name, n] : parseNamedValues(f.seqLens, "--sequence-length", "inputs=3"))
    import.sequenceLengths[name] = parseCount(n, "--sequence-length", name + "=" + n);
  for (auto &[name, v] : parseNamedValues(f.optionals, "--optional", "x=absent")) {
    if (v != "present" && v != "absent")
      fail("--optional '{}={}': expected NAME=present or NAME=absent", name, v);
    import.optionalPresent[name] = v == "present";
  }
  for (auto &[name, dims] : parseNamedValues(f.shapes, "--input-shape", "x=2,3")) {
    if (!std::regex_match(dims, std::regex("([A-Za-z0-9_]+(,[A-Za-z0-9_]+)*)?")))
      fail("--input-shape '{}={}': expected NAME=D0,D1,... (integers or dim names), e.g. x=2,3",
           name, dims);
    import.inputShapes[name] = splitCommas(dims);
  }
}

void parseTarget(CompileFlags &f) {
  if (f.device == "cuda") {
    std::vector<std::string> list = splitCommas(f.archs);
    std::regex arch("sm_[0-9]+[a-z]?");
    for (const std::string &a : list)
      if (!std::regex_match(a, arch))
        fail("--cuda-arch '{}': expected a list like sm_80,sm_90", f.archs);
    if (list.empty()) fail("--cuda-arch is empty: expected a list like sm_80,sm_90");
    f.opts.target = sched::Target::cuda(list);
    f.opts.target.allowTf32 = f.tf32;
  } else if (f.tf32) {
    fail("--allow-tf32 applies only with --device cuda");
  } else if (f.autotune || !f.tuningFile.empty()) {
    fail("{} applies only with --device cuda", f.autotune ? "--autotune" : "--tuning-file");
  }
  if (!f.autotune && !f.tuningFile.empty())
    f.opts.target.tuning =
        std::make_shared<const sched::TuningTable>(sched::readTuningFile(f.tuningFile));
  if (!f.cpu.empty()) f.opts.target.hostArch = f.cpu;
}

/// How many kernels the tuning file set, and each run-time selection among its configs.
void printTuningUse(const sched::TuningTable &t, const aot::CompileStats &st) {
  size_t tuned = 0, selecting = 0;
  for (const auto &k : st.cudaKernels) {
    tuned += t.kernels.count(k.tuneKey);
    selecting += !k.selection.empty();
  }
  std::cerr << fmt::format("kiln: tuning: {} of {} kernels tuned, {} choosing at run time\n", tuned,
                           st.cudaKernels.size(), selecting);
  for (const auto &k : st.cudaKernels)
    if (!k.selection.empty()) std::cerr << fmt::format("kiln:   {} {}\n", k.name, k.selection);
}

void compileCommand(CompileFlags &f) {
  std::error_code ec;
  if (std::filesystem::is_directory(f.opts.modelPath, ec))
    fail("'{}' is a directory; give the model.onnx file", f.opts.modelPath);
  parseTarget(f);
  parseImportFlags(f);
  f.opts.externalWeights = f.weights == "external";
  // Progress on a terminal: one line, rewritten per stage and per compiled object.
  const bool tty = isatty(STDERR_FILENO);
  std::string stage;
  if (tty) {
    f.opts.onStage = [&](const char *s) {
      stage = s;
      std::cerr << fmt::format("\r\033[Kkiln: {}...", s) << std::flush;
    };
    f.opts.onBuildProgress = [&](size_t done, size_t total) {
      std::cerr << fmt::format("\r\033[Kkiln: build: compiled {}/{} sources", done, total)
                << std::flush;
    };
  }
  aot::installInterruptHandler();
  if (f.autotune) {
    std::string path = f.tuningFile.empty() ? f.opts.outputPath + ".tuning.json" : f.tuningFile;
    f.opts.target.tuning = std::make_shared<const sched::TuningTable>(autotune(f.opts, path));
    std::cerr << fmt::format("kiln: autotune: wrote {} ({} kernels)\n", path,
                             f.opts.target.tuning->kernels.size());
  }
  aot::CompileStats st;
  try {
    st = aot::compileModel(f.opts);
  } catch (...) {
    if (tty) std::cerr << "\r\033[K" << std::flush;
    throw;
  }
  if (tty) std::cerr << "\r\033[K";
  std::cerr << fmt::format("kiln: wrote {} ({} kernels, {} extern calls, {} sources: {} compiled, "
                           "{} cached{}; CPU {}) in {:.2f} s\n",
                           f.opts.outputPath, st.kernels, st.externs, st.sources, st.compiled,
                           st.cacheHits,
                           st.unchanged    ? ", link cached, output unchanged"
                           : st.linkCached ? ", link cached"
                                           : "",
                           st.cpuIsa, st.seconds);
  if (f.opts.target.tuning) printTuningUse(*f.opts.target.tuning, st);
  if (f.timings) {
    std::cerr << "stage      seconds\n";
    for (auto &[name, secs] : st.stageSeconds)
      std::cerr << fmt::format("{:<10} {:7.3f}\n", name, secs);
    std::cerr << fmt::format("{:<10} {:7.3f}\n", "total", st.seconds);
  }
}

} // namespace

void addCompileCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("compile", "compile an ONNX model to a shared library");
  auto f = std::make_shared<CompileFlags>();
  cmd->add_option("model", f->opts.modelPath, "model.onnx")->required();
  cmd->add_option("-o,--output", f->opts.outputPath, "output shared library (model.so)")
      ->required();
  cmd->add_option("--dynamic", f->dynamics,
                  "NAME=MIN:MAX: make the named input dim symbolic with that range, e.g. "
                  "batch=1:64 (repeat per dim)");
  cmd->add_flag("--all-dims-dynamic", f->opts.import.allInputDimsDynamic,
                "make every input dim symbolic (--dynamic still sets a dim's range)");
  cmd->add_option("--cpu", f->cpu,
                  "CPU the host code is built for: native (default for --device cpu), "
                  "x86-64-v2, x86-64-v3 (default for --device cuda), x86-64-v4 or a g++ -march "
                  "name; loading on a CPU without it fails with a clear error");
  cmd->add_option("--sequence-length", f->seqLens,
                  "NAME=N: length of a sequence-typed input; its items become tensor inputs "
                  "NAME.0 ... NAME.<N-1>");
  cmd->add_option("--optional", f->optionals,
                  "NAME=present|absent: an optional-typed input is a tensor or sequence input "
                  "(present, the default) or no input (absent; OptionalHasElement is false)");
  cmd->add_option("--input-shape", f->shapes,
                  "NAME=D0,D1,...: shape of an input, replacing the model's (integers or dim "
                  "names; nothing after '=' for a scalar); NAME.K for one sequence item, NAME "
                  "for all");
  cmd->footer("Sequence and optional graph values cross the C API as tensors. A sequence input or "
              "output\n`s` of N items is the tensors s.0 ... s.<N-1> (an output's N is fixed when "
              "compiling).\nAn optional-typed output `o` is reported as a bool scalar output "
              "o.has_value, followed\nby its element's tensors when it holds one.");
  cmd->add_option("--weights", f->weights,
                  "embedded (default) or external (writes <output>.weights beside model.so)")
      ->check(CLI::IsMember({"embedded", "external"}));
  cmd->add_option("--device", f->device, "cpu (default) or cuda: where model.so runs")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--cuda-arch", f->archs,
                  "with --device cuda: GPU architectures of the fatbin, e.g. sm_80,sm_90 "
                  "(SASS for each, PTX of the last)");
  cmd->add_flag("--allow-tf32", f->tf32,
                "with --device cuda: let fp32 MatMul/Conv use TF32 tensor cores (off by default: "
                "results match PyTorch with TF32 off)");
  cmd->add_option("--tuning-file", f->tuningFile,
                  "with --device cuda: launch configurations from an earlier --autotune (no GPU "
                  "needed; kernels the file does not name keep the heuristics; a kernel whose "
                  "fastest configuration differs by size switches at run time)");
  cmd->add_flag("--autotune", f->autotune,
                "with --device cuda, on a machine with a GPU: time candidate launch "
                "configurations of every kernel, write them to --tuning-file (default "
                "<output>.tuning.json) and compile with the fastest");
  cmd->add_option("--cache-dir", f->opts.cacheDir,
                  "object cache (default $KILN_CACHE_DIR, else ~/.cache/kiln)");
  cmd->add_option("-j,--jobs", f->opts.jobs, "parallel compiler processes (default: one per CPU)")
      ->check(atLeast(0));
  cmd->add_flag("--timings", f->timings, "print a table of the seconds each stage took");
  cmd->add_flag("--keep-sources", f->opts.keepSources, "keep generated sources in <output>.src/");
  cmd->add_flag("--print-after-all", f->opts.printAfterAll, "dump the IR after every pass");
  cmd->callback([f] { compileCommand(*f); });
}

} // namespace kiln::cli
