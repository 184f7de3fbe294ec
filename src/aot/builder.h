// Builds model.so from generated sources: parallel compiler processes with a
// content-hash object cache, weights embedded via .incbin, atomic rename at the end.
#pragma once

#include "codegen/wrapper/wrapper.h"

#include <string>

namespace kiln::aot {

struct BuildResult {
  size_t compiled = 0, cacheHits = 0;
};

BuildResult buildSharedLibrary(const codegen::GeneratedModel &gm, const std::string &output,
                               const std::string &cacheDir, int jobs, bool embedWeights,
                               bool keepSources);

} // namespace kiln::aot
