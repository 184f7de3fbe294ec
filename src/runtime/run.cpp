// kiln_run, kiln_run_alloc and kiln_output_dims: validate, borrow a runner, call the model.
#include "container.h"
#include "error.h"
#include "run_internal.h"
#include "validate.h"

#include <kiln/runtime.h>

#include <omp.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>

using namespace kiln::rt;

namespace {

int checkCounts(const char *fn, const kiln_container *c, const void *inputs, int32_t numInputs,
                const void *outputs, int32_t numOutputs) {
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: container is NULL", fn);
  const kiln_model_desc_v1 &d = *c->desc;
  if (numInputs != d.num_inputs)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: model has %d inputs, got %d", fn, d.num_inputs,
                numInputs);
  if (numInputs > 0 && !inputs) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: inputs is NULL", fn);
  if (numOutputs != d.num_outputs)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: model has %d outputs, got %d", fn, d.num_outputs,
                numOutputs);
  if (numOutputs > 0 && !outputs) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: outputs is NULL", fn);
  return KILN_OK;
}

// Keeps the active constant set pinned for one run (see kiln_container::pinConstants).
class ConstantsPin {
public:
  explicit ConstantsPin(kiln_container *c) : c_(c), slot_(c->pinConstants()) {}
  ~ConstantsPin() { c_->unpinConstants(slot_); }
  const ConstantSet &set() const { return *c_->slots[slot_]; }

private:
  kiln_container *c_;
  int slot_;
};

// String tensors: DLPack has no string type; kiln passes each element as a `const char *`
// (kDLOpaqueHandle, 64 bits).
bool isString(DLDataType t) {
  return t.code == kDLOpaqueHandle && t.bits == 64;
}

// Calls the generated graph with the given pointers on the active constants. `afterRun`
// runs on success while the run's scratch (where shims put produced strings) is alive.
int execute(kiln_container *c, Runner *r, void *const *in, void *const *out,
            const RunSpec &spec = RunSpec{}, const std::function<int()> &afterRun = nullptr) {
  if (c->device) return executeCuda(c, r, in, out, spec);
  const kiln_model_desc_v1 &d = *c->desc;
  r->error[0] = '\0';
  kiln_run_ctx ctx{r, runnerAlloc, c->threadsPerRun, r->error, Runner::kErrorSize};
  // OpenMP's thread count is per calling thread; oneDNN reads it too.
  omp_set_num_threads(c->threadsPerRun);
  r->startProfiling(c->profileFn, c->profileUser);
  int st;
  {
    ConstantsPin pin(c);
    const ConstantSet &constants = pin.set();
    r->useConstants(constants.base, constants.size, constants.token, constants.derived);
    try {
      st = hasLateDims(d)
               ? d.run_v2(&ctx, in, out, r->scratch.symbols.data(), constants.ptrs.data())
               : d.run(&ctx, in, out, r->scratch.symbols.data(), constants.ptrs.data());
    } catch (const std::exception &e) {
      st = fail(KILN_ERR_INTERNAL, "model run threw: %s", e.what());
    }
  }
  if (st == KILN_OK && afterRun) st = afterRun();
  r->arena.reset();
  return runStatus(st, *r);
}

} // namespace

namespace kiln::rt {

int runStatus(int st, const Runner &r) {
  if (st == KILN_OK) return KILN_OK;
  if (st < 0 || st > KILN_ERR_INVALID_STATE) {
    if (r.error[0])
      return fail(KILN_ERR_INTERNAL, "model run returned status %d (not a kiln_status): %s", st,
                  r.error);
    return fail(KILN_ERR_INTERNAL, "model run returned status %d, which is not a kiln_status", st);
  }
  // The wrapper's own message wins; otherwise keep what a shim recorded.
  if (r.error[0]) return fail(st, "%s", r.error);
  if (!lastError()[0]) return fail(st, "model run failed with status %d and no message", st);
  return st;
}

int runTensors(const char *fn, kiln_container *c, const RunSpec &spec, const DLTensor *inputs,
               int32_t numInputs, DLTensor *outputs, int32_t numOutputs) {
  clearError();
  if (int st = checkCounts(fn, c, inputs, numInputs, outputs, numOutputs)) return st;
  RunnerLease lease(c);
  Runner *r = lease.get();
  const kiln_model_desc_v1 &d = *c->desc;
  if (int st = bindInputs(*c, inputs, r->scratch)) return st;
  computeOutputDims(d, r->scratch);
  if (int st = checkOutputs(*c, outputs, r->scratch)) return st;
  for (int32_t i = 0; i < d.num_outputs; ++i)
    if (isString(d.outputs[i].dtype))
      return fail(KILN_ERR_UNSUPPORTED,
                  "%s: output '%s' is a string tensor, whose text the runtime must own; "
                  "use kiln_run_alloc",
                  fn, d.outputs[i].name);
  if (int st = execute(c, r, r->scratch.inData.data(), r->scratch.outData.data(), spec)) return st;
  if (hasLateDims(d)) {
    // The run bound the data-dependent dims: report the actual dims in the caller's shapes.
    computeOutputDims(d, r->scratch);
    for (int32_t i = 0; i < d.num_outputs; ++i)
      for (int32_t k = 0; k < outputs[i].ndim; ++k)
        if (outputs[i].shape[k] != r->scratch.outDims[i][k])
          outputs[i].shape[k] = r->scratch.outDims[i][k];
  }
  return KILN_OK;
}

int runAllocTensors(const char *fn, kiln_container *c, const RunSpec &spec, const DLTensor *inputs,
                    int32_t num_inputs, DLManagedTensor **outputs, int32_t num_outputs) {
  clearError();
  if (int st = checkCounts(fn, c, inputs, num_inputs, outputs, num_outputs)) return st;
  for (int32_t i = 0; i < num_outputs; ++i)
    outputs[i] = nullptr;
  RunnerLease lease(c);
  Runner *r = lease.get();
  const kiln_model_desc_v1 &d = *c->desc;
  if (int st = bindInputs(*c, inputs, r->scratch)) return st;
  computeOutputDims(d, r->scratch);

  auto freeAll = [&] {
    for (int32_t i = 0; i < num_outputs; ++i) {
      freeManaged(outputs[i]);
      outputs[i] = nullptr;
    }
  };
  for (int32_t i = 0; i < num_outputs; ++i) {
    const kiln_io_desc_v1 &io = d.outputs[i];
    if (c->device && isString(io.dtype)) {
      freeAll();
      return fail(KILN_ERR_UNSUPPORTED,
                  "%s: output '%s' is a string tensor, which CUDA models "
                  "cannot produce",
                  fn, io.name);
    }
    outputs[i] = allocManaged(c, c->device != nullptr, io.dtype, io.ndim, r->scratch.outDims[i]);
    if (!outputs[i]) {
      char why[512];
      std::snprintf(why, sizeof why, "%s", lastError());
      freeAll();
      return fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot allocate output '%s': %s", fn, io.name, why);
    }
    r->scratch.outData[i] = outputs[i]->dl_tensor.data;
  }
  // String outputs point into the run's scratch: copy their text into one block per
  // tensor, owned by the tensor (freed by its deleter), before the scratch is reused.
  auto copyStrings = [&]() -> int {
    if (hasLateDims(d)) computeOutputDims(d, r->scratch);
    for (int32_t i = 0; i < num_outputs; ++i) {
      if (!isString(d.outputs[i].dtype)) continue;
      int64_t n = 1;
      for (int32_t k = 0; k < d.outputs[i].ndim; ++k)
        n *= r->scratch.outDims[i][k];
      auto **ptrs = static_cast<const char **>(outputs[i]->dl_tensor.data);
      size_t total = 0;
      for (int64_t e = 0; e < n; ++e)
        total += std::strlen(ptrs[e] ? ptrs[e] : "") + 1;
      auto *text = static_cast<char *>(std::malloc(total ? total : 1));
      if (!text) return fail(KILN_ERR_OUT_OF_MEMORY, "kiln_run_alloc: cannot copy string output");
      outputs[i]->manager_ctx = text;
      for (int64_t e = 0; e < n; ++e) {
        const char *src = ptrs[e] ? ptrs[e] : "";
        size_t len = std::strlen(src) + 1;
        std::memcpy(text, src, len);
        ptrs[e] = text;
        text += len;
      }
    }
    return KILN_OK;
  };
  if (int st =
          execute(c, r, r->scratch.inData.data(), r->scratch.outData.data(), spec, copyStrings)) {
    freeAll();
    return st;
  }
  if (hasLateDims(d)) {
    computeOutputDims(d, r->scratch);
    for (int32_t i = 0; i < num_outputs; ++i)
      std::memcpy(outputs[i]->dl_tensor.shape, r->scratch.outDims[i],
                  sizeof(int64_t) * d.outputs[i].ndim);
  }
  return KILN_OK;
}

} // namespace kiln::rt

extern "C" {

KILN_RT_API int kiln_rt_run(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                            DLTensor *outputs, int32_t num_outputs) {
  return runTensors("kiln_run", c, RunSpec{}, inputs, num_inputs, outputs, num_outputs);
}

KILN_RT_API int kiln_rt_run_minimal(kiln_container *c, void *const *inputs, void *const *outputs) {
  clearError();
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_run_minimal: container is NULL");
  const kiln_model_desc_v1 &d = *c->desc;
  if ((d.num_inputs > 0 && !inputs) || (d.num_outputs > 0 && !outputs))
    return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_run_minimal: %s is NULL",
                d.num_inputs > 0 && !inputs ? "inputs" : "outputs");
  if (d.num_symbols > 0)
    return fail(KILN_ERR_UNSUPPORTED,
                "kiln_run_minimal: the model has %d symbolic dim(s) (first: '%s'); use kiln_run",
                d.num_symbols, d.symbols[0].name);
  for (int32_t i = 0; i < d.num_outputs; ++i)
    if (isString(d.outputs[i].dtype))
      return fail(KILN_ERR_UNSUPPORTED,
                  "kiln_run_minimal: output '%s' is a string tensor; use kiln_run_alloc",
                  d.outputs[i].name);
  RunnerLease lease(c);
  return execute(c, lease.get(), inputs, outputs);
}

KILN_RT_API int kiln_rt_output_dims(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                                    int64_t *const *out_dims) {
  clearError();
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_output_dims: container is NULL");
  const kiln_model_desc_v1 &d = *c->desc;
  if (int st = checkCounts("kiln_output_dims", c, inputs, num_inputs, out_dims, d.num_outputs))
    return st;
  for (int32_t i = 0; i < d.num_outputs; ++i)
    if (!out_dims[i] && d.outputs[i].ndim > 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_output_dims: out_dims[%d] is NULL", i);
  RunnerLease lease(c);
  RunScratch &s = lease.get()->scratch;
  if (int st = bindInputs(*c, inputs, s)) return st;
  computeOutputDims(d, s);
  for (int32_t i = 0; i < d.num_outputs; ++i)
    std::memcpy(out_dims[i], s.outDims[i], sizeof(int64_t) * d.outputs[i].ndim);
  return KILN_OK;
}

KILN_RT_API int kiln_rt_run_alloc(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                                  DLManagedTensor **outputs, int32_t num_outputs) {
  return runAllocTensors("kiln_run_alloc", c, RunSpec{}, inputs, num_inputs, outputs, num_outputs);
}

} // extern "C"
