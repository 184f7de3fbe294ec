#include "cli/op_notes.h"

#include <map>

namespace kiln::cli {

// Ops added with opsets 22-26 compile for CUDA like every generated kernel, but no GPU run
// has checked them yet.
static const char *const kNotRunOnGpu = "generated kernels (not yet run on a GPU)";

OpNote opNote(const std::string &op) {
  static const std::map<std::string, OpNote> notes = {
      {"Conv",
       {"float32", "oneDNN through the shim; channels-last between convs",
        "cuDNN (NCHW, FMA math unless --allow-tf32)"}},
      {"ConvTranspose", {"float32", "generated kernel"}},
      {"MatMul",
       {"float32 (others: generated kernel)", "oneDNN through the shim",
        "cuBLASLt for float32 (TF32 off unless --allow-tf32)"}},
      {"Gemm",
       {"float32 (others: generated kernel)", "oneDNN through the shim",
        "cuBLASLt for float32 (TF32 off unless --allow-tf32)"}},
      {"ConvInteger", {"int8, uint8", "direct summation"}},
      {"QLinearConv", {"int8, uint8", "direct summation"}},
      {"Cast",
       {"all but float8e8m0; float8/float4 round to nearest even, `saturate` honoured",
        "to/from string through the string shims",
        "refused for strings, float8, float4, int4, int2 (cpu only)"}},
      {"CastLike",
       {"all but float8e8m0; float8/float4 round to nearest even, `saturate` honoured",
        "to/from string through the string shims",
        "refused for strings, float8, float4, int4, int2 (cpu only)"}},
      {"QuantizeLinear",
       {"to int8/uint8/int16/uint16/int4/uint4/int2/uint2/float8/float4e2m1; blocked (21+)",
        "generated kernel", "yes for 8/16-bit integers; float8/float4/int4/int2 refused"}},
      {"DequantizeLinear",
       {"from int8/uint8/int16/uint16/int32/int4/uint4/int2/uint2/float8/float4e2m1; blocked",
        "generated kernel", "yes for 8/16/32-bit integers; float8/float4/int4/int2 refused"}},
      {"StringNormalizer",
       {"string", "ASCII case changes; output size known after the run",
        "refused at compile time"}},
      {"NonZero", {"", "output size known after the run (shim)", "refused at compile time"}},
      {"Compress", {"", "output size known after the run (shim)", "refused at compile time"}},
      {"Unique",
       {"all but float16/bfloat16", "output size known after the run (shim)",
        "refused at compile time"}},
      {"NonMaxSuppression",
       {"float32", "output size known after the run (shim)", "refused at compile time"}},
      {"ScatterElements",
       {"", "shim", "generated kernels (atomic compare-and-swap for reductions)"}},
      {"ScatterND", {"", "shim", "generated kernels (atomic compare-and-swap for reductions)"}},
      {"Scatter", {"", "shim", "generated kernels"}},
      {"Attention",
       {"float",
        "generated kernels: both products are Σ-reductions (not oneDNN); scores and "
        "softmax in float32 (float64 for double), whatever softmax_precision says; "
        "is_causal with nonpad_kv_seqlen and no past masks from key 0 (not bottom-right)",
        kNotRunOnGpu}},
      {"_KilnSDPA",
       {"float32", "kiln_shim_sdpa_v2 (one pass per query row)",
        "one fused generated kernel (online softmax, key tiles in shared memory); head "
        "dims static and <= 128, else left unfused"}},
      {"RotaryEmbedding", {"float", "head size must be static", kNotRunOnGpu}},
      {"RMSNormalization", {"float", "float32 statistics (float64 for double)", kNotRunOnGpu}},
      {"TensorScatter", {"", "generated kernel", kNotRunOnGpu}},
      {"Swish", {"", "generated kernel", kNotRunOnGpu}},
      {"CumProd", {"", "O(n²) per line, like CumSum", kNotRunOnGpu}},
      {"Mish", {"", "generated kernel", kNotRunOnGpu}},
      {"GroupNormalization", {"float", "generated kernel", kNotRunOnGpu}},
      {"CenterCropPad", {"", "generated kernel", kNotRunOnGpu}},
      {"Col2Im", {"", "a reduction over the block elements", kNotRunOnGpu}},
      {"AffineGrid", {"float", "generated kernel", kNotRunOnGpu}},
      {"DFT", {"", "float64 sums, O(N^2); inverse + onesided is numpy's irfft (real output)"}},
      {"BitCast",
       {"same-size pairs but strings (float16/bfloat16/float8 through their bits)",
        "generated kernel", kNotRunOnGpu}},
      {"RNN", {"float", "recurrence unrolled: sequence length must be static"}},
      {"GRU", {"float", "recurrence unrolled: sequence length must be static"}},
      {"LSTM", {"float", "recurrence unrolled: sequence length must be static"}},
      {"Det", {"float", "matrix size static, at most 64"}},
      {"Dropout", {"", "inference only (training_mode with ratio > 0 is random)"}},
      {"RoiAlign", {"float", "sampling_ratio > 0"}},
      {"If",
       {"", "C++ control flow in the wrapper; branches are their own kernels",
        "refused at compile time"}},
      {"Loop",
       {"", "C++ loop in the wrapper; the body is its own kernels", "refused at compile time"}},
      {"Scan",
       {"", "C++ loop in the wrapper; the body is its own kernels", "refused at compile time"}},
      {"Reshape", {"", "target may be read from an input at run time"}},
      {"Slice", {"", "starts/ends/axes/steps may be run-time inputs"}},
      {"Resize", {"float", "scales/sizes/roi may be run-time inputs"}},
      {"SequenceAt", {"", "compile-time list; a run-time position selects among items"}},
      {"SequenceInsert", {"", "compile-time list; a run-time position selects among items"}},
      {"SequenceErase", {"", "compile-time list; a run-time position selects among items"}},
      {"Optional", {"", "presence known at compile time (--optional for inputs)"}},
      {"OptionalGetElement", {"", "presence known at compile time (--optional for inputs)"}},
      {"OptionalHasElement", {"", "presence known at compile time (--optional for inputs)"}},
      {"SequenceMap", {"", "unrolled: the body is inlined once per item"}},
      {"SplitToSequence", {"", "number of pieces must be known at compile time"}},
      {"MaxUnpool", {"", "", "generated scatter kernels"}},
      {"TfIdfVectorizer", {"int32, int64", "integer pools only"}},
  };
  auto it = notes.find(op);
  return it == notes.end() ? OpNote{} : it->second;
}

} // namespace kiln::cli
