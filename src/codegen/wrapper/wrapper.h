// The device-agnostic wrapper generator: prints the host code that checks shapes,
// allocates scratch by the memory plan, launches kernels in order and calls externs,
// plus the model descriptor libkiln_rt reads. Kernels go to separate sources.
#pragma once

#include "codegen/wrapper/device_ops.h"
#include "ir/graph.h"
#include "loop/program.h"

#include <string>
#include <vector>

namespace kiln::codegen {

struct GeneratedModel {
  std::vector<SourceFile> sources;
  std::vector<std::string> linkFlags; // extra flags of the model.so link
  std::vector<uint8_t> weights;       // constants, 64-byte aligned, in constant order
  std::string cacheSalt; // part of every object's cache key (what -march=native stood for)
};

/// How the model was built, recorded in its descriptor (kiln inspect; libkiln_rt's CPU check).
struct BuildStamp {
  std::string cpuIsa;      // "x86-64-v3", "native (znver3)"
  std::string cpuFeatures; // "avx,avx2,fma": ISA extensions the host code needs
  std::string kilnVersion;
};

struct ModelSymbols {
  std::vector<sym::Expr> symbols; // index = position in the symbols array
  int indexOf(sym::Expr s) const;
};

/// Symbols of the graph's input shapes, in order of first appearance, then data symbols,
/// then the symbols computed by the program's symbol kernels.
ModelSymbols collectModelSymbols(const ir::Graph &g, const loop::Program &p);

/// Generates every source of model.so. `kernelsPerFile` splits kernels across units.
GeneratedModel generateModel(const ir::Graph &g, loop::Program &p, const DeviceOps &ops,
                             size_t kernelsPerFile, bool embedWeights,
                             const BuildStamp &stamp = {});

} // namespace kiln::codegen
