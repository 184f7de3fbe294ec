// How long libgomp's threads spin at a barrier before they sleep, for the kiln commands that
// load a model (docs/runtime-api.md, Threads).
#pragma once

#include <string>

namespace kiln::cli {

/// What the kiln command set (or found) before libgomp was loaded.
struct OpenMpSpin {
  std::string setting; // "GOMP_SPINCOUNT=5150", "OMP_WAIT_POLICY=active", ...
  bool fromEnvironment = false;
  double pauseNs = 0;  // one PAUSE on this CPU, measured (0: not measured or not x86)
  double targetUs = 0; // how long the set spin lasts (0: the environment's setting)
};

/// Spin iterations lasting about targetUs at pauseNs per iteration, within [100, 300000]
/// (libgomp's own default is 300000); 1000 when pauseNs is not positive.
long spinIterations(double pauseNs, double targetUs);

/// Sets GOMP_SPINCOUNT to a ~50 us spin unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set;
/// the first call decides, later calls return the same. Call before libgomp is loaded.
const OpenMpSpin &boundOpenMpSpin();

} // namespace kiln::cli
