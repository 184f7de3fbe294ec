/* kiln model descriptor: what a generated model.so hands to libkiln_rt.
 *
 * model.so defines one `kiln_model_desc_v1` (returned by kiln_model_descriptor()) and the
 * model.h entry points as thin forwarders into libkiln_rt. Fields are append-only; the
 * runtime reads struct_size before any field added after version 1.
 */
#ifndef KILN_MODEL_DESC_H
#define KILN_MODEL_DESC_H

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_symbol_desc_v1 {
  const char *name;
  int64_t min, max; /* inclusive range the model was compiled for */
} kiln_symbol_desc_v1;

typedef struct kiln_io_desc_v1 {
  const char *name;
  DLDataType dtype;
  int32_t ndim;
  const int64_t *dims;       /* -1 where symbolic */
  const int32_t *dim_symbol; /* index into symbols where dims[d] == -1 and the dim is a bare
                                symbol; -1 otherwise (derived dims are checked by bind_shapes) */
} kiln_io_desc_v1;

typedef struct kiln_constant_desc_v1 {
  const char *name;
  DLDataType dtype;
  int32_t ndim;
  const int64_t *dims;
  uint64_t nbytes;
  uint64_t offset; /* into the weights blob, 64-byte aligned */
} kiln_constant_desc_v1;

/* Per-run context the generated wrapper receives. */
typedef struct kiln_run_ctx {
  void *runner;                                /* opaque runtime runner (shim caches live here) */
  void *(*alloc)(void *runner, size_t nbytes); /* 64-byte aligned scratch, freed after run */
  int32_t num_threads;                         /* OpenMP threads for this run */
  char *error;                                 /* buffer for a message when run returns non-zero */
  size_t error_size;
} kiln_run_ctx;

/* ABI 4: what a CUDA model's wrapper calls to reach the GPU. The runtime's CUDA plugin fills
 * it from the driver API (libcuda.so.1 through dlopen + cuGetProcAddress; model.so links no
 * CUDA library); tests may fill it with a mock. Every function returns 0 (CUDA_SUCCESS) or a
 * CUresult. Device pointers are CUdeviceptr values carried in void *. */
typedef struct kiln_cuda_driver_v1 {
  size_t struct_size;
  /* cuLaunchKernel on `stream` (asynchronous). */
  int (*launch)(void *function, uint32_t grid_x, uint32_t grid_y, uint32_t grid_z, uint32_t block_x,
                uint32_t block_y, uint32_t block_z, uint32_t shared_bytes, void *stream,
                void **args);
  /* Device-to-device copy, asynchronous on stream. */
  int (*copy)(void *dst, const void *src, size_t bytes, void *stream);
  /* Device-to-host copy that returns once the bytes are on the host (one synchronisation:
   * control flow reading a condition or trip count, or the wrapper reading a shape value
   * the model computed, such as a TopK k). */
  int (*read_to_host)(void *dst, const void *src, size_t bytes, void *stream);
  /* Byte fill, asynchronous on stream. */
  int (*fill)(void *dst, uint8_t value, size_t bytes, void *stream);
  /* Text of a status returned above. */
  const char *(*error_string)(int status);
} kiln_cuda_driver_v1;

/* The run context of a CUDA model (device "cuda"): the wrapper casts kiln_run_ctx * to it.
 * base.alloc returns device memory from the runner's arena (reserved before the run from
 * the descriptor's scratch_bytes, so steady-state runs allocate nothing). */
typedef struct kiln_run_ctx_cuda {
  kiln_run_ctx base;
  size_t struct_size;
  void *stream;           /* CUstream every launch of this run is enqueued on */
  void *const *functions; /* CUfunction of cuda_kernel_names[i], loaded once per container */
  const kiln_cuda_driver_v1 *drv;
} kiln_run_ctx_cuda;

/* Per-kernel profiling (added after ABI 4; new types only, no released layout changes).
 * The wrapper of a model built by a kiln with profiling support defines one static
 * kiln_profile_site_v1 per generated-kernel launch and shim call. Once per run it asks the
 * runtime for the run's profiler (kiln_rt_run_profiler, a weak reference: NULL on an older
 * runtime); when that returns non-NULL it calls begin/end around every site. With profiling
 * off a run pays one call per run and one pointer test per site. */
typedef enum kiln_profile_kind {
  KILN_PROFILE_KERNEL = 0, /* a generated kernel */
  KILN_PROFILE_EXTERN = 1  /* a shim call (oneDNN matmul/conv, attention, ...) */
} kiln_profile_kind;

typedef struct kiln_profile_site_v1 {
  const char *name;   /* "kiln_kernel_12" or the shim function, "kiln_shim_matmul_v1" */
  const char *origin; /* the ONNX node(s) it computes, comma-separated */
  int32_t kind;       /* kiln_profile_kind */
  int32_t id;         /* unique per site within the model */
} kiln_profile_site_v1;

typedef struct kiln_profiler_v1 {
  size_t struct_size;
  void *user;
  void (*begin)(void *user, const kiln_profile_site_v1 *site);
  void (*end)(void *user, const kiln_profile_site_v1 *site);
} kiln_profiler_v1;

typedef struct kiln_model_desc_v1 {
  size_t struct_size;
  uint32_t abi_version;  /* KILN_ABI_VERSION the model was built against */
  uint32_t shim_version; /* highest shim version the generated code calls */
  const char *device;    /* "cpu" or "cuda" */
  int32_t num_symbols, num_inputs, num_outputs, num_constants;
  const kiln_symbol_desc_v1 *symbols;
  const kiln_io_desc_v1 *inputs;
  const kiln_io_desc_v1 *outputs;
  const kiln_constant_desc_v1 *constants;
  const uint8_t *weights; /* embedded blob, NULL when built with external weights */
  uint64_t weights_size;
  /* Checks input dims against the model's guards and solves the symbols. Returns 0, or
   * a kiln_status with a message (naming input and dim) written to err. */
  int (*bind_shapes)(const int64_t *const *input_dims, const int32_t *input_ndims, int64_t *symbols,
                     char *err, size_t err_size);
  /* Output dims for solved symbols: out_dims[i] holds outputs[i].ndim entries. */
  void (*output_dims)(const int64_t *symbols, int64_t *const *out_dims);
  /* Runs the graph. inputs/outputs are contiguous data pointers; constants[i] points at
   * constant i in the active buffer. Returns 0 or a kiln_status with ctx->error filled. */
  int (*run)(kiln_run_ctx *ctx, void *const *inputs, void *const *outputs, const int64_t *symbols,
             void *const *constants);
  /* Appended in ABI 2 (read only when struct_size covers it; NULL when unused): as
   * bind_shapes, with the inputs' data, for models whose dims depend on values read from
   * small integer inputs at run time (e.g. a Reshape target shape given as an input). */
  int (*bind_shapes_v2)(const int64_t *const *input_dims, const int32_t *input_ndims,
                        const void *const *input_data, int64_t *symbols, char *err,
                        size_t err_size);
  /* Appended in ABI 3 (NULL when unused): as run, for models with output or intermediate
   * dims that are known only during the run (NonZero, Unique, NonMaxSuppression, ...).
   * Before the call, symbols holds upper bounds for those dims (bind_shapes sets them, and
   * outputs are sized for them); the run overwrites them with the actual values, writes
   * every tensor compactly for the actual dims, and the runtime recomputes the output dims.
   * Such models set `run` to a function that fails with KILN_ERR_VERSION_MISMATCH. */
  int (*run_v2)(kiln_run_ctx *ctx, void *const *inputs, void *const *outputs, int64_t *symbols,
                void *const *constants);
  /* Appended in ABI 4 (CUDA models; zero/NULL for CPU models). The kernels' fatbin (SASS for
   * the compiled archs + PTX), loaded once per container with cuModuleLoadData, and the
   * names of the kernels the wrapper launches by index (kiln_run_ctx_cuda.functions). */
  const uint8_t *cuda_fatbin;
  uint64_t cuda_fatbin_size;
  int32_t num_cuda_kernels;
  const char *const *cuda_kernel_names;
  /* Device scratch one run needs at these symbols (the runtime reserves it before the run,
   * so base.alloc never allocates in steady state); NULL for CPU models. */
  uint64_t (*scratch_bytes)(const int64_t *symbols);
  /* Per input: 1 when bind_shapes_v2 reads its data (a run-time Reshape target...). For a
   * CUDA model the runtime copies those inputs to the host before binding (documented
   * synchronisation); NULL when none. */
  const int32_t *input_data_on_host;
  const char *cuda_arch; /* e.g. "sm_80,sm_90": what the fatbin holds, for messages */
  /* Appended after ABI 4 (read only when struct_size covers them; older models lack them).
   * The CPU the host code (kernels, wrapper) was built for: cpu_isa names it ("x86-64-v3",
   * "native (znver3)"); cpu_features lists the ISA extensions it needs, comma-separated
   * ("avx,avx2,fma,..."). libkiln_rt refuses a container on a CPU lacking one
   * (KILN_ERR_DEVICE) instead of letting the run die with SIGILL. */
  const char *cpu_isa;
  const char *cpu_features;
  int32_t num_kernels;      /* generated kernels (CPU or GPU), for `kiln inspect` */
  int32_t num_extern_calls; /* shim calls (oneDNN, cuBLASLt, ...) */
  const char *kiln_version; /* the kiln that compiled the model, e.g. "0.1.0" */
} kiln_model_desc_v1;

#ifdef __cplusplus
}
#endif
#endif /* KILN_MODEL_DESC_H */
