#include "validate.h"

#include <cstddef>

#include "container.h"
#include "error.h"

#include <kiln/model.h>

#include <cstdio>
#include <cstring>

namespace kiln::rt {

DtypeName dtypeName(DLDataType t) {
  DtypeName n;
  const char *base = "type";
  switch (t.code) {
  case kDLInt:
    base = "int";
    break;
  case kDLUInt:
    base = t.bits == 1 ? "bool" : "uint";
    break;
  case kDLFloat:
    base = "float";
    break;
  case kDLBfloat:
    base = "bfloat";
    break;
  case 10: // DLPack 1.1's float8/float4 codes (Debian's dlpack.h predates them)
  case 11:
  case 12:
  case 13:
  case 14:
  case 17: {
    static const char *const names[] = {"float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
                                        "float8e5m2fnuz", "float8e8m0"};
    std::snprintf(n.text, sizeof n.text, "%s", t.code == 17 ? "float4e2m1" : names[t.code - 10]);
    return n;
  }
  default:
    std::snprintf(n.text, sizeof n.text, "dtype(code %u, bits %u, lanes %u)", t.code, t.bits,
                  t.lanes);
    return n;
  }
  if (t.code == kDLUInt && t.bits == 1)
    std::snprintf(n.text, sizeof n.text, "bool");
  else
    std::snprintf(n.text, sizeof n.text, "%s%u", base, t.bits);
  if (t.lanes != 1) {
    size_t len = std::strlen(n.text);
    std::snprintf(n.text + len, sizeof n.text - len, "x%u", t.lanes);
  }
  return n;
}

bool sameDtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

bool isContiguous(const DLTensor &t) {
  if (!t.strides) return true;
  int64_t expected = 1;
  for (int32_t d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] == 0) return true; // empty: layout is moot
    if (t.shape[d] != 1 && t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

namespace {

// Checks what every tensor crossing the API must satisfy; kind is "input" or "output".
int checkTensor(const kiln_container &c, const char *kind, const kiln_io_desc_v1 &io,
                const DLTensor &t) {
  if (c.device && !c.device->isMine(t.device))
    return fail(KILN_ERR_DEVICE,
                "%s '%s': the container runs on cuda:%d, so tensors must be kDLCUDA with "
                "device_id %d; this one is on %s",
                kind, io.name, c.device->ordinal, c.device->ordinal, deviceName(t.device).text);
  if (!c.device && deviceTypeOf(t.device) != kDLCPU)
    return fail(KILN_ERR_DEVICE, "%s '%s': expected a CPU tensor (kDLCPU), got device type %d",
                kind, io.name, deviceTypeOf(t.device));
  if (!sameDtype(t.dtype, io.dtype))
    return fail(KILN_ERR_DTYPE_MISMATCH, "%s '%s': expected dtype %s, got %s", kind, io.name,
                dtypeName(io.dtype).text, dtypeName(t.dtype).text);
  if (t.ndim != io.ndim)
    return fail(KILN_ERR_SHAPE_MISMATCH, "%s '%s': expected rank %d, got %d", kind, io.name,
                io.ndim, t.ndim);
  if (t.ndim > 0 && !t.shape)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s '%s': shape is NULL", kind, io.name);
  for (int32_t d = 0; d < t.ndim; ++d)
    if (t.shape[d] < 0)
      return fail(KILN_ERR_SHAPE_MISMATCH, "%s '%s' dim %d: negative size %lld", kind, io.name, d,
                  static_cast<long long>(t.shape[d]));
  if (!isContiguous(t))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "%s '%s': tensor is not contiguous (strides must be NULL or compact row-major)",
                kind, io.name);
  if (!t.data && tensorBytes(t.dtype, t.ndim, t.shape) != 0)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s '%s': data is NULL", kind, io.name);
  return KILN_OK;
}

void *dataPtr(const DLTensor &t) {
  return static_cast<char *>(t.data) + t.byte_offset;
}

// CUDA models: bind_shapes_v2 reads the data of inputs flagged in input_data_on_host (small
// integer tensors such as a Reshape target) on the host, so those are copied down first.
// This is the documented synchronisation of such models; other inputs stay NULL.
int copyHostInputs(const kiln_container &c, const DLTensor *inputs, RunScratch &s) {
  const kiln_model_desc_v1 &desc = *c.desc;
  const int32_t *onHost = desc.input_data_on_host;
  s.hostData.assign(desc.num_inputs > 0 ? desc.num_inputs : 1, nullptr);
  s.hostInputs.resize(desc.num_inputs);
  for (int32_t i = 0; i < desc.num_inputs; ++i) {
    if (!onHost || !onHost[i]) continue;
    const DLTensor &t = inputs[i];
    size_t bytes = tensorBytes(t.dtype, t.ndim, t.shape);
    if (s.hostInputs[i].size() < bytes) s.hostInputs[i].resize(bytes);
    if (int st = c.device->copy(s.hostInputs[i].data(), false, s.inData[i], true, bytes,
                                "reading an input the model's shapes depend on"))
      return st;
    s.hostData[i] = s.hostInputs[i].data();
  }
  return KILN_OK;
}

} // namespace

size_t tensorBytes(DLDataType dtype, int32_t ndim, const int64_t *dims) {
  size_t n = 1;
  for (int32_t d = 0; d < ndim; ++d)
    n *= static_cast<size_t>(dims[d]);
  return n * ((static_cast<size_t>(dtype.bits) * dtype.lanes + 7) / 8);
}

int bindInputs(const kiln_container &c, const DLTensor *inputs, RunScratch &s) {
  const kiln_model_desc_v1 &desc = *c.desc;
  for (int32_t i = 0; i < desc.num_inputs; ++i) {
    const kiln_io_desc_v1 &io = desc.inputs[i];
    const DLTensor &t = inputs[i];
    if (int st = checkTensor(c, "input", io, t)) return st;
    for (int32_t d = 0; d < t.ndim; ++d) {
      int64_t got = t.shape[d];
      if (io.dims[d] >= 0) {
        if (got != io.dims[d])
          return fail(KILN_ERR_SHAPE_MISMATCH, "input '%s' dim %d: expected %lld, got %lld",
                      io.name, d, static_cast<long long>(io.dims[d]), static_cast<long long>(got));
        continue;
      }
      int32_t sym = io.dim_symbol ? io.dim_symbol[d] : -1;
      if (sym < 0 || sym >= desc.num_symbols) continue; // derived dim: bind_shapes checks it
      const kiln_symbol_desc_v1 &sd = desc.symbols[sym];
      if (got < sd.min || got > sd.max)
        return fail(KILN_ERR_SHAPE_MISMATCH,
                    "input '%s' dim %d (%s): expected %lld..%lld, got %lld", io.name, d, sd.name,
                    static_cast<long long>(sd.min), static_cast<long long>(sd.max),
                    static_cast<long long>(got));
    }
    s.inDims[i] = t.shape;
    s.inNdims[i] = t.ndim;
    s.inData[i] = dataPtr(t);
  }

  char err[512] = {};
  // Models whose dims depend on input values (ABI 2) solve their symbols from the data too.
  bool dataSymbols = desc.struct_size >= offsetof(kiln_model_desc_v1, bind_shapes_v2) +
                                             sizeof(desc.bind_shapes_v2) &&
                     desc.bind_shapes_v2;
  const void *const *bindData = const_cast<const void *const *>(s.inData.data());
  if (dataSymbols && c.device) {
    if (int st = copyHostInputs(c, inputs, s)) return st;
    bindData = s.hostData.data();
  }
  int st = dataSymbols ? desc.bind_shapes_v2(s.inDims.data(), s.inNdims.data(), bindData,
                                             s.symbols.data(), err, sizeof err)
                       : desc.bind_shapes(s.inDims.data(), s.inNdims.data(), s.symbols.data(), err,
                                          sizeof err);
  if (st == KILN_OK) return KILN_OK;
  if (st < 0 || st > KILN_ERR_INTERNAL) st = KILN_ERR_SHAPE_MISMATCH;
  return fail(st, "%s", err[0] ? err : "input shapes violate the model's shape guards");
}

void computeOutputDims(const kiln_model_desc_v1 &desc, RunScratch &s) {
  desc.output_dims(s.symbols.data(), s.outDims.data());
}

int checkOutputs(const kiln_container &c, const DLTensor *outputs, RunScratch &s) {
  const kiln_model_desc_v1 &desc = *c.desc;
  for (int32_t i = 0; i < desc.num_outputs; ++i) {
    const kiln_io_desc_v1 &io = desc.outputs[i];
    const DLTensor &t = outputs[i];
    if (int st = checkTensor(c, "output", io, t)) return st;
    for (int32_t d = 0; d < t.ndim; ++d)
      if (t.shape[d] != s.outDims[i][d])
        return fail(KILN_ERR_SHAPE_MISMATCH, "output '%s' dim %d: expected %lld, got %lld", io.name,
                    d, static_cast<long long>(s.outDims[i][d]), static_cast<long long>(t.shape[d]));
    s.outData[i] = dataPtr(t);
  }
  return KILN_OK;
}

} // namespace kiln::rt
