#include "cli/profile_report.h"

#include "support/error.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>

namespace kiln::cli {

namespace {

// The clock the runtime stamps events with (kiln_profile_event: CLOCK_MONOTONIC).
uint64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

const char *kindName(int32_t kind) {
  return kind == KILN_PROFILE_EXTERN ? "extern" : "kernel";
}

std::string clip(const std::string &s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}

} // namespace

void addProfileOptions(CLI::App *cmd, ProfileOptions &o) {
  cmd->add_flag("--profile", o.enabled,
                "time every generated kernel and library (shim) call of the timed runs and print "
                "the top ones (CPU models)");
  cmd->add_option("--profile-top", o.top, "rows of the --profile table (default 20)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--profile-trace", o.tracePath,
                  "also write a Chrome trace JSON of the profiled runs (chrome://tracing, "
                  "Perfetto); implies --profile");
}

KernelProfile::KernelProfile(const ModelLib &lib, kiln_container *c) : lib_(lib), c_(c) {
  if (!lib.kiln_set_profiler)
    fail("{} has no kiln_set_profiler: it was compiled by a kiln without per-kernel "
         "profiling; compile it again to use --profile",
         lib.path);
  lib.check(lib.kiln_set_profiler(c, &KernelProfile::onEvent, this), "--profile");
}

KernelProfile::~KernelProfile() {
  lib_.kiln_set_profiler(c_, nullptr, nullptr);
}

void KernelProfile::onEvent(void *user, const kiln_profile_event *e) {
  auto *self = static_cast<KernelProfile *>(user);
  if (!self->inRun_) return;
  self->events_.push_back({e->name, e->origin, e->kind, e->site, e->start_ns, e->end_ns});
}

void KernelProfile::beginRun() {
  runs_.emplace_back(monotonicNs(), 0);
  inRun_ = true;
}

void KernelProfile::endRun() {
  inRun_ = false;
  runs_.back().second = monotonicNs();
}

double KernelProfile::runMs() const {
  double ms = 0;
  for (auto &[b, e] : runs_)
    ms += static_cast<double>(e - b) * 1e-6;
  return ms;
}

std::vector<KernelProfile::Row> KernelProfile::rows() const {
  std::map<int32_t, Row> bySite;
  for (const Event &e : events_) {
    Row &r = bySite.try_emplace(e.site, Row{e.name, e.origin, e.kind, e.site}).first->second;
    ++r.calls;
    r.totalMs += static_cast<double>(e.end - e.start) * 1e-6;
  }
  std::vector<Row> out;
  for (auto &[site, r] : bySite)
    out.push_back(r);
  std::stable_sort(out.begin(), out.end(),
                   [](const Row &a, const Row &b) { return a.totalMs > b.totalMs; });
  return out;
}

void KernelProfile::print(std::ostream &os, int top) const {
  std::vector<Row> rs = rows();
  double run = runMs();
  if (rs.empty()) {
    os << "profile: no kernel events were recorded; the model was compiled by a kiln without "
          "profiling hooks, or the runtime is older than the model. Compile it again.\n";
    return;
  }
  double kernels = 0, externs = 0;
  std::map<std::string, std::pair<int64_t, double>> byShim;
  for (const Row &r : rs) {
    (r.kind == KILN_PROFILE_EXTERN ? externs : kernels) += r.totalMs;
    if (r.kind == KILN_PROFILE_EXTERN) {
      byShim[r.name].first += r.calls;
      byShim[r.name].second += r.totalMs;
    }
  }
  auto pct = [run](double ms) { return run > 0 ? 100.0 * ms / run : 0.0; };
  os << fmt::format("profile: {} runs, {:.3f} ms in all; {} call sites ({} shown)\n", runs_.size(),
                    run, rs.size(), std::min<size_t>(rs.size(), top));
  os << fmt::format("{:>4}  {:<26} {:<6} {:>7} {:>10} {:>9} {:>6}  {}\n", "#", "name", "kind",
                    "calls", "total ms", "mean ms", "% run", "ONNX node(s)");
  for (size_t i = 0; i < rs.size() && static_cast<int>(i) < top; ++i) {
    const Row &r = rs[i];
    os << fmt::format("{:>4}  {:<26} {:<6} {:>7} {:>10.3f} {:>9.4f} {:>5.1f}%  {}\n", i + 1,
                      clip(r.name, 26), kindName(r.kind), r.calls, r.totalMs,
                      r.totalMs / static_cast<double>(r.calls), pct(r.totalMs), clip(r.origin, 60));
  }
  os << fmt::format("generated kernels: {:.3f} ms ({:.1f}%); library calls: {:.3f} ms ({:.1f}%); "
                    "the rest ({:.1f}%) is the wrapper, shape checks and the runtime\n",
                    kernels, pct(kernels), externs, pct(externs),
                    std::max(0.0, 100.0 - pct(kernels) - pct(externs)));
  for (auto &[name, v] : byShim)
    os << fmt::format("  {}: {} calls, {:.3f} ms ({:.1f}%)\n", name, v.first, v.second,
                      pct(v.second));
}

nlohmann::json KernelProfile::toJson(int top) const {
  nlohmann::json rowsJson = nlohmann::json::array();
  std::vector<Row> rs = rows();
  double run = runMs();
  for (size_t i = 0; i < rs.size() && static_cast<int>(i) < top; ++i) {
    const Row &r = rs[i];
    rowsJson.push_back({{"name", r.name},
                        {"origin", r.origin},
                        {"kind", kindName(r.kind)},
                        {"site", r.site},
                        {"calls", r.calls},
                        {"total_ms", r.totalMs},
                        {"mean_ms", r.totalMs / static_cast<double>(r.calls)},
                        {"percent_of_run", run > 0 ? 100.0 * r.totalMs / run : 0.0}});
  }
  return {{"runs", runs_.size()}, {"run_ms", run}, {"sites", rs.size()}, {"top", rowsJson}};
}

void KernelProfile::writeTrace(const std::string &path) const {
  uint64_t t0 = runs_.empty() ? 0 : runs_.front().first;
  auto us = [t0](uint64_t ns) { return static_cast<double>(ns - t0) * 1e-3; };
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", 1},
                    {"args", {{"name", "kiln " + lib_.path}}}});
  for (size_t i = 0; i < runs_.size(); ++i)
    events.push_back({{"name", fmt::format("run {}", i)},
                      {"cat", "run"},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", 1},
                      {"ts", us(runs_[i].first)},
                      {"dur", us(runs_[i].second) - us(runs_[i].first)}});
  for (const Event &e : events_)
    events.push_back({{"name", e.name},
                      {"cat", kindName(e.kind)},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", 1},
                      {"ts", us(e.start)},
                      {"dur", us(e.end) - us(e.start)},
                      {"args", {{"origin", e.origin}, {"site", e.site}}}});
  nlohmann::json trace = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("--profile-trace: cannot write '{}'", path);
    out << trace.dump() << "\n";
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      fail("--profile-trace: writing '{}' failed", path);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("--profile-trace: cannot write '{}': {}", path, ec.message());
  }
}

} // namespace kiln::cli
