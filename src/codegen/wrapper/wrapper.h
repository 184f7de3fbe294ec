// The device-agnostic wrapper generator: prints the host code that checks shapes,
// allocates scratch by the memory plan, launches kernels in order and calls externs,
// plus the model descriptor libkiln_rt reads. Kernels go to separate sources.
#pragma once

#include "codegen/wrapper/device_ops.h"
#include "ir/graph.h"
#include "loop/program.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace kiln::codegen {

/// The constants as laid out in the weights blob (64-byte aligned, in constant order). The
/// bytes stay in the tensors they came from and are streamed to the output, never gathered
/// into one buffer: a model's weights may not fit in memory twice.
struct WeightsLayout {
  struct Segment {
    size_t offset;
    std::shared_ptr<const ir::TensorData> data;
  };
  std::vector<Segment> segments;
  size_t size = 0;
  /// A content hash of the blob (the object cache's key).
  uint64_t hash(uint64_t seed) const;
  /// Writes the blob, zero padding included; false on a write error (errno says why).
  bool write(std::FILE *out) const;
};

struct GeneratedModel {
  std::vector<SourceFile> sources;
  std::vector<std::string> linkFlags; // extra flags of the model.so link
  WeightsLayout weights;              // constants, 64-byte aligned, in constant order (streamed)
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
/// The weights are the same either way: embedded (appended to model.so, weights_section.h) or
/// external (a file beside it) is the build's choice.
GeneratedModel generateModel(const ir::Graph &g, loop::Program &p, const DeviceOps &ops,
                             size_t kernelsPerFile, const BuildStamp &stamp = {});

} // namespace kiln::codegen
