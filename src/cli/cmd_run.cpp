// `kiln run`: loads a model.so, feeds .npy inputs, prints the outputs or writes them as
// .npy files, and reports the latency (optionally of repeated runs after a warm-up).
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/profile_report.h"
#include "cli/run_session.h"
#include "support/error.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

namespace kiln::cli {

namespace {

std::string safeFileName(const std::string &name) {
  std::string r;
  for (char c : name)
    r +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return r.empty() ? "output" : r;
}

struct RunOptions {
  std::string lib, outDir;
  std::vector<std::string> inputs;
  int repeat = 0, warmup = 3;
  bool json = false;
  ProfileOptions profile;
  ContainerOptions container;
};

void runCommand(const RunOptions &o) {
  std::map<std::string, std::string> files = parseNamedValues(o.inputs, "--input", "x=input_x.npy");
  ModelLib lib(o.lib);
  kiln_container *c = createContainer(lib, o.container);
  std::unique_ptr<kiln_container, decltype(lib.kiln_container_destroy)> guard(
      c, lib.kiln_container_destroy);
  const std::string device = o.container.device.empty() ? lib.modelDevice() : o.container.device;
  RunSession session(lib, c, device.rfind("cuda", 0) == 0);
  session.loadInputs(files);
  session.prepareOutputs();
  // Profiled: the --bench runs, or the one run when there are none.
  std::unique_ptr<KernelProfile> profile;
  bool profiling = o.profile.enabled || !o.profile.tracePath.empty();
  if (profiling && o.repeat == 0) {
    profile = std::make_unique<KernelProfile>(lib, c);
    profile->beginRun();
  }
  double first = session.runOnce();
  if (profile) profile->endRun();
  std::vector<double> times;
  for (int i = 0; i < o.repeat && i < o.warmup; ++i)
    session.runOnce();
  if (profiling && o.repeat > 0) profile = std::make_unique<KernelProfile>(lib, c);
  for (int i = 0; i < o.repeat; ++i) {
    if (profile) profile->beginRun();
    times.push_back(session.runOnce());
    if (profile) profile->endRun();
  }
  if (profile && !o.profile.tracePath.empty()) profile->writeTrace(o.profile.tracePath);
  if (times.empty()) times.push_back(first);
  std::sort(times.begin(), times.end());
  session.outputsToHost();
  if (!o.outDir.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(o.outDir, ec) && !std::filesystem::is_directory(o.outDir, ec))
      fail("--output-dir '{}' is a file, not a directory", o.outDir);
    std::filesystem::create_directories(o.outDir);
    for (int32_t i = 0; i < session.numOutputs(); ++i)
      writeNpy(
          (std::filesystem::path(o.outDir) / (safeFileName(session.outputInfo(i).name) + ".npy"))
              .string(),
          session.outputInfo(i).dtype, session.outputDims(i), session.outputData(i));
  } else if (!o.json) {
    for (int32_t i = 0; i < session.numOutputs(); ++i)
      printOutput(session.outputInfo(i).name, session.outputInfo(i).dtype, session.outputDims(i),
                  session.outputData(i));
  }
  auto pct = [&](double q) {
    return times[std::min(times.size() - 1, size_t(q * (times.size() - 1) + 0.5))];
  };
  int threads = o.container.threads > 0 ? o.container.threads : availableCpus();
  if (o.json) {
    nlohmann::json j = {{"model", o.lib},
                        {"device", device},
                        {"cpu_isa", lib.cpuIsa() ? lib.cpuIsa() : ""},
                        {"threads", threads},
                        {"median_ms", pct(0.5)},
                        {"p10_ms", pct(0.1)},
                        {"p90_ms", pct(0.9)},
                        {"first_ms", first},
                        {"runs", times.size()}};
    if (profile) j["profile"] = profile->toJson(o.profile.top);
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << fmt::format("model: {} ({})\n", o.lib, lib.summary());
  std::cout << fmt::format(
      "latency: {:.3f} ms{} on {} thread(s)\n", pct(0.5),
      o.repeat > 0 ? fmt::format(" median of {} runs (first run {:.3f} ms)", times.size(), first)
                   : std::string(" (one run; kiln bench for statistics)"),
      threads);
  if (profile) profile->print(std::cout, o.profile.top);
}

} // namespace

void addRunCommand(CLI::App &app) {
  auto *cmd = app.add_subcommand("run", "run a compiled model.so on .npy inputs");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("model", o->lib, "the compiled model (model.so from kiln compile)")->required();
  cmd->add_option("--input", o->inputs,
                  "NAME=FILE.npy, once per model input; a bfloat16 input takes a uint16 .npy "
                  "holding the raw bf16 bits");
  cmd->add_option("--output-dir", o->outDir,
                  "write one NAME.npy per output here (bfloat16 as uint16 raw bits); without "
                  "it, names, shapes and the first values are printed");
  cmd->add_option("--bench", o->repeat,
                  "timed runs after the warm-up; prints their median (kiln bench gives more)")
      ->check(atLeast(0));
  cmd->add_option("--warmup", o->warmup, "untimed runs before the --bench runs (default 3)")
      ->check(atLeast(0));
  cmd->add_option("--threads", o->container.threads,
                  "threads per run (default: the CPUs this process may use)")
      ->check(atLeast(0));
  cmd->add_option("--weights", o->container.weights,
                  "external weights file (default: <model>.weights when it exists)");
  cmd->add_flag("--json", o->json, "print the timing as one JSON line (no output values)");
  addProfileOptions(cmd, o->profile);
  cmd->add_option("--device", o->container.device,
                  "cpu, cuda or cuda:N (default: the device the model was compiled for); on a "
                  "GPU, inputs are copied to it and outputs back");
  cmd->callback([o] { runCommand(*o); });
}

} // namespace kiln::cli
