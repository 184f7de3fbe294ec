// The fused attention kernels behind kiln_shim_sdpa_v1/_v2, one set per x86 ISA level.
//
// libkiln_rt is compiled once for the baseline ISA; each set lives in its own source file
// compiled with that ISA's flags (sdpa_avx512.cpp, sdpa_avx2.cpp, sdpa_generic.cpp), shares
// the code of sdpa_tile.h, and is picked at run time from CPUID (shim_sdpa.cpp). A set works
// on one (batch, head) at a time: packHead() lays K (and V when its rows need padding) out
// for the micro-kernels, then rows() computes any range of query blocks of that head.
#pragma once

#include <cstdint>

namespace kiln::rt::sdpa {

/// One (batch, head) of attention: Q [Sq, D], K [Skv, D], V [Skv, Dv], out [Sq, Dv], each
/// row contiguous and rows ldq, ldk, ldv, ldo floats apart (D or Dv when packed; the row
/// stride of a fused [S, 3 H D] projection when read in place); the mask (nullptr: none) is
/// added to the scaled scores at mask[i * maskRowStride + j * maskColStride].
struct Head {
  const float *q, *k, *v, *mask;
  int64_t maskRowStride, maskColStride;
  float *out;
  int64_t Sq, Skv, D, Dv;
  float scale;
  int64_t ldq, ldk, ldv, ldo;
};

/// The kernels of one ISA level. Scratch sizes are in floats, each block 64-byte aligned.
struct Kernels {
  const char *name;
  int rowsPerBlock; // query rows one micro-kernel tile computes
  /// Floats of the packed K/V of one head (the part packHead() writes).
  int64_t (*packedFloats)(int64_t Skv, int64_t D, int64_t Dv);
  /// Floats of per-thread working memory for rows() (Q tile, score tile, output tile).
  int64_t (*workFloats)(int64_t D, int64_t Dv);
  void (*packHead)(const Head &h, float *packed);
  /// Query blocks [firstBlock, endBlock) of `h` (block b = rows b*rowsPerBlock onwards).
  void (*rows)(const Head &h, const float *packed, float *work, int64_t firstBlock,
               int64_t endBlock);
};

const Kernels &avx512Kernels(); // needs avx512f (+ the x86-64-v3 set: avx2, fma)
const Kernels &avx2Kernels();   // needs avx2 and fma
const Kernels &genericKernels();

enum class Isa { Auto, Avx512, Avx2, Generic };
/// Forces one kernel set for the shim (tests compare them); Auto = the best this CPU runs.
/// Returns false, changing nothing, when this CPU cannot run the asked-for set.
bool forceIsa(Isa isa);

} // namespace kiln::rt::sdpa
