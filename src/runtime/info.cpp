// Introspection of inputs and outputs (kiln_num_inputs, kiln_input_info, ...).
#include "container.h"
#include "error.h"

#include <kiln/runtime.h>

using namespace kiln::rt;

namespace {

int fillInfo(const char *fn, const kiln_container *c, int32_t index, kiln_tensor_info *out,
             bool input) {
  if (!c || !out)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, c ? "out" : "container");
  if (out->struct_size < sizeof(kiln_tensor_info))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "%s: kiln_tensor_info.struct_size is %zu, expected at least %zu", fn,
                out->struct_size, sizeof(kiln_tensor_info));
  const kiln_model_desc_v1 &d = *c->desc;
  int32_t count = input ? d.num_inputs : d.num_outputs;
  if (index < 0 || index >= count)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: index %d out of range (model has %d %s)", fn, index,
                count, input ? "inputs" : "outputs");
  const kiln_io_desc_v1 &io = input ? d.inputs[index] : d.outputs[index];
  const TensorInfoArrays &a = input ? c->inputInfo[index] : c->outputInfo[index];
  out->name = io.name;
  out->dtype = io.dtype;
  out->ndim = io.ndim;
  out->dims = io.dims;
  out->dim_names = a.dimNames.data();
  out->dim_min = a.dimMin.data();
  out->dim_max = a.dimMax.data();
  return KILN_OK;
}

} // namespace

extern "C" {

KILN_RT_API int kiln_rt_num_inputs(const kiln_container *c, int32_t *out) {
  if (!c || !out) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_num_inputs: NULL argument");
  *out = c->desc->num_inputs;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_num_outputs(const kiln_container *c, int32_t *out) {
  if (!c || !out) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_num_outputs: NULL argument");
  *out = c->desc->num_outputs;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_input_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  return fillInfo("kiln_input_info", c, index, out, true);
}

KILN_RT_API int kiln_rt_output_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  return fillInfo("kiln_output_info", c, index, out, false);
}

} // extern "C"
