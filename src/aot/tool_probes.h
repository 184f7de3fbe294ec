// Answers of the toolchain probes a compile asks before it starts (which -march=native this CPU
// gets, which linker g++ can use), kept in the object cache. Each probe starts a compiler and
// costs 0.2-0.7 s; they were a third of a small model's warm compile. An answer is keyed by
// everything it depends on: the probe's own inputs, the tools' files (path, size, time) and,
// for -march=native, this CPU's /proc/cpuinfo identity and flags.
#pragma once

#include <functional>
#include <string>

namespace kiln::aot {

/// "path:size:mtime" of the executable `tool` found on PATH, or "none" where there is none.
std::string toolIdentity(const std::string &tool);

/// The first CPU's vendor, family, model, name and flags lines of /proc/cpuinfo (what
/// -march=native is derived from); empty where the file cannot be read.
std::string cpuIdentity();

/// The answer stored under `key` in `<cacheDir>/probes`, or `compute()`'s, stored there for
/// the next compile (written atomically; a cache that cannot be written is not an error).
/// An empty cacheDir computes every time.
std::string cachedProbe(const std::string &cacheDir, const std::string &key,
                        const std::function<std::string()> &compute);

} // namespace kiln::aot
