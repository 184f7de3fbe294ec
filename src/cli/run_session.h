// One model ready to run from the command line (`kiln run`, `kiln bench`): input tensors
// from .npy files or synthetic values, output buffers sized for those inputs, copies to and
// from a GPU, and one timed run.
#pragma once

#include "cli/model_lib.h"
#include "cli/npy.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kiln::cli {

class RunSession {
public:
  RunSession(const ModelLib &lib, kiln_container *c, bool gpu);
  ~RunSession();
  RunSession(const RunSession &) = delete;
  RunSession &operator=(const RunSession &) = delete;

  /// Reads every model input from name → file.npy (--input); unknown or missing names are
  /// reported with the list of the model's inputs.
  void loadInputs(const std::map<std::string, std::string> &files);
  /// Deterministic inputs (floats in [-1, 1), integers 0, bools false, strings ""). Shapes:
  /// from `shapes` (--shape name=DxD), else the model's, with each symbolic dim at its
  /// smallest non-zero value.
  void syntheticInputs(const std::map<std::string, std::vector<int64_t>> &shapes);
  /// Sizes the outputs for the inputs (call after loading inputs).
  void prepareOutputs();
  /// One run; returns its latency in milliseconds.
  double runOnce();
  /// Brings GPU outputs to the host (no-op on the CPU).
  void outputsToHost();

  int32_t numInputs() const { return static_cast<int32_t>(inInfo_.size()); }
  int32_t numOutputs() const { return static_cast<int32_t>(outInfo_.size()); }
  const kiln_tensor_info &inputInfo(int32_t i) const { return inInfo_[i]; }
  const kiln_tensor_info &outputInfo(int32_t i) const { return outInfo_[i]; }
  const std::vector<int64_t> &inputDims(int32_t i) const { return inShapes_[i]; }
  const std::vector<int64_t> &outputDims(int32_t i) const { return outDims_[i]; }
  const void *outputData(int32_t i) const { return hostOut_[i].data; }

private:
  struct Buffer;
  void setInput(int32_t i, NpyArray array);
  std::vector<std::string> inputNames() const;

  const ModelLib &lib_;
  kiln_container *c_;
  bool gpu_;
  bool anyString_ = false;
  std::vector<kiln_tensor_info> inInfo_, outInfo_;
  std::vector<NpyArray> arrays_;
  std::vector<std::vector<int64_t>> inShapes_, outDims_, boundDims_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<DLTensor> ins_, outs_, hostOut_;
  std::vector<DLManagedTensor *> deviceTensors_, managed_;
};

/// Prints "name: dtype [dims]" and the first values of an output (kiln run without
/// --output-dir).
void printOutput(const std::string &name, const DLDataType &dtype, const std::vector<int64_t> &dims,
                 const void *data);

} // namespace kiln::cli
