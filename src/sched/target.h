// What the compiler targets, as data: the device and the per-device choices the passes,
// lowering and schedulers read (DESIGN: sched/ decides per device, printers only print).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::sched {

struct TuningTable;

enum class DeviceKind { Cpu, Cuda };

struct Target {
  // Largest head dim the generated CUDA attention kernel takes (shared-memory tiles).
  static constexpr int kMaxCudaHeadDim = 128;
  DeviceKind device = DeviceKind::Cpu;
  // Layout and fusions that only pay off with oneDNN on x86.
  bool convChannelsLast = true;    // activations stay N[D]HWC between convs
  bool fuseExternEpilogues = true; // conv/matmul + bias/residual/relu(/clip) as epilogues
  bool fuseClipEpilogue = true;    // oneDNN has a clip post-op; cuDNN/cuBLASLt do not
  // MatMul/Gemm epilogues of transformer layers (level-7 matmul shims): GELU in its exact
  // (erf) and tanh forms, and a residual Add of the output's shape. cuBLASLt's only GELU is
  // the tanh form, so the CUDA target leaves the erf form to a generated kernel.
  bool fuseGeluErfEpilogue = true;
  bool fuseGeluTanhEpilogue = true;
  bool fuseMatMulResidual = true;
  bool fuseAttention = true; // MatMul-Softmax-MatMul into one attention kernel
  // MatMuls sharing their input with constant weights (Q/K/V projections) as one GEMM
  // (kiln_shim_matmul_multi_v1; KILN_FUSE_SIBLING_MATMUL=0 turns it off). CPU only: CUDA
  // keeps one cuBLASLt call per projection (not measured on a GPU).
  bool fuseSiblingMatMul = true;
  // MobileNet inverted-residual blocks as one band-by-band conv chain
  // (kiln_shim_conv_chain_v1; KILN_FUSE_CONV_CHAIN=0 turns it off). Needs channels-last convs.
  bool fuseConvChain = true;
  // Attention reads Q/K/V where they lie (strided views of the projections' outputs) through
  // kiln_shim_sdpa_v3 instead of copying each into [B, H, S, D] first (KILN_STRIDED_ATTENTION=0
  // at compile time keeps the copies). CPU only: the CUDA kernel indexes packed heads.
  bool stridedAttention = true;
  int fuseAttentionMaxHeadDim = 0; // larger (or dynamic) head dims stay unfused; 0: any
  bool scatterShim = true;         // Scatter* through the host shim; else generated kernels
  // Lowering choices measured on the CPU only (CUDA keeps its earlier, GPU-checked lowering):
  // LayerNorm's output written once (lazy, a post-norm residual stream re-inlines every
  // earlier layer's normalisation), and x^3 as x*x*x (a pow call per element stops the CPU
  // loop from vectorizing).
  bool realizeLayerNormOutput = true;
  bool cubeAsProduct = true;
  // Group fusion reads a reader's extent-1 loop variables as 0 (keepdims reductions such as
  // LayerNorm's join one group: one loop nest and one OpenMP region instead of five kernels).
  // On for the CPU since session 51: generated-kernel time 25-45% lower in BERT-base, GPT-2
  // and ViT-B/16 at 2 threads and the small encoder 4-9% faster on Zen 5, 2-thread generated
  // time 20-25% lower and 1 thread level on Zen 2 (docs/perf.md, sessions 48 and 51).
  // KILN_GROUP_UNIT_VARS=0 at compile time turns it off. Off for CUDA (no GPU run yet).
  bool groupUnitVars = true;
  // CPU: kernels whose statically known work is below this run without an OpenMP region,
  // and others open one only when their run-time work reaches it.
  int64_t cpuParallelMinWork = 16384;
  // CUDA: architectures of the fatbin (SASS each, plus PTX of the newest), threads per block.
  std::vector<std::string> cudaArchs;
  int cudaBlock = 256;
  // Reductions with fewer outputs than this (0: never) and a long static extent are split
  // into chunk partials + an in-order fold, for about splitTargetBlocks blocks in flight and
  // chunks of at least splitMinChunk elements.
  int64_t splitBelowOutputs = 0;
  int64_t splitTargetBlocks = 512;
  int64_t splitMinChunk = 2048;
  bool allowTf32 = false;
  // CUDA launch configurations measured by --autotune (sched/tuning.h): the file's table,
  // or, while autotuning, the index of the candidate every kernel takes (-1: none).
  std::shared_ptr<const TuningTable> tuning;
  int tuneVariant = -1;
  // Host code of the model (wrapper, shape kernels): the -march to build it for, and the g++
  // option letting its kernels use gathers (aot/cpu_isa.h; empty: none).
  std::string hostArch = "native";
  std::string hostGatherFlag;

  static Target cpu() { return Target{}; }
  static Target cuda(std::vector<std::string> archs) {
    Target t;
    t.device = DeviceKind::Cuda;
    t.convChannelsLast = false;
    t.fuseClipEpilogue = false;    // bias, residual and ReLU fuse into cuDNN/cuBLASLt
    t.fuseGeluErfEpilogue = false; // cuBLASLt's GELU epilogue is the tanh approximation
    t.fuseAttentionMaxHeadDim = kMaxCudaHeadDim;
    t.fuseSiblingMatMul = false;
    t.fuseConvChain = false;
    t.stridedAttention = false;
    t.scatterShim = false;
    t.realizeLayerNormOutput = false;
    t.cubeAsProduct = false;
    t.groupUnitVars = false;
    t.splitBelowOutputs = 128;
    t.cudaArchs = std::move(archs);
    t.hostArch = "x86-64-v3"; // the GPU host may be another CPU than the build machine
    return t;
  }
  const char *deviceName() const { return device == DeviceKind::Cpu ? "cpu" : "cuda"; }
};

} // namespace kiln::sched
