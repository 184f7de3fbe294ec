// Where the compiler finds what every model.so build needs (kiln's headers, libkiln_rt,
// model_entry.c): next to the kiln binary when it is installed (<prefix>/bin/kiln), else
// in the build tree it was built in. KILN_INCLUDE_DIR / KILN_RT_LIB_DIR /
// KILN_MODEL_ENTRY_SOURCE in the environment override each (a relocated kiln).
#pragma once

#include <string>

namespace kiln::aot {

struct KilnPaths {
  std::string includeDir;    // holds kiln/prelude.h, kiln/model.h, ...
  std::string runtimeLibDir; // holds libkiln_rt.so
  std::string entrySource;   // model_entry.c
  // False for a build-tree kiln: its models also get the build tree's lib dir as RUNPATH
  // (so tests and developers run them in place); an installed kiln writes only $ORIGIN.
  bool installed = false;
  bool overridden = false; // KILN_RT_LIB_DIR set: that directory is added to RUNPATH too
};

const KilnPaths &kilnPaths();

/// "0.1.0": the version of this kiln (project version in CMakeLists.txt).
const char *kilnVersion();

} // namespace kiln::aot
