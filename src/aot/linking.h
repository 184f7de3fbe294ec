// The link of model.so beyond its compiled objects: which linker runs, the RUNPATH, and the
// key under which the linked library is cached. (The weights are not linked:
// weights_section.h.)
#pragma once

#include <filesystem>
#include <string>

namespace kiln::aot {

/// " -fuse-ld=lld", " -fuse-ld=gold" or "" (GNU ld); the answer is kept in
/// `<cacheDir>/probes` (tool_probes.h).
std::string linkerFlag(const std::string &cacheDir);

/// " -Wl,-rpath,..." flags: $ORIGIN, then kiln's runtime directory when not installed.
std::string runpathFlags();

/// The cache key of a link command writing tmpOut for out.
std::string linkKey(const std::string &link, const std::filesystem::path &tmpOut,
                    const std::filesystem::path &out);

} // namespace kiln::aot
