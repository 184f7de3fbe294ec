// Pieces shared by the run entry points (run.cpp: model.h v1; run_v2.cpp: streams) and the
// CUDA execution path (run_cuda.cpp).
#pragma once

#include "container.h"

#include <dlpack/dlpack.h>

#include <cstddef>
#include <functional>

namespace kiln::rt {

// How a run meets the device. CPU containers ignore it.
struct RunSpec {
  void *stream = nullptr; // the caller's CUstream (NULL = legacy default stream)
  bool ownStream = true;  // run on the runner's stream instead (kiln_run v1)
  bool sync = true;       // return only when the GPU work is done
};

// Returns the runner to the pool on every exit path.
class RunnerLease {
public:
  explicit RunnerLease(kiln_container *c) : c_(c), r_(c->acquire()) {}
  ~RunnerLease() { c_->release(r_); }
  Runner *get() const { return r_; }
  RunnerLease(const RunnerLease &) = delete;
  RunnerLease &operator=(const RunnerLease &) = delete;

private:
  kiln_container *c_;
  Runner *r_;
};

// Models of ABI 3 whose dims are partly known only during the run (run_v2).
inline bool hasLateDims(const kiln_model_desc_v1 &d) {
  return d.struct_size >= offsetof(kiln_model_desc_v1, run_v2) + sizeof(d.run_v2) && d.run_v2;
}

// Turns a model's run status into the caller's status and message.
int runStatus(int st, const Runner &r);

// Runs a CUDA container's model on the given pointers (run_cuda.cpp).
int executeCuda(kiln_container *c, Runner *r, void *const *in, void *const *out,
                const RunSpec &spec);

// kiln_run / kiln_run_v2 and kiln_run_alloc / kiln_run_alloc_v2 (run.cpp).
int runTensors(const char *fn, kiln_container *c, const RunSpec &spec, const DLTensor *inputs,
               int32_t numInputs, DLTensor *outputs, int32_t numOutputs);
int runAllocTensors(const char *fn, kiln_container *c, const RunSpec &spec, const DLTensor *inputs,
                    int32_t numInputs, DLManagedTensor **outputs, int32_t numOutputs);

// Contiguous tensors owned by their deleter: host memory, or device memory of a CUDA
// container when onDevice (tensors.cpp). nullptr with the error recorded on failure.
DLManagedTensor *allocManaged(const kiln_container *c, bool onDevice, DLDataType dtype,
                              int32_t ndim, const int64_t *dims);
void freeManaged(DLManagedTensor *t);

} // namespace kiln::rt
