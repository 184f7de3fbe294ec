// Runner helpers, plus standalone runners for calling shims outside a container.
#include "runner.h"

#include "error.h"

#include <kiln/runtime.h>

#include <new>

namespace kiln::rt {

void RunScratch::init(const kiln_model_desc_v1 &desc) {
  symbols.assign(desc.num_symbols > 0 ? desc.num_symbols : 1, 0);
  inDims.assign(desc.num_inputs, nullptr);
  inNdims.assign(desc.num_inputs, 0);
  size_t total = 0;
  for (int32_t i = 0; i < desc.num_outputs; ++i)
    total += desc.outputs[i].ndim;
  outDimStorage.assign(total ? total : 1, 0);
  outDims.assign(desc.num_outputs, nullptr);
  size_t at = 0;
  for (int32_t i = 0; i < desc.num_outputs; ++i) {
    outDims[i] = outDimStorage.data() + at;
    at += desc.outputs[i].ndim;
  }
  inData.assign(desc.num_inputs, nullptr);
  outData.assign(desc.num_outputs, nullptr);
}

void *runnerAlloc(void *runner, size_t nbytes) {
  if (!runner) return nullptr;
  return static_cast<Runner *>(runner)->arena.alloc(nbytes);
}

void *cudaRunnerAlloc(void *runner, size_t nbytes) {
  if (!runner) return nullptr;
  auto *r = static_cast<Runner *>(runner);
  return r->plugin->run_alloc(r->cuda, nbytes);
}

} // namespace kiln::rt

using kiln::rt::fail;
using kiln::rt::Runner;

extern "C" {

KILN_RT_API int kiln_rt_runner_create(kiln_shim_ctx **out) {
  if (!out) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_rt_runner_create: out is NULL");
  *out = nullptr;
  Runner *r = new (std::nothrow) Runner();
  if (!r) return fail(KILN_ERR_OUT_OF_MEMORY, "kiln_rt_runner_create: out of memory");
  *out = r;
  return KILN_OK;
}

KILN_RT_API void kiln_rt_runner_destroy(kiln_shim_ctx *runner) {
  delete static_cast<Runner *>(runner);
}

KILN_RT_API int kiln_rt_runner_add_constant_range(kiln_shim_ctx *runner, const void *data,
                                                  size_t nbytes) {
  if (!runner || (!data && nbytes))
    return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_rt_runner_add_constant_range: NULL argument");
  static_cast<Runner *>(runner)->constantRanges.emplace_back(static_cast<const char *>(data),
                                                             nbytes);
  return KILN_OK;
}

KILN_RT_API void *kiln_rt_runner_alloc(kiln_shim_ctx *runner, size_t nbytes) {
  return kiln::rt::runnerAlloc(runner, nbytes);
}

KILN_RT_API void kiln_rt_runner_reset(kiln_shim_ctx *runner) {
  if (runner) static_cast<Runner *>(runner)->arena.reset();
}

} // extern "C"
