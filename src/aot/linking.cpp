// The link of model.so (linking.h): the linker, RUNPATH and link cache key.
#include "aot/linking.h"

#include "aot/install_paths.h"
#include "aot/subprocess.h"
#include "aot/tool_probes.h"
#include "support/hash.h"

#include <cstdlib>

namespace kiln::aot {
namespace fs = std::filesystem;

/// The RUNPATH of model.so: $ORIGIN (libkiln_rt copied next to it), then the normal library
/// path. A build-tree kiln adds its build tree, an overridden KILN_RT_LIB_DIR that directory.
std::string runpathFlags() {
  std::string flags = " -Wl,-rpath," + shellQuote("$ORIGIN");
  const KilnPaths &paths = kilnPaths();
  if (!paths.installed || paths.overridden)
    flags += " -Wl,-rpath," + shellQuote(paths.runtimeLibDir);
  return flags;
}

/// The linker flag of the model.so link: lld when g++ can use it (Debian's `lld`), else gold
/// (binutils), else GNU ld. GNU ld took 4.5 s of BERT-base's cold compile to copy its 438 MB
/// of weights into model.so, gold 0.98 s, lld 0.35 s (docs/perf.md). KILN_LINKER=bfd, gold
/// or lld picks one (bfd: g++'s default).
std::string linkerFlag(const std::string &cacheDir) {
  const char *env = std::getenv("KILN_LINKER");
  const std::string want = env ? env : "";
  if (want == "bfd") return std::string();
  // g++ -fuse-ld=X starts collect2 and the linker: 0.2-0.7 s, asked once per cache.
  std::string key = "linker v1\n" + want + "\n" + toolIdentity("g++") + "\n" +
                    toolIdentity("ld.lld") + "\n" + toolIdentity("ld.gold");
  return cachedProbe(cacheDir, key, [&] {
    auto works = [](const char *ld) {
      return runShell(std::string("g++ -fuse-ld=") + ld + " -Wl,--version >/dev/null 2>&1") == 0;
    };
    for (const char *ld : {"lld", "gold"})
      if ((want.empty() || want == ld) && works(ld)) return " -fuse-ld=" + std::string(ld);
    return std::string();
  });
}

/// The cache key of a link: its command with the temporary output path taken out (the
/// SONAME in the command names the output), and the runtime library's size and time.
std::string linkKey(const std::string &link, const fs::path &tmpOut, const fs::path &out) {
  std::string cmd = link;
  std::string tmp = shellQuote(tmpOut.string());
  if (size_t at = cmd.find(tmp); at != std::string::npos) cmd.replace(at, tmp.size(), "OUT");
  std::error_code sizeError, timeError;
  fs::path rt = fs::path(kilnPaths().runtimeLibDir) / "libkiln_rt.so";
  auto size = fs::file_size(rt, sizeError);
  auto time = fs::last_write_time(rt, timeError).time_since_epoch().count();
  return hexHash(fnv1a(
      cmd + out.filename().string(),
      fnv1a(std::to_string(sizeError ? 0 : size) + ":" + std::to_string(timeError ? 0 : time))));
}

} // namespace kiln::aot
