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
} kiln_model_desc_v1;

#ifdef __cplusplus
}
#endif
#endif /* KILN_MODEL_DESC_H */
