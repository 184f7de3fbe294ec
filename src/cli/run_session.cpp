#include "cli/run_session.h"

#include "cli/cli_util.h"
#include "kiln/prelude.h"
#include "support/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>

namespace kiln::cli {

namespace {

bool isString(const DLDataType &t) {
  return t.code == kDLOpaqueHandle && t.bits == 64;
}

int64_t elementCount(const std::vector<int64_t> &dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

double halfToDouble(uint16_t h) {
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double sign = (h & 0x8000) ? -1 : 1;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(mant + 1024, exp - 25);
}

/// Element i as text (numbers as %g).
std::string elementText(const DLDataType &t, const void *data, int64_t i) {
  auto at = [&](auto type) {
    decltype(type) v;
    std::memcpy(&v, static_cast<const char *>(data) + i * sizeof v, sizeof v);
    return v;
  };
  if (isString(t)) {
    const char *s = at(static_cast<const char *>(nullptr));
    return fmt::format("\"{}\"", s ? s : "");
  }
  if (t.code == 6) return at(uint8_t{}) ? "true" : "false";
  if (t.code == kDLBfloat) {
    uint32_t bits = static_cast<uint32_t>(at(uint16_t{})) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return fmt::format("{:g}", f);
  }
  if (t.code == kDLFloat) {
    if (t.bits == 16) return fmt::format("{:g}", halfToDouble(at(uint16_t{})));
    if (t.bits == 32) return fmt::format("{:g}", at(float{}));
    return fmt::format("{:g}", at(double{}));
  }
  if ((t.code >= 10 && t.code <= 14) || t.code == 17) { // float8/float4 codes, one per byte
    int format = t.code == 17 ? KILN_F4E2M1 : t.code == 14 ? KILN_F8E8M0 : t.code - 10;
    return fmt::format("{:g}", kiln_mf_decode(at(uint8_t{}), format));
  }
  bool sgn = t.code == kDLInt;
  switch (t.bits) {
  case 2:
  case 4: // one element per byte
  case 8:
    return sgn ? std::to_string(at(int8_t{})) : std::to_string(at(uint8_t{}));
  case 16:
    return sgn ? std::to_string(at(int16_t{})) : std::to_string(at(uint16_t{}));
  case 32:
    return sgn ? std::to_string(at(int32_t{})) : std::to_string(at(uint32_t{}));
  default:
    return sgn ? std::to_string(at(int64_t{})) : std::to_string(at(uint64_t{}));
  }
}

} // namespace

struct RunSession::Buffer {
  void *p = nullptr;
  explicit Buffer(size_t n) {
    p = std::aligned_alloc(64, std::max<size_t>(64, (n + 63) / 64 * 64));
  }
  ~Buffer() { std::free(p); }
};

RunSession::RunSession(const ModelLib &lib, kiln_container *c, bool gpu)
    : lib_(lib), c_(c), gpu_(gpu) {
  int32_t nin = 0, nout = 0;
  lib.check(lib.kiln_num_inputs(c, &nin), "reading the model's inputs");
  lib.check(lib.kiln_num_outputs(c, &nout), "reading the model's outputs");
  inInfo_.resize(nin);
  for (int32_t i = 0; i < nin; ++i) {
    inInfo_[i] = kiln_tensor_info{};
    inInfo_[i].struct_size = sizeof(kiln_tensor_info);
    lib.check(lib.kiln_input_info(c, i, &inInfo_[i]), "reading the model's inputs");
  }
  outInfo_.resize(nout);
  for (int32_t i = 0; i < nout; ++i) {
    outInfo_[i] = kiln_tensor_info{};
    outInfo_[i].struct_size = sizeof(kiln_tensor_info);
    lib.check(lib.kiln_output_info(c, i, &outInfo_[i]), "reading the model's outputs");
    anyString_ |= isString(outInfo_[i].dtype);
  }
  arrays_.resize(nin);
  inShapes_.resize(nin);
  ins_.resize(nin);
}

RunSession::~RunSession() {
  for (DLManagedTensor *m : managed_)
    if (m) m->deleter(m);
  for (DLManagedTensor *m : deviceTensors_)
    m->deleter(m);
}

std::vector<std::string> RunSession::inputNames() const {
  std::vector<std::string> names;
  for (const kiln_tensor_info &info : inInfo_)
    names.push_back(fmt::format("{} {}", info.name, describeDims(info)));
  return names;
}

void RunSession::setInput(int32_t i, NpyArray array) {
  arrays_[i] = std::move(array);
  NpyArray &a = arrays_[i];
  inShapes_[i] = a.shape;
  buffers_.push_back(std::make_unique<Buffer>(a.data.size()));
  std::memcpy(buffers_.back()->p, a.data.data(), a.data.size());
  ins_[i] = DLTensor{buffers_.back()->p,
                     {kDLCPU, 0},
                     static_cast<int32_t>(a.shape.size()),
                     a.dtype,
                     inShapes_[i].data(),
                     nullptr,
                     0};
}

void RunSession::loadInputs(const std::map<std::string, std::string> &files) {
  for (auto &[name, file] : files) {
    bool known = false;
    for (const kiln_tensor_info &info : inInfo_)
      known |= name == info.name;
    if (!known)
      fail("--input {}={}: the model has no input named '{}'; its inputs are {}", name, file, name,
           listNames(inputNames()));
  }
  std::map<std::string, std::string> left = files;
  for (int32_t i = 0; i < numInputs(); ++i) {
    const kiln_tensor_info &info = inInfo_[i];
    auto it = left.find(info.name);
    if (it == left.end())
      fail("model input '{}' {} has no --input {}=file.npy (the model's inputs: {}; or use "
           "kiln bench for synthetic inputs)",
           info.name, describeDims(info), info.name, listNames(inputNames()));
    NpyArray a = readNpy(it->second);
    // numpy has no bfloat16/float8/int4...: such an input comes as the .npy dtypeDescr names
    // (raw bf16 bits as uint16, float8/float4 codes as uint8, int4 values as int8, ...).
    bool rawBits = (info.dtype.code == kDLBfloat && info.dtype.bits == 16) ||
                   (info.dtype.code >= 7 && info.dtype.code <= 17) || info.dtype.bits < 8;
    if (rawBits && !isString(info.dtype)) {
      if (dtypeDescr(a.dtype) != dtypeDescr(info.dtype))
        fail("input '{}' is {}: give a .npy of dtype '{}' holding its stored bytes ('{}' has '{}')",
             info.name, dtypeText(info.dtype), dtypeDescr(info.dtype), it->second,
             dtypeDescr(a.dtype));
      a.dtype = info.dtype;
    }
    left.erase(it);
    setInput(i, std::move(a));
  }
  if (!left.empty())
    fail("--input {}: the model has no input named '{}'; its inputs are {}", left.begin()->first,
         left.begin()->first, listNames(inputNames()));
}

void RunSession::syntheticInputs(const std::map<std::string, std::vector<int64_t>> &shapes) {
  std::map<std::string, std::vector<int64_t>> left = shapes;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int32_t i = 0; i < numInputs(); ++i) {
    const kiln_tensor_info &info = inInfo_[i];
    NpyArray a;
    a.dtype = info.dtype;
    auto it = left.find(info.name);
    if (it != left.end()) {
      a.shape = it->second;
      left.erase(it);
    } else {
      for (int32_t d = 0; d < info.ndim; ++d)
        a.shape.push_back(info.dims[d] >= 0 ? info.dims[d] : std::max<int64_t>(info.dim_min[d], 1));
    }
    int64_t n = elementCount(a.shape);
    size_t elem = isString(a.dtype) ? sizeof(const char *) : (a.dtype.bits + 7) / 8;
    a.data.assign(static_cast<size_t>(n) * elem, 0);
    if (isString(a.dtype)) {
      a.strings.assign(static_cast<size_t>(n), "");
      for (int64_t k = 0; k < n; ++k) {
        const char *p = a.strings[k].c_str();
        std::memcpy(a.data.data() + k * sizeof p, &p, sizeof p);
      }
    } else if (a.dtype.code == kDLFloat || a.dtype.code == kDLBfloat) {
      for (int64_t k = 0; k < n; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        float v = static_cast<float>(static_cast<double>(state >> 11) / 9007199254740992.0 * 2 - 1);
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        if (a.dtype.bits == 32) std::memcpy(a.data.data() + 4 * k, &v, 4);
        if (a.dtype.bits == 64) {
          double dv = v;
          std::memcpy(a.data.data() + 8 * k, &dv, 8);
        }
        if (a.dtype.bits == 16) { // bf16: upper half; fp16: small values as halves of 0
          uint16_t h = a.dtype.code == kDLBfloat ? static_cast<uint16_t>(bits >> 16) : 0;
          std::memcpy(a.data.data() + 2 * k, &h, 2);
        }
      }
    }
    setInput(i, std::move(a));
  }
  if (!left.empty())
    fail("--shape {}: the model has no input named '{}'; its inputs are {}", left.begin()->first,
         left.begin()->first, listNames(inputNames()));
}

void RunSession::prepareOutputs() {
  auto toDevice = [&](DLTensor &t, bool copy) {
    DLManagedTensor *m = nullptr;
    lib_.check(lib_.kiln_alloc_tensor(c_, t.dtype, t.ndim, t.shape, &m),
               "allocating a tensor on the GPU");
    deviceTensors_.push_back(m);
    if (copy)
      lib_.check(lib_.kiln_copy_tensor(c_, &m->dl_tensor, &t), "copying an input to the GPU");
    t.data = m->dl_tensor.data;
    t.device = m->dl_tensor.device;
  };
  if (gpu_)
    for (DLTensor &t : ins_)
      toDevice(t, true);
  int32_t nout = numOutputs();
  outDims_.assign(nout, {});
  std::vector<int64_t *> dimPtrs(nout);
  for (int32_t i = 0; i < nout; ++i) {
    outDims_[i].resize(std::max(outInfo_[i].ndim, 1));
    dimPtrs[i] = outDims_[i].data();
  }
  if (lib_.kiln_output_dims(c_, ins_.data(), numInputs(), dimPtrs.data()) != KILN_OK)
    fail("the inputs do not fit the model: {}", lib_.kiln_last_error());
  outs_.assign(nout, DLTensor{});
  for (int32_t i = 0; i < nout; ++i) {
    outDims_[i].resize(outInfo_[i].ndim);
    size_t bytes = static_cast<size_t>(elementCount(outDims_[i])) *
                   (isString(outInfo_[i].dtype) ? 8 : (outInfo_[i].dtype.bits + 7) / 8);
    buffers_.push_back(std::make_unique<Buffer>(bytes));
    outs_[i] = DLTensor{buffers_.back()->p,
                        {kDLCPU, 0},
                        outInfo_[i].ndim,
                        outInfo_[i].dtype,
                        outDims_[i].data(),
                        nullptr,
                        0};
  }
  hostOut_ = outs_;
  if (gpu_)
    for (DLTensor &t : outs_)
      toDevice(t, false);
  // kiln_run writes the actual dims of data-dependent outputs (NonZero, Unique, ...) into
  // their shapes; each run starts again from the bounds kiln_output_dims gave.
  boundDims_ = outDims_;
  managed_.assign(nout, nullptr);
}

double RunSession::runOnce() {
  for (int32_t i = 0; i < numOutputs(); ++i)
    std::copy(boundDims_[i].begin(), boundDims_[i].end(), outDims_[i].begin());
  auto t0 = std::chrono::steady_clock::now();
  if (anyString_) { // string outputs need runtime-owned text: kiln_run_alloc
    for (DLManagedTensor *&m : managed_)
      if (m) {
        m->deleter(m);
        m = nullptr;
      }
    lib_.check(lib_.kiln_run_alloc(c_, ins_.data(), numInputs(), managed_.data(), numOutputs()),
               "the run failed");
    for (int32_t i = 0; i < numOutputs(); ++i) {
      std::copy(managed_[i]->dl_tensor.shape, managed_[i]->dl_tensor.shape + outInfo_[i].ndim,
                outDims_[i].begin());
      hostOut_[i].data = managed_[i]->dl_tensor.data;
    }
  } else {
    // On a GPU kiln_run returns once the work is done, so the host clock times it.
    lib_.check(lib_.kiln_run(c_, ins_.data(), numInputs(), outs_.data(), numOutputs()),
               "the run failed");
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void RunSession::outputsToHost() {
  if (!gpu_ || anyString_) return; // string outputs never live on a GPU
  for (int32_t i = 0; i < numOutputs(); ++i) {
    DLTensor h = hostOut_[i];
    h.shape = outDims_[i].data();
    lib_.check(lib_.kiln_copy_tensor(c_, &h, &outs_[i]), "copying an output from the GPU");
  }
}

void printOutput(const std::string &name, const DLDataType &dtype, const std::vector<int64_t> &dims,
                 const void *data) {
  std::string shape;
  for (size_t d = 0; d < dims.size(); ++d)
    shape += (d ? ", " : "") + std::to_string(dims[d]);
  int64_t n = elementCount(dims);
  const int64_t shown = std::min<int64_t>(n, 8);
  std::string values;
  for (int64_t i = 0; i < shown; ++i)
    values += (i ? ", " : "") + elementText(dtype, data, i);
  std::cout << fmt::format("{}: {} [{}] = [{}{}]\n", name, dtypeText(dtype), shape, values,
                           n > shown ? fmt::format(", ... ({} values)", n) : "");
}

} // namespace kiln::cli
