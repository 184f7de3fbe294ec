// kiln_run_v2 and kiln_run_alloc_v2: runs on the caller's stream (ABI 4). CPU containers run
// synchronously and ignore the stream.
#include "error.h"
#include "run_internal.h"

#include <kiln/runtime.h>

using namespace kiln::rt;

namespace {

int checkRunOptions(const char *fn, const kiln_run_options *o, RunSpec &spec) {
  spec = RunSpec{};
  spec.ownStream = false; // NULL stream = the legacy default stream
  spec.sync = false;
  if (!o) return KILN_OK;
  if (o->struct_size < sizeof(kiln_run_options))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "%s: kiln_run_options.struct_size is %zu, expected at least %zu; call "
                "kiln_run_options_init first",
                fn, o->struct_size, sizeof(kiln_run_options));
  for (uint32_t r : o->reserved)
    if (r != 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "%s: kiln_run_options.reserved must be zero", fn);
  if (o->flags & ~KILN_RUN_SYNC)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: kiln_run_options.flags has unknown bits 0x%x", fn,
                o->flags & ~KILN_RUN_SYNC);
  spec.stream = o->stream;
  spec.sync = (o->flags & KILN_RUN_SYNC) != 0;
  return KILN_OK;
}

} // namespace

extern "C" {

KILN_RT_API int kiln_rt_run_v2(kiln_container *c, const kiln_run_options *options,
                               const DLTensor *inputs, int32_t num_inputs, DLTensor *outputs,
                               int32_t num_outputs) {
  clearError();
  RunSpec spec;
  if (int st = checkRunOptions("kiln_run_v2", options, spec)) return st;
  return runTensors("kiln_run_v2", c, spec, inputs, num_inputs, outputs, num_outputs);
}

KILN_RT_API int kiln_rt_run_alloc_v2(kiln_container *c, const kiln_run_options *options,
                                     const DLTensor *inputs, int32_t num_inputs,
                                     DLManagedTensor **outputs, int32_t num_outputs) {
  clearError();
  RunSpec spec;
  if (int st = checkRunOptions("kiln_run_alloc_v2", options, spec)) return st;
  return runAllocTensors("kiln_run_alloc_v2", c, spec, inputs, num_inputs, outputs, num_outputs);
}

} // extern "C"
