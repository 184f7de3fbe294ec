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

/* Version of this API; bumped only by additions (old functions never change). */
#define KILN_ABI_VERSION 1

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
  KILN_ERR_INTERNAL = 9          /* a kiln bug: please report the message */
} kiln_status;

typedef struct kiln_container kiln_container; /* opaque */

/* Flags for kiln_container_options.flags. */
#define KILN_FLAG_NONE 0u

typedef struct kiln_container_options {
  size_t struct_size;      /* must be sizeof(kiln_container_options) */
  int32_t num_runners;     /* concurrent runs; 0 = one per hardware thread */
  int32_t threads_per_run; /* OpenMP threads inside one run; 0 = all hardware threads */
  const char* device;      /* "cpu" (default when NULL), "cuda", "cuda:1" */
  const char* weights_path; /* external weights file (from --weights external); NULL = embedded */
  uint32_t flags;
  uint32_t reserved[7]; /* must be zero */
} kiln_container_options;

/* Fills *options with defaults (struct_size set, everything else zero). */
KILN_API void kiln_container_options_init(kiln_container_options* options);

/* The last error message of the calling thread ("" if none). Valid until the next
 * kiln call on this thread; owned by the runtime. */
KILN_API const char* kiln_last_error(void);
KILN_API uint32_t kiln_abi_version(void);

/* Creates a container. options may be NULL (defaults). On success *out owns the container;
 * release it with kiln_container_destroy. */
KILN_API int kiln_container_create(const kiln_container_options* options, kiln_container** out);
KILN_API int kiln_container_destroy(kiln_container* container);

/* Introspection. Names are owned by the model and live as long as the library. */
typedef struct kiln_tensor_info {
  size_t struct_size;    /* must be sizeof(kiln_tensor_info) */
  const char* name;
  DLDataType dtype;
  int32_t ndim;
  const int64_t* dims;        /* -1 where the dim is symbolic */
  const char* const* dim_names; /* symbol name per dim, NULL for static dims */
  const int64_t* dim_min;     /* range per dim (min == max for static dims) */
  const int64_t* dim_max;
} kiln_tensor_info;

KILN_API int kiln_num_inputs(const kiln_container* c, int32_t* out);
KILN_API int kiln_num_outputs(const kiln_container* c, int32_t* out);
KILN_API int kiln_input_info(const kiln_container* c, int32_t index, kiln_tensor_info* out);
KILN_API int kiln_output_info(const kiln_container* c, int32_t index, kiln_tensor_info* out);

/* Runs the model. inputs[i] and outputs[i] are borrowed; outputs must be caller-allocated,
 * contiguous, with the dims the model yields for these inputs (see kiln_output_dims).
 * Safe to call from many threads at once. */
KILN_API int kiln_run(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                      DLTensor* outputs, int32_t num_outputs);

/* Output dims for the given input dims: out_dims[i] must hold outputs' ndim entries. */
KILN_API int kiln_output_dims(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                              int64_t* const* out_dims);

/* Runs the model and allocates the outputs: outputs[i] receives a DLManagedTensor that the
 * caller owns and releases by calling its deleter. */
KILN_API int kiln_run_alloc(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                            DLManagedTensor** outputs, int32_t num_outputs);

#ifdef __cplusplus
}
#endif
#endif /* KILN_MODEL_H */
