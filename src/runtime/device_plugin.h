/* The boundary between libkiln_rt (which knows no CUDA) and its CUDA plugin,
 * libkiln_rt_cuda.so. libkiln_rt dlopens the plugin on the first CUDA container and calls
 * KILN_DEVICE_PLUGIN_ENTRY to get this table; everything CUDA happens behind it.
 *
 * Handles are opaque: a device (one GPU's primary context, retained for the process), a
 * module (one container's kernels) and a runner (stream, done event, device arena and the
 * cuBLASLt/cuDNN state of one libkiln_rt runner). Functions that can fail return a
 * kiln_status and write a message to err. Every entry makes the device's primary context
 * current for its duration and restores the caller's; run_begin..run_end keep it current
 * across the model's run, whose launches go through driver().
 *
 * Internal to kiln (libkiln_rt and the plugin ship together): append-only only so a stale
 * plugin is refused by struct_size instead of crashing. */
#ifndef KILN_DEVICE_PLUGIN_H
#define KILN_DEVICE_PLUGIN_H

#include <kiln/model_desc.h>
#include <kiln/shim.h>

#include <stddef.h>
#include <stdint.h>

/* Level-4 params, by tag: the level-3 runtime stand-in of tests/abi builds this header
 * against the released level-3 shim.h, which lacks the type. */
struct kiln_cuda_matmul_params_v1;

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_DEVICE_PLUGIN_ENTRY "kiln_device_plugin_cuda_v1"
#define KILN_DEVICE_PLUGIN_FILE "libkiln_rt_cuda.so"

/* run_begin flags */
#define KILN_PLUGIN_OWN_STREAM 1u /* run on the runner's own stream (synchronous kiln_run) */
#define KILN_PLUGIN_LIBRARIES 2u  /* the model calls level-4 shims: reserve their workspace */

typedef struct kiln_device_plugin_v1 {
  size_t struct_size;

  /* ---- devices and memory ---- */
  /* Opens GPU `ordinal` (cuInit, cuDevicePrimaryCtxRetain once per process). KILN_ERR_DEVICE
   * when there is no driver, cuInit fails or the ordinal does not exist. */
  int (*open_device)(int32_t ordinal, void **device, char *err, size_t err_size);
  /* Loads a fatbin and resolves names[i] to functions[i] (owned by the module). */
  int (*load_module)(void *device, const void *image, size_t image_size, int32_t num_names,
                     const char *const *names, void **module, void *const **functions, char *err,
                     size_t err_size);
  void (*unload_module)(void *device, void *module);
  int (*mem_alloc)(void *device, size_t bytes, void **ptr, char *err, size_t err_size);
  void (*mem_free)(void *device, void *ptr);
  /* Copies bytes and returns once they have arrived. Ordered on the legacy default stream,
   * so it follows work already enqueued on runner streams and on blocking user streams. */
  int (*copy_sync)(void *device, void *dst, int32_t dst_on_device, const void *src,
                   int32_t src_on_device, size_t bytes, char *err, size_t err_size);

  /* ---- runners ---- */
  int (*runner_create)(void *device, void **runner, char *err, size_t err_size);
  /* Waits for the runner's work, then frees its stream, event, arena and libraries. */
  void (*runner_destroy)(void *runner);
  /* Starts a run on `stream` (the runner's own stream with KILN_PLUGIN_OWN_STREAM): makes
   * the context current, makes the stream wait for the runner's previous run when the stream
   * changed, and reserves scratch_bytes of device scratch, plus the library workspace with
   * KILN_PLUGIN_LIBRARIES (the arena grows only after the runner's previous run completed).
   * *stream_out receives the CUstream every launch of the run goes to. */
  int (*run_begin)(void *runner, void *stream, uint32_t flags, size_t scratch_bytes,
                   void **stream_out, char *err, size_t err_size);
  /* kiln_run_ctx.alloc: device scratch from the reserved arena; NULL when it is exhausted. */
  void *(*run_alloc)(void *runner, size_t bytes);
  /* Records the done event after the run's work and restores the caller's context. Always
   * called after a successful run_begin, also when the run failed. */
  int (*run_end)(void *runner, char *err, size_t err_size);
  /* 1 when everything enqueued by the runner has completed, 0 when not yet, or a negative
   * value when the query failed (treated as not completed). Never blocks. */
  int (*runner_query)(void *runner);
  /* Blocks until everything enqueued by the runner has completed. */
  int (*runner_wait)(void *runner, char *err, size_t err_size);
  /* The driver table the generated wrapper launches through. */
  const kiln_cuda_driver_v1 *(*driver)(void);

  /* ---- level-4 shims, on the current run of runner ---- */
  int (*matmul)(void *runner, int64_t site, const void *a, const void *b, const void *addend,
                void *c, const struct kiln_cuda_matmul_params_v1 *params, char *err,
                size_t err_size);
  int (*conv)(void *runner, int64_t site, const void *x, const int64_t *x_dims, const void *w,
              const int64_t *w_dims, const void *bias, const void *residual, void *y,
              const int64_t *y_dims, const kiln_conv_params_v1 *params, int32_t elem_type,
              uint32_t flags, char *err, size_t err_size);

  /* ---- level-7 shims (appended) ---- */
  int (*matmul_v2)(void *runner, int64_t site, const void *a, const void *b, const void *addend,
                   const void *residual, void *c, const struct kiln_cuda_matmul_params_v1 *params,
                   char *err, size_t err_size);
} kiln_device_plugin_v1;

/* The one symbol the plugin exports (named by KILN_DEVICE_PLUGIN_ENTRY). */
typedef const kiln_device_plugin_v1 *(*kiln_device_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* KILN_DEVICE_PLUGIN_H */
