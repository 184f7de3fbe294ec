#include "aot/subprocess.h"

#include "support/error.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char **environ;

namespace kiln::aot {

namespace {

std::atomic<bool> gRequested{false};
std::atomic<int> gScopes{0};

void onSignal(int) {
  if (gScopes.load() == 0 || gRequested.exchange(true)) {
    const char msg[] = "\nkiln: interrupted\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(130);
  }
}

} // namespace

void installInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interruptRequested() {
  return gRequested.load();
}

void checkInterrupt() {
  if (gRequested.load()) throw Interrupted();
}

TempFilesScope::TempFilesScope() {
  ++gScopes;
}
TempFilesScope::~TempFilesScope() {
  --gScopes;
}

std::string shellQuote(const std::string &s) {
  std::string r = "'";
  for (char c : s)
    r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

int runShell(const std::string &command) {
  checkInterrupt();
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group: the builder kills the whole group (sh and the compiler) on interrupt.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  const char *argv[] = {"sh", "-c", command.c_str(), nullptr};
  pid_t pid = 0;
  int err = posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char *const *>(argv), environ);
  posix_spawnattr_destroy(&attr);
  if (err != 0) fail("cannot start /bin/sh to run the C++ compiler: {}", std::strerror(err));
  int status = 0;
  bool killed = false;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) fail("waiting for the C++ compiler failed: {}", strerror(errno));
    if (gRequested.load() && !killed) {
      kill(-pid, SIGTERM);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  checkInterrupt();
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

} // namespace kiln::aot
