// `kiln bench`: latency statistics of a compiled model on given or synthetic inputs.
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/openmp_spin.h"
#include "cli/profile_report.h"
#include "cli/run_session.h"
#include "support/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

namespace kiln::cli {

namespace {

struct BenchOptions {
  std::string lib;
  std::vector<std::string> inputs, shapes;
  int runs = 100, warmup = 10;
  double minSeconds = 0;
  bool json = false;
  ProfileOptions profile;
  ContainerOptions container;
};

/// The q-quantile of sorted samples (nearest rank).
double quantile(const std::vector<double> &sorted, double q) {
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void benchCommand(const BenchOptions &o) {
  if (o.runs < 1) fail("--runs {}: at least one timed run is needed", o.runs);
  std::map<std::string, std::string> files = parseNamedValues(o.inputs, "--input", "x=x.npy");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto &[name, text] : parseNamedValues(o.shapes, "--shape", "x=1x3x224x224"))
    shapes[name] = parseShape(text, "--shape", name + "=" + text);
  if (!files.empty() && !shapes.empty())
    fail("--shape sets the shapes of synthetic inputs; with --input the .npy files give them");
  ModelLib lib(o.lib);
  kiln_container *c = createContainer(lib, o.container);
  std::unique_ptr<kiln_container, decltype(lib.kiln_container_destroy)> guard(
      c, lib.kiln_container_destroy);
  const std::string device = o.container.device.empty() ? lib.modelDevice() : o.container.device;
  RunSession session(lib, c, device.rfind("cuda", 0) == 0);
  if (files.empty())
    session.syntheticInputs(shapes);
  else
    session.loadInputs(files);
  session.prepareOutputs();
  double first = session.runOnce();
  for (int i = 0; i < o.warmup; ++i)
    session.runOnce();
  std::vector<double> times;
  // The timed runs are the profiled ones (hooks cost two clock reads per kernel).
  std::unique_ptr<KernelProfile> profile;
  if (o.profile.enabled || !o.profile.tracePath.empty())
    profile = std::make_unique<KernelProfile>(lib, c);
  auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(times.size()) < o.runs ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             o.minSeconds) {
    if (profile) profile->beginRun();
    times.push_back(session.runOnce());
    if (profile) profile->endRun();
  }
  if (profile && !o.profile.tracePath.empty()) profile->writeTrace(o.profile.tracePath);
  std::sort(times.begin(), times.end());
  double mean = std::accumulate(times.begin(), times.end(), 0.0) / times.size();
  int threads = o.container.threads > 0 ? o.container.threads : availableCpus();
  // One run at a time: throughput is runs (and for a leading batch dim, samples) per second.
  double perSecond = 1000.0 / mean;
  std::string inputsText;
  nlohmann::json inputsJson = nlohmann::json::object();
  for (int32_t i = 0; i < session.numInputs(); ++i) {
    std::string dims;
    for (int64_t d : session.inputDims(i))
      dims += (dims.empty() ? "" : "x") + std::to_string(d);
    inputsText += fmt::format("{}{}={}", i ? " " : "", session.inputInfo(i).name,
                              dims.empty() ? "scalar" : dims);
    inputsJson[session.inputInfo(i).name] = session.inputDims(i);
  }
  if (o.json) {
    nlohmann::json j = {{"model", o.lib},
                        {"device", device},
                        {"cpu_isa", lib.cpuIsa() ? lib.cpuIsa() : ""},
                        {"threads", threads},
                        {"openmp_spin", boundOpenMpSpin().setting},
                        {"inputs", inputsJson},
                        {"synthetic_inputs", files.empty()},
                        {"warmup", o.warmup},
                        {"runs", times.size()},
                        {"first_ms", first},
                        {"mean_ms", mean},
                        {"min_ms", times.front()},
                        {"p50_ms", quantile(times, 0.5)},
                        {"p90_ms", quantile(times, 0.9)},
                        {"p99_ms", quantile(times, 0.99)},
                        {"max_ms", times.back()},
                        {"runs_per_s", perSecond}};
    if (profile) j["profile"] = profile->toJson(o.profile.top);
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << fmt::format("model:      {} ({})\n", o.lib, lib.summary());
  std::cout << fmt::format("inputs:     {} ({})\n", inputsText,
                           files.empty() ? "synthetic" : "from --input");
  std::cout << fmt::format("threads:    {}; {} warm-up runs, {} timed runs (first run {:.3f} "
                           "ms)\n",
                           threads, o.warmup, times.size(), first);
  const OpenMpSpin &spin = boundOpenMpSpin();
  std::cout << fmt::format(
      "openmp:     {} ({})\n", spin.setting,
      spin.fromEnvironment
          ? std::string("from the environment")
          : fmt::format("a ~{:.0f} us spin at {:.1f} ns per PAUSE", spin.targetUs, spin.pauseNs));
  std::cout << fmt::format("latency ms: p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  mean {:.3f}  min "
                           "{:.3f}  max {:.3f}\n",
                           quantile(times, 0.5), quantile(times, 0.9), quantile(times, 0.99), mean,
                           times.front(), times.back());
  std::cout << fmt::format("throughput: {:.1f} runs/s (one run at a time)\n", perSecond);
  if (profile) profile->print(std::cout, o.profile.top);
}

} // namespace

void addBenchCommand(CLI::App &app) {
  auto *cmd =
      app.add_subcommand("bench", "time a compiled model.so: latency percentiles and throughput");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("model", o->lib, "the compiled model (model.so from kiln compile)")->required();
  cmd->add_option("--shape", o->shapes,
                  "NAME=DxDx...: shape of a synthetic input (default: the model's, symbolic "
                  "dims at their smallest non-zero value)");
  cmd->add_option("--input", o->inputs, "NAME=FILE.npy: real inputs instead of synthetic ones");
  cmd->add_option("--runs", o->runs, "timed runs (default 100)")->check(atLeast(1));
  cmd->add_option("--warmup", o->warmup, "untimed runs first (default 10)")->check(atLeast(0));
  cmd->add_option("--min-time", o->minSeconds,
                  "keep timing until this many seconds have passed (default 0)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--threads", o->container.threads,
                  "threads per run (default: the CPUs this process may use)")
      ->check(atLeast(0));
  cmd->add_option("--weights", o->container.weights,
                  "external weights file (default: <model>.weights when it exists)");
  cmd->add_option("--device", o->container.device,
                  "cpu, cuda or cuda:N (default: the device the model was compiled for)");
  cmd->add_flag("--json", o->json, "print the statistics as one JSON line");
  addProfileOptions(cmd, o->profile);
  cmd->callback([o] { benchCommand(*o); });
}

} // namespace kiln::cli
