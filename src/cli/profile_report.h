// Per-kernel profiles for `kiln run --profile` and `kiln bench --profile`: collects the
// events a container reports through kiln_set_profiler, prints the top kernels and shim
// calls by total time, and writes a Chrome trace (chrome://tracing, Perfetto).
#pragma once

#include "cli/model_lib.h"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace kiln::cli {

struct ProfileOptions {
  bool enabled = false;
  int top = 20;          // rows of the table
  std::string tracePath; // Chrome trace JSON; empty: none
};

/// Adds --profile, --profile-top and --profile-trace to a command.
void addProfileOptions(CLI::App *cmd, ProfileOptions &o);

/// Records the kernels of the runs between beginRun and endRun while it lives.
class KernelProfile {
public:
  KernelProfile(const ModelLib &lib, kiln_container *c);
  ~KernelProfile();
  KernelProfile(const KernelProfile &) = delete;
  KernelProfile &operator=(const KernelProfile &) = delete;

  void beginRun();
  void endRun();

  /// The table of the top `top` sites by total time, with totals per kind and shim.
  void print(std::ostream &os, int top) const;
  nlohmann::json toJson(int top) const;
  /// Writes the Chrome trace (one complete event per kernel/shim call and per run) to path
  /// through a temporary file, so a failure leaves no half-written trace.
  void writeTrace(const std::string &path) const;

private:
  struct Event {
    const char *name, *origin;
    int32_t kind, site;
    uint64_t start, end;
  };
  struct Row {
    const char *name, *origin;
    int32_t kind, site;
    int64_t calls = 0;
    double totalMs = 0;
  };
  static void onEvent(void *user, const kiln_profile_event *event);
  std::vector<Row> rows() const;
  double runMs() const;

  const ModelLib &lib_;
  kiln_container *c_;
  bool inRun_ = false;
  std::vector<Event> events_;
  std::vector<std::pair<uint64_t, uint64_t>> runs_;
};

} // namespace kiln::cli
