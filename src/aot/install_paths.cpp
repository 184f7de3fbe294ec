#include "aot/install_paths.h"

#include <cstdlib>
#include <filesystem>

#if !defined(KILN_INCLUDE_DIR) || !defined(KILN_RT_LIB_DIR) || !defined(KILN_MODEL_ENTRY_SOURCE)
#error "the build must define the build-tree paths (src/CMakeLists.txt)"
#endif

namespace kiln::aot {

namespace fs = std::filesystem;

namespace {

KilnPaths findPaths() {
  KilnPaths p{KILN_INCLUDE_DIR, KILN_RT_LIB_DIR, KILN_MODEL_ENTRY_SOURCE, false, false};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // <prefix>/bin/kiln: the install layout is recognised by its files, not by a path
    // fixed at build time, so a copied or moved prefix keeps working.
    fs::path prefix = exe.parent_path().parent_path();
    fs::path entry = prefix / KILN_INSTALL_REL_DATADIR / "model_entry.c";
    fs::path include = prefix / KILN_INSTALL_REL_INCLUDEDIR;
    if (fs::exists(entry, ec) && fs::exists(include / "kiln" / "prelude.h", ec)) {
      p = {include.string(), (prefix / KILN_INSTALL_REL_LIBDIR).string(), entry.string(), true,
           false};
    }
  }
  auto setting = [](const char *env, std::string &value) {
    const char *v = std::getenv(env);
    if (!v || !*v) return false;
    value = v;
    return true;
  };
  setting("KILN_INCLUDE_DIR", p.includeDir);
  setting("KILN_MODEL_ENTRY_SOURCE", p.entrySource);
  p.overridden = setting("KILN_RT_LIB_DIR", p.runtimeLibDir);
  return p;
}

} // namespace

const KilnPaths &kilnPaths() {
  static const KilnPaths paths = findPaths();
  return paths;
}

const char *kilnVersion() {
  return KILN_VERSION;
}

} // namespace kiln::aot
