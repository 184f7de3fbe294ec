// ScatterElements / Scatter / ScatterND through the versioned shim (the writes are
// data-dependent, so they run as a library call on realized buffers).
#include "lower/ops_common.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;

} // namespace

int shimElemType(DType t) {
  switch (t) {
  case DType::Float32:
    return KILN_ELEM_F32;
  case DType::Float64:
    return KILN_ELEM_F64;
  case DType::Float16:
    return KILN_ELEM_F16;
  case DType::BFloat16:
    return KILN_ELEM_BF16;
  case DType::Int8:
    return KILN_ELEM_I8;
  case DType::Int16:
    return KILN_ELEM_I16;
  case DType::Int32:
    return KILN_ELEM_I32;
  case DType::Int64:
    return KILN_ELEM_I64;
  case DType::UInt8:
    return KILN_ELEM_U8;
  case DType::UInt16:
    return KILN_ELEM_U16;
  case DType::UInt32:
    return KILN_ELEM_U32;
  case DType::UInt64:
    return KILN_ELEM_U64;
  case DType::Bool:
    return KILN_ELEM_BOOL;
  case DType::Float8E4M3FN: // no shim element type
  case DType::Float8E4M3FNUZ:
  case DType::Float8E5M2:
  case DType::Float8E5M2FNUZ:
  case DType::Float4E2M1:
  case DType::Float8E8M0:
  case DType::UInt4:
  case DType::Int4:
  case DType::UInt2:
  case DType::Int2:
  case DType::String:
    break;
  }
  return -1;
}

namespace {

int reductionCode(OpCtx &c) {
  std::string r = c.node.attrString("reduction", "none");
  if (r == "none") return KILN_REDUCE_NONE;
  if (r == "add") return KILN_REDUCE_ADD;
  if (r == "mul") return KILN_REDUCE_MUL;
  if (r == "min") return KILN_REDUCE_MIN;
  if (r == "max") return KILN_REDUCE_MAX;
  fail("{}: reduction '{}' is not valid", c.node.describe(), r);
}

} // namespace

ExternArg externArg(ExternArg::Kind k, loop::Buffer *b) {
  ExternArg a;
  a.kind = k;
  a.buf = b;
  return a;
}
ExternArg externBuffer(loop::Buffer *b) {
  return ExternArg::bufferOrNull(b);
}
ExternArg externInt(int64_t v) {
  ExternArg a = externArg(ExternArg::Kind::Int);
  a.number = v;
  return a;
}
ExternArg externDims(const ir::Shape &s) {
  ExternArg a = externArg(ExternArg::Kind::Dims);
  a.dims = s;
  return a;
}

namespace {

ExternArg arg(ExternArg::Kind k, loop::Buffer *b = nullptr) {
  return externArg(k, b);
}
ExternArg dims(const ir::Shape &s) {
  return externDims(s);
}

/// Realized int64 copy of an index tensor.
loop::Buffer *int64Indices(OpCtx &c, const LTensor &ind) {
  LTensor i64 = ind.dtype == DType::Int64
                    ? ind
                    : mapUnary(c, ind, [](VRef v) { return loop::cast(v, DType::Int64); });
  return c.realize(i64).buffer;
}

/// Both scatter shims share one argument layout; they differ in one integer that follows
/// the indices' dims (ScatterND: the indices rank) or the updates (ScatterElements: axis).
LTensor scatterShim(OpCtx &c, const LTensor &data, const LTensor &ind, const LTensor &upd, bool nd,
                    int axis, int reduction) {
  int et = shimElemType(data.dtype);
  if (et < 0) c.unsupported(fmt::format("{} on {}", c.node.op, dtypeName(data.dtype)));
  loop::Buffer *db = c.realize(data).buffer, *ib = int64Indices(c, ind);
  loop::Buffer *ub = c.realize(upd).buffer;
  loop::Buffer *out =
      c.prog().newBuffer(data.dtype, data.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k =
      c.externKernel(nd ? loop::ExternKind::ScatterND : loop::ExternKind::ScatterElements);
  k->ext.inputs = {db, ib, ub};
  k->ext.outputs = {out};
  auto lit = externInt;
  auto &a = k->ext.args;
  a = {arg(ExternArg::Kind::Site),       lit(et),          lit(dtypeSize(data.dtype)),
       arg(ExternArg::Kind::Buffer, db), dims(data.shape), lit(data.rank()),
       arg(ExternArg::Kind::Buffer, ib), dims(ind.shape)};
  if (nd) {
    a.push_back(lit(ind.rank()));
    a.push_back(arg(ExternArg::Kind::Buffer, ub));
  } else {
    a.push_back(arg(ExternArg::Kind::Buffer, ub));
    a.push_back(lit(axis));
  }
  a.push_back(lit(reduction));
  a.push_back(arg(ExternArg::Kind::Buffer, out));
  return fromBuffer(c.ctx(), out);
}

/// Scatter as generated kernels (devices without a scatter shim): a copy of data, then one
/// kernel over the updates storing each at its data-dependent position (combined by atomics
/// for a reduction; an index outside data skips the element).
LTensor scatterKernels(OpCtx &c, const LTensor &data, const LTensor &ind, const LTensor &upd,
                       bool nd, int axis, int reduction) {
  using Combine = loop::Kernel::Combine;
  // Duplicate indices without a reduction: which update lands is unspecified, as in ONNX.
  Combine op = reduction == KILN_REDUCE_ADD   ? Combine::Add
               : reduction == KILN_REDUCE_MUL ? Combine::Mul
               : reduction == KILN_REDUCE_MAX ? Combine::Max
               : reduction == KILN_REDUCE_MIN ? Combine::Min
                                              : Combine::None;
  bool atomicType = data.dtype == DType::Float32 || data.dtype == DType::Float64 ||
                    data.dtype == DType::Int32 || data.dtype == DType::Int64;
  if (op != Combine::None && !atomicType)
    c.unsupported(
        fmt::format("{} with a reduction on {} on this device", c.node.op, dtypeName(data.dtype)));
  sym::Context &ctx = c.ctx();
  Lowerer &l = c.lowerer();
  loop::Buffer *out =
      c.prog().newBuffer(data.dtype, data.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *copy = c.prog().newKernel(loop::KernelKind::Pointwise);
  copy->origin = c.node.name;
  copy->out = out;
  for (const sym::Expr &d : data.shape)
    copy->vars.push_back(l.newVar("i", d));
  copy->body = data.load(copy->vars);
  loop::Kernel *k = c.prog().newKernel(loop::KernelKind::Pointwise);
  k->origin = c.node.name;
  k->out = out;
  k->scatterShape = upd.shape;
  k->scatterOp = op;
  for (const sym::Expr &d : upd.shape)
    k->vars.push_back(l.newVar("u", d));
  k->body = upd.load(k->vars);
  // Position in data, one value per data dim: from the indices where they say so.
  std::vector<VRef> pos;
  auto indexAt = [&](Index at, int dim) {
    VRef v = loop::cast(ind.load(at), DType::Int64);
    VRef n = loop::symInt(data.shape[dim]);
    VRef neg = loop::binary(loop::BinaryOp::Lt, v, loop::constantInt(DType::Int64, 0));
    return loop::select(neg, loop::binary(loop::BinaryOp::Add, v, n), v);
  };
  size_t r = data.shape.size();
  if (nd) {
    size_t q = ind.shape.size() - 1;
    int64_t depth = ind.shape.back()->value;
    Index head(k->vars.begin(), k->vars.begin() + q);
    for (int64_t j = 0; j < depth; ++j) {
      Index at = head;
      at.push_back(ctx.constant(j));
      pos.push_back(indexAt(at, static_cast<int>(j)));
    }
    for (size_t d = static_cast<size_t>(depth); d < r; ++d)
      pos.push_back(loop::symInt(k->vars[q + d - depth]));
  } else {
    for (size_t d = 0; d < r; ++d)
      pos.push_back(static_cast<int>(d) == axis ? indexAt(k->vars, axis)
                                                : loop::symInt(k->vars[d]));
  }
  // Row-major linear index; -1 when any coordinate is outside data (the kernel skips it).
  VRef lin = loop::constantInt(DType::Int64, 0);
  VRef valid = loop::constantInt(DType::Bool, 1);
  for (size_t d = 0; d < r; ++d) {
    VRef n = loop::symInt(data.shape[d]);
    lin = loop::binary(loop::BinaryOp::Add, loop::binary(loop::BinaryOp::Mul, lin, n), pos[d]);
    VRef inside =
        loop::binary(loop::BinaryOp::And,
                     loop::binary(loop::BinaryOp::Ge, pos[d], loop::constantInt(DType::Int64, 0)),
                     loop::binary(loop::BinaryOp::Lt, pos[d], n));
    valid = loop::binary(loop::BinaryOp::And, valid, inside);
  }
  k->scatterIndex = loop::select(valid, lin, loop::constantInt(DType::Int64, -1));
  return fromBuffer(ctx, out);
}

void lowerScatter(OpCtx &c, bool nd) {
  LTensor data = c.in(0);
  int axis = nd ? 0 : c.normAxis(c.node.attrInt("axis", 0), data.rank());
  if (!c.lowerer().target.scatterShim) {
    if (nd && !c.in(1).shape.back().isConst())
      c.unsupported("ScatterND whose index depth is not known at compile time");
    c.out(0, scatterKernels(c, data, c.in(1), c.in(2), nd, axis, reductionCode(c)));
    return;
  }
  c.out(0, scatterShim(c, data, c.in(1), c.in(2), nd, axis, reductionCode(c)));
}

void lowerScatterElements(OpCtx &c) {
  lowerScatter(c, false);
}
void lowerScatterND(OpCtx &c) {
  lowerScatter(c, true);
}

} // namespace

LTensor scatterElements(OpCtx &c, const LTensor &data, const LTensor &ind, const LTensor &upd,
                        int axis, int reduction) {
  if (!c.lowerer().target.scatterShim)
    return scatterKernels(c, data, ind, upd, false, axis, reduction);
  return scatterShim(c, data, ind, upd, false, axis, reduction);
}

void registerScatterOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"ScatterElements", 11, lowerScatterElements},
                        {"Scatter", 9, lowerScatterElements},
                        {"ScatterND", 11, lowerScatterND},
                    });
}

} // namespace kiln::lower
