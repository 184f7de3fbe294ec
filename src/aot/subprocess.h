// Compiler processes the builder starts, and interruption (Ctrl-C) of a compile: the
// handler only records the request; the builder stops its processes, removes its temp
// files and throws Interrupted, so an interrupted compile leaves nothing in the cache.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln::aot {

/// Thrown when a compile stops because SIGINT/SIGTERM arrived (`kiln` exits with 130).
class Interrupted : public std::runtime_error {
public:
  Interrupted() : std::runtime_error("interrupted; no output written and no temp files left") {}
};

/// SIGINT and SIGTERM request an interrupt. Outside a TempFilesScope (nothing to clean up)
/// the process exits at once with status 130; a second signal always does.
void installInterruptHandler();
bool interruptRequested();
/// Throws Interrupted when one was requested.
void checkInterrupt();

/// While alive, a signal only records the request (the owner cleans up, then throws).
class TempFilesScope {
public:
  TempFilesScope();
  ~TempFilesScope();
  TempFilesScope(const TempFilesScope &) = delete;
  TempFilesScope &operator=(const TempFilesScope &) = delete;
};

/// `s` as one single-quoted shell word.
std::string shellQuote(const std::string &s);

/// Runs `/bin/sh -c command` in its own process group and returns its exit code (128+N
/// when killed by signal N). When an interrupt is requested meanwhile, kills the group and
/// throws Interrupted.
int runShell(const std::string &command);

} // namespace kiln::aot
