// The subcommands of `kiln`, one file each, and its exit statuses (README: Exit status).
#pragma once

#include <CLI/CLI.hpp>

namespace kiln::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // bad model, bad input, failed run
inline constexpr int kExitUsage = 2;       // bad command line
inline constexpr int kExitUnsupported = 3; // kiln inspect: the model has unsupported ops
inline constexpr int kExitInternal = 70;   // a kiln bug (please report)
inline constexpr int kExitInterrupted = 130;

/// Thrown by a command that ends with a non-zero status after printing its result.
struct ExitStatus {
  int code;
};

void addCompileCommand(CLI::App &app);
void addRunCommand(CLI::App &app);
void addBenchCommand(CLI::App &app);
void addInspectCommand(CLI::App &app); // also `kiln ops`
void addCacheCommand(CLI::App &app);

} // namespace kiln::cli
