/* kiln runtime: the C99 functions libkiln_rt exports.
 *
 * A generated model.so does not implement the model.h API itself: src/runtime/model_entry.c
 * (compiled into every model.so) forwards each model.h function to its kiln_rt_* twin here,
 * passing the model's descriptor to kiln_rt_container_create_v1. Hosts never call these
 * directly; they call the model.h names exported by model.so.
 *
 * Ownership and status codes are exactly those of the model.h twin of each function.
 */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/shim.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KILN_RT_API __declspec(dllexport)
#else
#define KILN_RT_API __attribute__((visibility("default")))
#endif

/* Creates a container for the model described by desc (borrowed; it must outlive the
 * container, which it does when it lives in model.so). options may be NULL. */
KILN_RT_API int kiln_rt_container_create_v1(const kiln_model_desc_v1 *desc,
                                            const kiln_container_options *options,
                                            kiln_container **out);
KILN_RT_API int kiln_rt_container_destroy(kiln_container *container);

KILN_RT_API void kiln_rt_container_options_init(kiln_container_options *options);
KILN_RT_API const char *kiln_rt_last_error(void);
KILN_RT_API uint32_t kiln_rt_abi_version(void);
KILN_RT_API uint32_t kiln_rt_shim_version(void);

KILN_RT_API int kiln_rt_num_inputs(const kiln_container *c, int32_t *out);
KILN_RT_API int kiln_rt_num_outputs(const kiln_container *c, int32_t *out);
KILN_RT_API int kiln_rt_input_info(const kiln_container *c, int32_t index, kiln_tensor_info *out);
KILN_RT_API int kiln_rt_output_info(const kiln_container *c, int32_t index, kiln_tensor_info *out);

KILN_RT_API int kiln_rt_run(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                            DLTensor *outputs, int32_t num_outputs);
KILN_RT_API int kiln_rt_output_dims(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                                    int64_t *const *out_dims);
KILN_RT_API int kiln_rt_run_alloc(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                                  DLManagedTensor **outputs, int32_t num_outputs);

/* ABI v2 */
KILN_RT_API int kiln_rt_run_minimal(kiln_container *c, void *const *inputs, void *const *outputs);
KILN_RT_API int kiln_rt_num_constants(const kiln_container *c, int32_t *out);
KILN_RT_API int kiln_rt_constant_info(const kiln_container *c, int32_t index,
                                      kiln_tensor_info *out);
KILN_RT_API int kiln_rt_update_constants(kiln_container *c, int32_t buffer,
                                         const char *const *names, const DLTensor *values,
                                         int32_t count, uint32_t flags);
KILN_RT_API int kiln_rt_swap_constants(kiln_container *c);
KILN_RT_API int kiln_rt_free_inactive_constants(kiln_container *c);
KILN_RT_API int kiln_rt_read_constant(kiln_container *c, int32_t buffer, const char *name,
                                      DLTensor *out);

/* ABI v4: devices and streams. Weak in model_entry.c, so a model.so still loads on an older
 * libkiln_rt (its forwarders then return KILN_ERR_VERSION_MISMATCH). */
KILN_RT_API void kiln_rt_run_options_init(kiln_run_options *options);
KILN_RT_API int kiln_rt_run_v2(kiln_container *c, const kiln_run_options *options,
                               const DLTensor *inputs, int32_t num_inputs, DLTensor *outputs,
                               int32_t num_outputs);
KILN_RT_API int kiln_rt_run_alloc_v2(kiln_container *c, const kiln_run_options *options,
                                     const DLTensor *inputs, int32_t num_inputs,
                                     DLManagedTensor **outputs, int32_t num_outputs);
KILN_RT_API int kiln_rt_alloc_tensor(kiln_container *c, DLDataType dtype, int32_t ndim,
                                     const int64_t *dims, DLManagedTensor **out);
KILN_RT_API int kiln_rt_copy_tensor(kiln_container *c, DLTensor *dst, const DLTensor *src);

/* Per-kernel profiling (after ABI 4; weak in model_entry.c and in generated wrappers).
 * kiln_rt_run_profiler: the profiler of the run that owns `runner` (kiln_run_ctx.runner), or
 * NULL when profiling is off; the wrapper calls it once per run. */
KILN_RT_API const kiln_profiler_v1 *kiln_rt_run_profiler(void *runner);
KILN_RT_API int kiln_rt_set_profiler(kiln_container *c, kiln_profile_fn fn, void *user);

/* Standalone runners: a shim ctx for calling kiln_shim_* outside a container (tests, tools,
 * the compiler's own kernel tests). Not thread-safe: one call at a time per runner. */
KILN_RT_API int kiln_rt_runner_create(kiln_shim_ctx **out);
KILN_RT_API void kiln_rt_runner_destroy(kiln_shim_ctx *runner);
/* Declares [data, data + nbytes) constant while the runner lives, so shims may cache
 * reordered copies of weights inside it (as they do for a container's constants). */
KILN_RT_API int kiln_rt_runner_add_constant_range(kiln_shim_ctx *runner, const void *data,
                                                  size_t nbytes);
/* 64-byte aligned scratch from the runner's arena (the kiln_run_ctx.alloc behaviour), valid
 * until kiln_rt_runner_reset; NULL when out of memory. */
KILN_RT_API void *kiln_rt_runner_alloc(kiln_shim_ctx *runner, size_t nbytes);
KILN_RT_API void kiln_rt_runner_reset(kiln_shim_ctx *runner);

/* Records a printf-style message as the calling thread's last error (for shim code). */
KILN_RT_API void kiln_rt_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* KILN_RUNTIME_H */
