// Builds model.so from generated sources: parallel compiler processes with a
// content-hash object cache, the weights appended after the link (weights_section.h),
// atomic rename at the end.
#pragma once

#include "codegen/wrapper/wrapper.h"

#include <functional>
#include <string>

namespace kiln::aot {

struct BuildResult {
  size_t compiled = 0, cacheHits = 0;
  bool linkCached = false; // model.so copied from the cache, not linked
  bool unchanged = false;  // model.so already held that library: only touched
};

/// Called with (objects compiled, objects to compile) as the build goes.
using BuildProgress = std::function<void(size_t done, size_t total)>;

/// Throws UserError, InternalError (generated code did not compile) or Interrupted; in every
/// case the cache holds no temp file and no partial output is left.
BuildResult buildSharedLibrary(const codegen::GeneratedModel &gm, const std::string &output,
                               const std::string &cacheDir, int jobs, bool embedWeights,
                               bool keepSources, const BuildProgress &progress = {});

} // namespace kiln::aot
