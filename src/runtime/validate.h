// Checks of caller tensors against the model descriptor, with messages that name the
// tensor, the dim, what was expected and what was given.
#pragma once

#include "runner.h"

struct kiln_container;

#include <dlpack/dlpack.h>
#include <kiln/model_desc.h>

namespace kiln::rt {

// Checks inputs (device, dtype, rank, layout, static dims, symbol ranges), runs the model's
// bind_shapes and fills s.symbols, s.inDims, s.inNdims and s.inData. Counts must be checked.
// Tensors must be on the container's device.
int bindInputs(const kiln_container &c, const DLTensor *inputs, RunScratch &s);

// Fills s.outDims from the bound symbols.
void computeOutputDims(const kiln_model_desc_v1 &desc, RunScratch &s);

// Checks caller outputs against s.outDims and fills s.outData.
int checkOutputs(const kiln_container &c, const DLTensor *outputs, RunScratch &s);

struct DtypeName {
  char text[64];
};
// "float32", "int64", "bool", ... for messages.
DtypeName dtypeName(DLDataType t);
bool sameDtype(DLDataType a, DLDataType b);
// True when strides are NULL or compact row-major.
bool isContiguous(const DLTensor &t);

// Bytes of a contiguous tensor of this dtype and shape.
size_t tensorBytes(DLDataType dtype, int32_t ndim, const int64_t *dims);

} // namespace kiln::rt
