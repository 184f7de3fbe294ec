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

KILN_API const kiln_model_desc_v1* kiln_model_descriptor(void) { return &kiln_model_desc; }

KILN_API void kiln_container_options_init(kiln_container_options* options) {
  kiln_rt_container_options_init(options);
}

KILN_API const char* kiln_last_error(void) { return kiln_rt_last_error(); }

KILN_API uint32_t kiln_abi_version(void) { return kiln_rt_abi_version(); }

KILN_API int kiln_container_create(const kiln_container_options* options, kiln_container** out) {
  return kiln_rt_container_create_v1(&kiln_model_desc, options, out);
}

KILN_API int kiln_container_destroy(kiln_container* container) {
  return kiln_rt_container_destroy(container);
}

KILN_API int kiln_num_inputs(const kiln_container* c, int32_t* out) {
  return kiln_rt_num_inputs(c, out);
}

KILN_API int kiln_num_outputs(const kiln_container* c, int32_t* out) {
  return kiln_rt_num_outputs(c, out);
}

KILN_API int kiln_input_info(const kiln_container* c, int32_t index, kiln_tensor_info* out) {
  return kiln_rt_input_info(c, index, out);
}

KILN_API int kiln_output_info(const kiln_container* c, int32_t index, kiln_tensor_info* out) {
  return kiln_rt_output_info(c, index, out);
}

KILN_API int kiln_run(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                      DLTensor* outputs, int32_t num_outputs) {
  return kiln_rt_run(c, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_output_dims(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                              int64_t* const* out_dims) {
  return kiln_rt_output_dims(c, inputs, num_inputs, out_dims);
}

KILN_API int kiln_run_alloc(kiln_container* c, const DLTensor* inputs, int32_t num_inputs,
                            DLManagedTensor** outputs, int32_t num_outputs) {
  return kiln_rt_run_alloc(c, inputs, num_inputs, outputs, num_outputs);
}
