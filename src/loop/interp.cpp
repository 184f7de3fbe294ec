#include "loop/interp.h"

#include "loop/scalar.h"
#include "support/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kiln::loop {

void storeScalar(ir::TensorData &t, int64_t i, double f, int64_t iv) {
  if (minifloatFormat(t.dtype) >= 0) {
    t.as<uint8_t>()[i] = static_cast<uint8_t>(narrowFloatBits(t.dtype, f));
    return;
  }
  if (isSubByteInt(t.dtype)) { // one element per byte, sign- or zero-extended
    t.as<int8_t>()[i] = static_cast<int8_t>(normalize(t.dtype, Scalar{0, iv}).i);
    return;
  }
  switch (t.dtype) {
  case DType::Float32:
    t.as<float>()[i] = static_cast<float>(f);
    break;
  case DType::Float64:
    t.as<double>()[i] = f;
    break;
  case DType::Float16:
    t.as<uint16_t>()[i] = floatToHalf(static_cast<float>(f));
    break;
  case DType::BFloat16:
    t.as<uint16_t>()[i] = floatToBf16(static_cast<float>(f));
    break;
  case DType::Int8:
    t.as<int8_t>()[i] = static_cast<int8_t>(iv);
    break;
  case DType::Int16:
    t.as<int16_t>()[i] = static_cast<int16_t>(iv);
    break;
  case DType::Int32:
    t.as<int32_t>()[i] = static_cast<int32_t>(iv);
    break;
  case DType::Int64:
    t.as<int64_t>()[i] = iv;
    break;
  case DType::UInt8:
    t.as<uint8_t>()[i] = static_cast<uint8_t>(iv);
    break;
  case DType::UInt16:
    t.as<uint16_t>()[i] = static_cast<uint16_t>(iv);
    break;
  case DType::UInt32:
    t.as<uint32_t>()[i] = static_cast<uint32_t>(iv);
    break;
  case DType::UInt64:
    t.as<uint64_t>()[i] = static_cast<uint64_t>(iv);
    break;
  case DType::Bool:
    t.as<uint8_t>()[i] = iv != 0;
    break;
  case DType::Float8E4M3FN: // handled above: one byte per element
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
    KILN_ASSERT(false, "storeScalar on {}", dtypeName(t.dtype));
    break;
  }
}

/// ONNX BitCast of one element: a's bytes (little-endian, as stored) read as `to`.
static Scalar reinterpretBits(DType from, DType to, Scalar a) {
  unsigned char bytes[8] = {};
  if (isNarrowFloat(from)) {
    uint32_t bits = narrowFloatBits(from, a.f);
    std::memcpy(bytes, &bits, 4);
  } else if (from == DType::Float32) {
    float f = static_cast<float>(a.f);
    std::memcpy(bytes, &f, 4);
  } else if (from == DType::Float64) {
    std::memcpy(bytes, &a.f, 8);
  } else {
    std::memcpy(bytes, &a.i, 8); // the low bytes of any integer come first
  }
  if (to == DType::Float32) {
    float f;
    std::memcpy(&f, bytes, 4);
    return {f, 0};
  }
  if (to == DType::Float64) {
    double d;
    std::memcpy(&d, bytes, 8);
    return {d, 0};
  }
  int size = dtypeSize(to);
  if (isNarrowFloat(to)) {
    uint32_t bits = 0;
    std::memcpy(&bits, bytes, static_cast<size_t>(size));
    return {narrowFloatValue(to, bits), 0};
  }
  uint64_t u = 0;
  std::memcpy(&u, bytes, static_cast<size_t>(size));
  int64_t i = static_cast<int64_t>(u);
  if (isSigned(to) && size < 8 && (u >> (size * 8 - 1)) & 1) // sign-extend
    i = static_cast<int64_t>(u | (~uint64_t(0) << (size * 8)));
  return {static_cast<double>(i), i};
}

Interpreter::Interpreter(const Program &p, sym::Context &ctx) : prog_(p), ctx_(ctx) {}

Interpreter::Scalar2 Interpreter::eval(const VRef &v, std::map<std::string, int64_t> &env) {
  switch (v->kind) {
  case VKind::Const:
    return {v->fval, v->ival};
  case VKind::SymInt: {
    int64_t x = sym::evaluate(v->sym, env);
    return {static_cast<double>(x), x};
  }
  case VKind::Load: {
    for (auto &[var, val] : v->indirect)
      env[var.name()] = eval(val, env).i;
    int64_t idx = sym::evaluate(v->sym, env);
    const ir::TensorData &d = bufferData(v->buf);
    if (idx < 0 || idx >= d.numel())
      fail("index {} out of bounds for a tensor of {} elements (while folding constants)", idx,
           d.numel());
    if (isFloat(d.dtype)) return {d.getDouble(idx), 0};
    return {0, d.getInt(idx)};
  }
  case VKind::Unary: {
    Scalar2 a = eval(v->args[0], env);
    Scalar r = evalUnary(v->uop, v->args[0]->dtype, Scalar{a.f, a.i});
    return {r.f, r.i};
  }
  case VKind::Binary: {
    Scalar2 a = eval(v->args[0], env), b = eval(v->args[1], env);
    Scalar r = evalBinary(v->bop, v->args[0]->dtype, Scalar{a.f, a.i}, Scalar{b.f, b.i});
    return {r.f, r.i};
  }
  case VKind::Select: {
    Scalar2 c = eval(v->args[0], env);
    return eval(v->args[c.i ? 1 : 2], env);
  }
  case VKind::Cast: {
    Scalar2 a = eval(v->args[0], env);
    Scalar r = v->bits ? reinterpretBits(v->args[0]->dtype, v->dtype, Scalar{a.f, a.i})
                       : evalCast(v->args[0]->dtype, v->dtype, Scalar{a.f, a.i});
    return {r.f, r.i};
  }
  }
  return {0, 0};
}

static std::vector<int64_t> staticDims(const ir::Shape &s) {
  std::vector<int64_t> d;
  for (const sym::Expr &e : s) {
    if (!e.isConst()) fail("cannot fold a tensor with symbolic dim {}", sym::toString(e));
    d.push_back(e->value);
  }
  return d;
}

std::shared_ptr<ir::TensorData> Interpreter::evaluate(DType t, const std::vector<int64_t> &shape,
                                                      const std::vector<sym::Expr> &vars,
                                                      const VRef &body) {
  auto out = std::make_shared<ir::TensorData>();
  out->dtype = t;
  out->dims = shape;
  int64_t n = out->numel();
  out->bytes.resize(static_cast<size_t>(n) * dtypeSize(t));
  std::map<std::string, int64_t> env;
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    for (size_t d = 0; d < vars.size(); ++d)
      env[vars[d].name()] = idx[d];
    Scalar2 s = eval(body, env);
    Scalar norm = normalize(t, evalCast(body->dtype, t, Scalar{s.f, s.i}));
    storeScalar(*out, flat, norm.f, norm.i);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

void Interpreter::runKernel(const Kernel &k, ir::TensorData &out) {
  if (k.kind == KernelKind::Extern)
    fail("cannot fold through extern {}", externKindName(k.ext.kind));
  if (k.kind == KernelKind::Call) fail("cannot fold through control flow ({})", k.origin);
  if (k.kind == KernelKind::Attention) fail("cannot fold through attention ({})", k.origin);
  if (k.kind == KernelKind::Pointwise) {
    out = *evaluate(k.out->dtype, staticDims(k.out->shape), k.vars, k.body);
    return;
  }
  std::vector<int64_t> oshape = staticDims(k.out->shape), rshape = staticDims(k.rsizes);
  out.dtype = k.out->dtype;
  out.dims = oshape;
  int64_t n = out.numel(), rn = 1;
  for (int64_t d : rshape)
    rn *= d;
  out.bytes.assign(static_cast<size_t>(n) * dtypeSize(out.dtype), 0);
  std::map<std::string, int64_t> env;
  std::vector<int64_t> idx(oshape.size(), 0);
  bool fl = isFloat(k.accDtype);
  for (int64_t flat = 0; flat < n; ++flat) {
    for (size_t d = 0; d < k.vars.size(); ++d)
      env[k.vars[d].name()] = idx[d];
    double accF = 0;
    int64_t accI = 0, best = 0;
    bool first = true;
    std::vector<int64_t> ridx(rshape.size(), 0);
    for (int64_t r = 0; r < rn; ++r) {
      for (size_t d = 0; d < k.rvars.size(); ++d)
        env[k.rvars[d].name()] = ridx[d];
      Scalar2 s = eval(k.body, env);
      double x = fl ? s.f : static_cast<double>(s.i);
      switch (k.rop) {
      case ReduceOp::Sum:
        fl ? (void)(accF += x) : (void)(accI += s.i);
        break;
      case ReduceOp::Prod:
        if (first) {
          accF = x;
          accI = s.i;
        } else {
          accF *= x;
          accI *= s.i;
        }
        break;
      case ReduceOp::Max:
      case ReduceOp::ArgMax:
        if (first || x > accF || (k.lastIndex && x == accF) ||
            (std::isnan(x) && k.rop == ReduceOp::Max)) {
          accF = x;
          accI = s.i;
          best = r;
        }
        break;
      case ReduceOp::Min:
      case ReduceOp::ArgMin:
        if (first || x < accF || (k.lastIndex && x == accF) ||
            (std::isnan(x) && k.rop == ReduceOp::Min)) {
          accF = x;
          accI = s.i;
          best = r;
        }
        break;
      }
      first = false;
      for (size_t d = rshape.size(); d-- > 0;) {
        if (++ridx[d] < rshape[d]) break;
        ridx[d] = 0;
      }
    }
    if (k.rop == ReduceOp::ArgMax || k.rop == ReduceOp::ArgMin)
      storeScalar(out, flat, static_cast<double>(best), best);
    else if (first && (k.rop == ReduceOp::Max || k.rop == ReduceOp::Min))
      storeScalar(out, flat, k.rop == ReduceOp::Max ? -INFINITY : INFINITY,
                  k.rop == ReduceOp::Max ? INT64_MIN : INT64_MAX);
    else if (first && k.rop == ReduceOp::Prod)
      storeScalar(out, flat, 1.0, 1);
    else
      storeScalar(out, flat, accF, fl ? static_cast<int64_t>(accF) : accI);
    for (size_t d = oshape.size(); d-- > 0;) {
      if (++idx[d] < oshape[d]) break;
      idx[d] = 0;
    }
  }
}

const ir::TensorData &Interpreter::bufferData(const Buffer *b) {
  if (b->data) return *b->data;
  auto it = cache_.find(b);
  if (it != cache_.end()) return *it->second;
  if (b->kind == BufferKind::Input) fail("cannot fold: depends on graph input");
  for (const auto &k : prog_.kernels) {
    std::vector<Buffer *> w = k->writes();
    if (std::find(w.begin(), w.end(), b) == w.end()) continue;
    auto data = std::make_shared<ir::TensorData>();
    runKernel(*k, *data);
    cache_[b] = data;
    return *data;
  }
  fail("cannot fold: buffer {} has no producer", b->name);
}

} // namespace kiln::loop
