/* kiln model API: the pure C99 interface every kiln-compiled model.so exports.
 *
 * Rules: opaque handles, int status codes (KILN_OK == 0), a thread-local last-error
 * string, options structs that begin with their own size, tensors as DLPack DLTensor.
 * Ownership is stated on every function. No C++ type crosses this boundary.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this API; bumped only by additions (old functions never change).
 *   1: container create/destroy, run, run_alloc, output_dims, input/output introspection.
 *   2: constants (introspection, double-buffered update, swap, free, read back),
 *      kiln_run_minimal, KILN_ERR_INVALID_STATE.
 *   3: models with data-dependent output dims (NonZero, Unique, ...): outputs are sized
 *      for the upper bounds kiln_output_dims reports, and kiln_run writes each such
 *      output's actual dims into its DLTensor.shape (kiln_run_alloc's tensors carry them). */
#define KILN_ABI_VERSION 4

#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API __attribute__((visibility("default")))
#endif

/* Status codes. Every function returns one; the message is in kiln_last_error(). */
typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERR_INVALID_ARGUMENT = 1, /* null handle, bad index, bad options struct */
  KILN_ERR_SHAPE_MISMATCH = 2,   /* a dim differs from the model's guard or range */
  KILN_ERR_DTYPE_MISMATCH = 3,   /* a tensor's dtype differs from the model's */
  KILN_ERR_DEVICE = 4,           /* device unavailable, wrong device for a tensor */
  KILN_ERR_OUT_OF_MEMORY = 5,
  KILN_ERR_VERSION_MISMATCH = 6, /* model needs a newer runtime/shim */
  KILN_ERR_NOT_FOUND = 7,        /* unknown constant / input name */
  KILN_ERR_UNSUPPORTED = 8,      /* valid request this model/build cannot serve */
  KILN_ERR_INTERNAL = 9,         /* a kiln bug: please report the message */
  KILN_ERR_INVALID_STATE = 10    /* valid request at the wrong time (e.g. swap with no
                                    inactive constant buffer) */
} kiln_status;

typedef struct kiln_container kiln_container; /* opaque */

/* Flags for kiln_container_options.flags. */
#define KILN_FLAG_NONE 0u

typedef struct kiln_container_options {
  size_t struct_size;       /* must be sizeof(kiln_container_options) */
  int32_t num_runners;      /* concurrent runs, at most 4096; 0 = one per usable CPU */
  int32_t threads_per_run;  /* OpenMP threads inside one run; 0 = the CPUs the process may use */
  const char *device;       /* "cpu" (default when NULL), "cuda", "cuda:1" */
  const char *weights_path; /* external weights file (from --weights external); NULL = embedded */
  uint32_t flags;
  uint32_t reserved[7]; /* must be zero */
} kiln_container_options;

/* Fills *options with defaults (struct_size set, everything else zero). */
KILN_API void kiln_container_options_init(kiln_container_options *options);

/* The last error message of the calling thread ("" if none). Valid until the next
 * kiln call on this thread; owned by the runtime. */
KILN_API const char *kiln_last_error(void);
KILN_API uint32_t kiln_abi_version(void);

/* Creates a container. options may be NULL (defaults). On success *out owns the container;
 * release it with kiln_container_destroy. */
KILN_API int kiln_container_create(const kiln_container_options *options, kiln_container **out);
KILN_API int kiln_container_destroy(kiln_container *container);

/* Introspection. Names are owned by the model and live as long as the library. */
typedef struct kiln_tensor_info {
  size_t struct_size; /* must be sizeof(kiln_tensor_info) */
  const char *name;
  DLDataType dtype;
  int32_t ndim;
  const int64_t *dims;          /* -1 where the dim is symbolic */
  const char *const *dim_names; /* symbol name per dim, NULL for static dims */
  const int64_t *dim_min;       /* range per dim (min == max for static dims) */
  const int64_t *dim_max;
} kiln_tensor_info;

KILN_API int kiln_num_inputs(const kiln_container *c, int32_t *out);
KILN_API int kiln_num_outputs(const kiln_container *c, int32_t *out);
KILN_API int kiln_input_info(const kiln_container *c, int32_t index, kiln_tensor_info *out);
KILN_API int kiln_output_info(const kiln_container *c, int32_t index, kiln_tensor_info *out);

/* Runs the model. inputs[i] and outputs[i] are borrowed; outputs must be caller-allocated,
 * contiguous, with the dims the model yields for these inputs (see kiln_output_dims).
 * Safe to call from many threads at once. */
KILN_API int kiln_run(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                      DLTensor *outputs, int32_t num_outputs);

/* Output dims for the given input dims: out_dims[i] must hold outputs' ndim entries. */
KILN_API int kiln_output_dims(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                              int64_t *const *out_dims);

/* Runs the model and allocates the outputs: outputs[i] receives a DLManagedTensor that the
 * caller owns and releases by calling its deleter. */
KILN_API int kiln_run_alloc(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                            DLManagedTensor **outputs, int32_t num_outputs);

/* ---- ABI v2 ------------------------------------------------------------------------- */

/* Minimal run for static-shape CPU models: inputs[i] / outputs[i] are raw data pointers to
 * contiguous tensors with exactly the dims and dtypes of kiln_input_info / kiln_output_info
 * (borrowed; not checked beyond NULL). Takes a runner (waits when all are busy), allocates
 * nothing, takes no lock other than the runner pool's. KILN_ERR_UNSUPPORTED when the model
 * has symbolic dims. Safe to call from many threads at once. */
KILN_API int kiln_run_minimal(kiln_container *c, void *const *inputs, void *const *outputs);

/* Constants: the model's weights, by ONNX initializer name. A container holds an active
 * buffer (what runs read) and, once created by an update, an inactive one. */
KILN_API int kiln_num_constants(const kiln_container *c, int32_t *out);
/* Name, dtype and (static) dims of constant index; dim_names are all NULL. */
KILN_API int kiln_constant_info(const kiln_container *c, int32_t index, kiln_tensor_info *out);

/* Which constant buffer an update or read addresses. */
typedef enum kiln_constant_buffer {
  KILN_CONSTANTS_ACTIVE = 0,
  KILN_CONSTANTS_INACTIVE = 1
} kiln_constant_buffer;

/* Flags for kiln_update_constants. */
#define KILN_UPDATE_NONE 0u
#define KILN_UPDATE_REQUIRE_ALL 1u /* every constant of the model must be given, once */

/* Copies values[i] (CPU, contiguous, the constant's dtype and dims) into constant names[i]
 * of the given buffer. All-or-nothing: an unknown name (KILN_ERR_NOT_FOUND), a wrong dtype
 * (KILN_ERR_DTYPE_MISMATCH) or dims (KILN_ERR_SHAPE_MISMATCH), a duplicate name or, with
 * KILN_UPDATE_REQUIRE_ALL, a missing constant (KILN_ERR_INVALID_ARGUMENT) changes nothing.
 *  - KILN_CONSTANTS_INACTIVE: writes the inactive buffer while runs go on (it is created on
 *    first use: a copy of the active buffer, or uninitialised-then-filled with REQUIRE_ALL).
 *    Constants not named keep the inactive buffer's previous values.
 *  - KILN_CONSTANTS_ACTIVE: builds a copy of the active buffer with the new values and
 *    publishes it atomically (a run sees all old or all new values); costs one copy of the
 *    weights, so prefer INACTIVE + kiln_swap_constants for large models.
 * values are borrowed; the data is copied before return. Safe to call while other threads
 * run; updates, swaps and frees are serialised among themselves. */
KILN_API int kiln_update_constants(kiln_container *c, int32_t buffer, const char *const *names,
                                   const DLTensor *values, int32_t count, uint32_t flags);

/* Makes the inactive buffer active and the active one inactive, atomically with respect to
 * runs: each run uses one buffer from start to end. Returns once no run still uses the
 * now-inactive buffer. KILN_ERR_INVALID_STATE when there is no inactive buffer. */
KILN_API int kiln_swap_constants(kiln_container *c);

/* Frees the inactive buffer (after runs still using it finish). No-op when there is none. */
KILN_API int kiln_free_inactive_constants(kiln_container *c);

/* Copies constant `name` of the given buffer into out (CPU, contiguous, caller-allocated,
 * the constant's dtype and dims). KILN_ERR_INVALID_STATE for INACTIVE when there is none. */
KILN_API int kiln_read_constant(kiln_container *c, int32_t buffer, const char *name, DLTensor *out);

/* ---- ABI v4: devices and streams ------------------------------------------------------- */

/* Options of one run (kiln_run_v2 / kiln_run_alloc_v2). */
typedef struct kiln_run_options {
  size_t struct_size;   /* must be sizeof(kiln_run_options) */
  void *stream;         /* CUDA models: the CUstream the run is enqueued on (NULL = the
                           legacy default stream). Ignored by CPU models. */
  uint32_t flags;       /* KILN_RUN_* */
  uint32_t reserved[5]; /* must be zero */
} kiln_run_options;

#define KILN_RUN_NONE 0u
#define KILN_RUN_SYNC 1u /* return only when the outputs are ready (CPU runs always are) */

/* Fills *options with defaults (struct_size set, everything else zero). */
KILN_API void kiln_run_options_init(kiln_run_options *options);

/* As kiln_run, on the stream of options (NULL options = defaults). For a CUDA model the run
 * is asynchronous: it returns once every kernel is enqueued; outputs are valid when work
 * enqueued on the stream after it may read them. Tensors must be on the container's device
 * (KILN_ERR_DEVICE names the first that is not). kiln_run on a CUDA model is kiln_run_v2 with
 * KILN_RUN_SYNC on the runner's own stream. */
KILN_API int kiln_run_v2(kiln_container *c, const kiln_run_options *options, const DLTensor *inputs,
                         int32_t num_inputs, DLTensor *outputs, int32_t num_outputs);

/* As kiln_run_alloc on the stream of options: outputs are allocated on the container's device
 * and their deleters free that memory. */
KILN_API int kiln_run_alloc_v2(kiln_container *c, const kiln_run_options *options,
                               const DLTensor *inputs, int32_t num_inputs,
                               DLManagedTensor **outputs, int32_t num_outputs);

/* Allocates a contiguous tensor on the container's device (kDLCPU or kDLCUDA); the caller
 * owns *out and frees it with its deleter. */
KILN_API int kiln_alloc_tensor(kiln_container *c, DLDataType dtype, int32_t ndim,
                               const int64_t *dims, DLManagedTensor **out);

/* Copies src into dst (same dtype and dims, contiguous), each on the host or on the
 * container's device; returns when the copy is complete. */
KILN_API int kiln_copy_tensor(kiln_container *c, DLTensor *dst, const DLTensor *src);

/* ---- Per-kernel profiling (added after ABI 4) ------------------------------------------ */

/* One generated kernel or shim call of a profiled run. Strings are owned by the model and
 * live as long as the library. Times are CLOCK_MONOTONIC nanoseconds. */
typedef struct kiln_profile_event {
  size_t struct_size;   /* sizeof(kiln_profile_event) of the runtime that filled it */
  const char *name;     /* "kiln_kernel_12", or the shim function ("kiln_shim_matmul_v1") */
  const char *origin;   /* the ONNX node(s) it computes, comma-separated */
  int32_t kind;         /* 0: generated kernel, 1: shim (extern) call */
  int32_t site;         /* unique per call site of the model */
  uint64_t start_ns, end_ns;
} kiln_profile_event;

/* Called on the running thread after every kernel and shim call of every run of the
 * container. With concurrent runs it is called from several threads at once. */
typedef void (*kiln_profile_fn)(void *user, const kiln_profile_event *event);

/* Turns per-kernel profiling on (fn non-NULL) or off (fn NULL) for the runs of c that start
 * afterwards; call it while no run is in flight. CPU models only (KILN_ERR_UNSUPPORTED for a
 * CUDA container: its launches are asynchronous). A model compiled by a kiln without
 * profiling support reports no events. KILN_ERR_VERSION_MISMATCH on a runtime without it. */
KILN_API int kiln_set_profiler(kiln_container *c, kiln_profile_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif /* KILN_MODEL_H */
