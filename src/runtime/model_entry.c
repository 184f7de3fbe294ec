/* model.h entry points of a kiln model.so, compiled into every generated model.so.
 *
 * Each function forwards to its kiln_rt_* twin in libkiln_rt; create passes this
 * library's descriptor. The generated code defines `kiln_model_desc` (from C++ it must be
 * `extern "C"`). The descriptor is bound inside this library (hidden), so two model.so
 * files loaded into one process never see each other's descriptor.
 */
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>

extern const kiln_model_desc_v1 kiln_model_desc __attribute__((visibility("hidden")));

/* ABI-4 functions are weak references: model.so links with -z now, and a strong reference to
 * a symbol an older libkiln_rt lacks would fail inside dlopen. With a weak one the library
 * loads, and the forwarder returns KILN_ERR_VERSION_MISMATCH instead. That status cannot carry
 * a message (the old runtime's kiln_last_error is not ours to set), so kiln_last_error() then
 * shows whatever the thread's previous error was; the status alone means "libkiln_rt is older
 * than ABI 4: upgrade it". */
#pragma weak kiln_rt_run_options_init
#pragma weak kiln_rt_run_v2
#pragma weak kiln_rt_run_alloc_v2
#pragma weak kiln_rt_alloc_tensor
#pragma weak kiln_rt_copy_tensor
#pragma weak kiln_rt_set_profiler

KILN_API const kiln_model_desc_v1 *kiln_model_descriptor(void) {
  return &kiln_model_desc;
}

KILN_API void kiln_container_options_init(kiln_container_options *options) {
  kiln_rt_container_options_init(options);
}

KILN_API const char *kiln_last_error(void) {
  return kiln_rt_last_error();
}

KILN_API uint32_t kiln_abi_version(void) {
  return kiln_rt_abi_version();
}

KILN_API int kiln_container_create(const kiln_container_options *options, kiln_container **out) {
  return kiln_rt_container_create_v1(&kiln_model_desc, options, out);
}

KILN_API int kiln_container_destroy(kiln_container *container) {
  return kiln_rt_container_destroy(container);
}

KILN_API int kiln_num_inputs(const kiln_container *c, int32_t *out) {
  return kiln_rt_num_inputs(c, out);
}

KILN_API int kiln_num_outputs(const kiln_container *c, int32_t *out) {
  return kiln_rt_num_outputs(c, out);
}

KILN_API int kiln_input_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  return kiln_rt_input_info(c, index, out);
}

KILN_API int kiln_output_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  return kiln_rt_output_info(c, index, out);
}

KILN_API int kiln_run(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                      DLTensor *outputs, int32_t num_outputs) {
  return kiln_rt_run(c, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_output_dims(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                              int64_t *const *out_dims) {
  return kiln_rt_output_dims(c, inputs, num_inputs, out_dims);
}

KILN_API int kiln_run_alloc(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                            DLManagedTensor **outputs, int32_t num_outputs) {
  return kiln_rt_run_alloc(c, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_run_minimal(kiln_container *c, void *const *inputs, void *const *outputs) {
  return kiln_rt_run_minimal(c, inputs, outputs);
}

KILN_API int kiln_num_constants(const kiln_container *c, int32_t *out) {
  return kiln_rt_num_constants(c, out);
}

KILN_API int kiln_constant_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  return kiln_rt_constant_info(c, index, out);
}

KILN_API int kiln_update_constants(kiln_container *c, int32_t buffer, const char *const *names,
                                   const DLTensor *values, int32_t count, uint32_t flags) {
  return kiln_rt_update_constants(c, buffer, names, values, count, flags);
}

KILN_API int kiln_swap_constants(kiln_container *c) {
  return kiln_rt_swap_constants(c);
}

KILN_API int kiln_free_inactive_constants(kiln_container *c) {
  return kiln_rt_free_inactive_constants(c);
}

KILN_API int kiln_read_constant(kiln_container *c, int32_t buffer, const char *name,
                                DLTensor *out) {
  return kiln_rt_read_constant(c, buffer, name, out);
}

/* ---- ABI v4 (weak: see the top of this file) ---- */

KILN_API void kiln_run_options_init(kiln_run_options *options) {
  if (kiln_rt_run_options_init) {
    kiln_rt_run_options_init(options);
  } else if (options) { /* same defaults, for a runtime that predates ABI 4 */
    kiln_run_options zero = {0};
    *options = zero;
    options->struct_size = sizeof *options;
  }
}

KILN_API int kiln_run_v2(kiln_container *c, const kiln_run_options *options, const DLTensor *inputs,
                         int32_t num_inputs, DLTensor *outputs, int32_t num_outputs) {
  if (!kiln_rt_run_v2) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_run_v2(c, options, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_run_alloc_v2(kiln_container *c, const kiln_run_options *options,
                               const DLTensor *inputs, int32_t num_inputs,
                               DLManagedTensor **outputs, int32_t num_outputs) {
  if (!kiln_rt_run_alloc_v2) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_run_alloc_v2(c, options, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_alloc_tensor(kiln_container *c, DLDataType dtype, int32_t ndim,
                               const int64_t *dims, DLManagedTensor **out) {
  if (!kiln_rt_alloc_tensor) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_alloc_tensor(c, dtype, ndim, dims, out);
}

KILN_API int kiln_copy_tensor(kiln_container *c, DLTensor *dst, const DLTensor *src) {
  if (!kiln_rt_copy_tensor) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_copy_tensor(c, dst, src);
}

/* ---- per-kernel profiling (weak: added after ABI 4) ---- */

KILN_API int kiln_set_profiler(kiln_container *c, kiln_profile_fn fn, void *user) {
  if (!kiln_rt_set_profiler) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_set_profiler(c, fn, user);
}
