// Elementwise ONNX ops: arithmetic, comparisons, logic, activations, Cast, Where.
#include "kiln/prelude.h"
#include "lower/ops_common.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::binary;
using loop::constant;
using loop::unary;

template <BinaryOp Op> void lowerBinary(OpCtx &c) {
  c.out(0, broadcastBinary(c, c.in(0), c.in(1), Op));
}

template <UnaryOp Op> void lowerUnary(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0), [](VRef x) { return unary(Op, x); }));
}

void lowerSum(OpCtx &c) { // variadic Sum/Max/Min/Mean
  BinaryOp op = c.node.op == "Max"   ? BinaryOp::Max
                : c.node.op == "Min" ? BinaryOp::Min
                                     : BinaryOp::Add;
  LTensor acc = c.in(0);
  for (size_t i = 1; i < c.numInputs(); ++i)
    acc = broadcastBinary(c, acc, c.in(i), op);
  if (c.node.op == "Mean") {
    double n = static_cast<double>(c.numInputs());
    acc = mapUnary(c, acc, [n](VRef x) { return binary(BinaryOp::Div, x, constant(x->dtype, n)); });
  }
  c.out(0, acc);
}

void lowerPow(OpCtx &c) {
  LTensor a = c.in(0), b = c.in(1);
  if (b.dtype != a.dtype) {
    Loader bl = b.load;
    DType t = a.dtype;
    b = c.pointwise(t, b.shape, [=](const Index &i) { return loop::cast(bl(i), t); });
  }
  // x^2 and x^0.5 as multiply/sqrt: exact where pow is slow (layer norm variance).
  if (const ir::TensorData *e = c.constIn(1); e && e->numel() == 1 && isFloat(a.dtype)) {
    double p = e->getDouble(0);
    if (p == 2.0) {
      c.out(0, mapUnary(c, a, [](VRef x) { return binary(BinaryOp::Mul, x, x); }));
      return;
    }
    if (p == 1.0) {
      c.out(0, a);
      return;
    }
    // x^3 (GPT-2's tanh GELU): a pow call per element keeps the CPU loop from vectorizing
    // (a third of GPT-2's run); sched::Target says where to expand it.
    if (p == 3.0 && c.lowerer().target.cubeAsProduct) {
      c.out(0, mapUnary(c, a, [](VRef x) {
              return binary(BinaryOp::Mul, binary(BinaryOp::Mul, x, x), x);
            }));
      return;
    }
  }
  c.out(0, broadcastBinary(c, a, b, BinaryOp::Pow));
}

void lowerDiv(OpCtx &c) {
  c.out(0, broadcastBinary(c, c.in(0), c.in(1), BinaryOp::Div));
}

void lowerMod(OpCtx &c) {
  bool fmod = c.node.attrInt("fmod", 0) != 0;
  LTensor a = c.in(0);
  if (isFloat(a.dtype) && !fmod)
    fail("{}: Mod with fmod=0 on float inputs is invalid ONNX", c.node.describe());
  c.out(0, broadcastBinary(c, a, c.in(1), fmod ? BinaryOp::Fmod : BinaryOp::Mod));
}

void lowerRelu(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0),
                    [](VRef x) { return binary(BinaryOp::Max, x, constant(x->dtype, 0)); }));
}

void lowerLeakyRelu(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 0.01f);
  c.out(0, mapUnary(c, c.in(0), [alpha](VRef x) {
          VRef z = constant(x->dtype, 0);
          return loop::select(binary(BinaryOp::Lt, x, z),
                              binary(BinaryOp::Mul, x, constant(x->dtype, alpha)), x);
        }));
}

VRef hardSigmoid(VRef x, double alpha, double beta) {
  VRef y = binary(BinaryOp::Add, binary(BinaryOp::Mul, x, constant(x->dtype, alpha)),
                  constant(x->dtype, beta));
  return binary(BinaryOp::Max, binary(BinaryOp::Min, y, constant(x->dtype, 1)),
                constant(x->dtype, 0));
}

void lowerHardSigmoid(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 0.2f), beta = c.node.attrFloat("beta", 0.5f);
  c.out(0, mapUnary(c, c.in(0), [=](VRef x) { return hardSigmoid(x, alpha, beta); }));
}

/// Mish (opset 18): x * tanh(softplus(x)); softplus overflowing to inf still gives x.
void lowerMish(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0), [](VRef x) {
          VRef one = constant(x->dtype, 1);
          VRef sp =
              loop::unary(UnaryOp::Log, binary(BinaryOp::Add, loop::unary(UnaryOp::Exp, x), one));
          return binary(BinaryOp::Mul, x, loop::unary(UnaryOp::Tanh, sp));
        }));
}

/// Swish (opset 24): x * sigmoid(alpha * x).
void lowerSwish(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 1.0f);
  c.out(0, mapUnary(c, c.in(0), [alpha](VRef x) {
          VRef ax = binary(BinaryOp::Mul, x, constant(x->dtype, alpha));
          return binary(BinaryOp::Mul, x, loop::unary(UnaryOp::Sigmoid, ax));
        }));
}

void lowerHardSwish(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0), [](VRef x) {
          return binary(BinaryOp::Mul, x, hardSigmoid(x, 1.0 / 6.0, 0.5));
        }));
}

void lowerClip(OpCtx &c) {
  LTensor x = c.in(0);
  std::optional<VRef> lo, hi;
  if (c.node.opset < 11) {
    if (c.node.hasAttr("min")) lo = constant(x.dtype, c.node.attrFloat("min", 0));
    if (c.node.hasAttr("max")) hi = constant(x.dtype, c.node.attrFloat("max", 0));
  } else {
    lo = scalarInput(c, 1, x.dtype);
    hi = scalarInput(c, 2, x.dtype);
  }
  c.out(0, mapUnary(c, x, [=](VRef v) {
          if (lo) v = binary(BinaryOp::Max, v, *lo);
          if (hi) v = binary(BinaryOp::Min, v, *hi);
          return v;
        }));
}

void lowerElu(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 1.0f);
  bool selu = c.node.op == "Selu";
  double scale = selu ? c.node.attrFloat("gamma", 1.05070102214813232421875f) : 1.0;
  if (selu) alpha = c.node.attrFloat("alpha", 1.67326319217681884765625f);
  c.out(0, mapUnary(c, c.in(0), [=](VRef x) {
          VRef neg = binary(BinaryOp::Mul, constant(x->dtype, alpha),
                            binary(BinaryOp::Sub, unary(UnaryOp::Exp, x), constant(x->dtype, 1)));
          VRef r = loop::select(binary(BinaryOp::Gt, x, constant(x->dtype, 0)), x, neg);
          return selu ? binary(BinaryOp::Mul, r, constant(x->dtype, scale)) : r;
        }));
}

void lowerGelu(OpCtx &c) {
  bool tanhApprox = c.node.attrString("approximate", "none") == "tanh";
  c.out(0, mapUnary(c, c.in(0), [=](VRef x) {
          DType t = x->dtype;
          VRef half = binary(BinaryOp::Mul, x, constant(t, 0.5));
          VRef inner;
          if (tanhApprox) {
            VRef cube = binary(BinaryOp::Mul, binary(BinaryOp::Mul, x, x), x);
            VRef arg = binary(
                BinaryOp::Mul, constant(t, std::sqrt(2.0 / M_PI)),
                binary(BinaryOp::Add, x, binary(BinaryOp::Mul, constant(t, 0.044715), cube)));
            inner = unary(UnaryOp::Tanh, arg);
          } else {
            inner = unary(UnaryOp::Erf, binary(BinaryOp::Mul, x, constant(t, M_SQRT1_2)));
          }
          return binary(BinaryOp::Mul, half, binary(BinaryOp::Add, constant(t, 1), inner));
        }));
}

void lowerSoftplus(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0), [](VRef x) {
          return unary(UnaryOp::Log,
                       binary(BinaryOp::Add, unary(UnaryOp::Exp, x), constant(x->dtype, 1)));
        }));
}

void lowerSoftsign(OpCtx &c) {
  c.out(0, mapUnary(c, c.in(0), [](VRef x) {
          return binary(BinaryOp::Div, x,
                        binary(BinaryOp::Add, unary(UnaryOp::Abs, x), constant(x->dtype, 1)));
        }));
}

void lowerThresholdedRelu(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 1.0f);
  c.out(0, mapUnary(c, c.in(0), [=](VRef x) {
          return loop::select(binary(BinaryOp::Gt, x, constant(x->dtype, alpha)), x,
                              constant(x->dtype, 0));
        }));
}

void lowerPRelu(OpCtx &c) {
  LTensor x = c.in(0), slope = c.in(1);
  requireSameDtype(c, x, slope, "X and slope");
  // Before opset 7 a 1-D slope is per channel (axis 1), not numpy-broadcast.
  if (c.node.opset < 7 && slope.rank() == 1 && x.rank() > 2) {
    ir::Shape s{slope.shape[0]};
    for (int d = 2; d < x.rank(); ++d)
      s.push_back(c.ctx().constant(1));
    slope = reshapeView(c.ctx(), slope, s);
  }
  ir::Shape shape = broadcastShapes(x.shape, slope.shape, c.node.describe());
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(x.dtype, shape, [=](const Index &i) {
    VRef v = loadBroadcast(*ctx, x, shape, i), s = loadBroadcast(*ctx, slope, shape, i);
    return loop::select(loop::binary(BinaryOp::Lt, v, loop::constant(v->dtype, 0)),
                        binary(BinaryOp::Mul, v, s), v);
  }));
}

/// BitCast (opset 26): each element's bits read as `to`, a type of the same size. Bool and
/// uint8 share their representation (0 or 1); float16/bfloat16/float8 values are encoded to
/// their bits (or decoded from them) by the printer, since kernels compute them as float.
void lowerBitCast(OpCtx &c) {
  int code = static_cast<int>(c.node.attrInt("to", 0));
  DType to;
  if (!dtypeFromOnnx(code, to))
    fail("{}: BitCast to ONNX type {} is not supported", c.node.describe(), onnxTypeName(code));
  LTensor x = c.in(0);
  DType from = x.dtype;
  if (dtypeSize(from) != dtypeSize(to) || from == DType::String || to == DType::String)
    fail("{}: BitCast from {} to {} needs two non-string types of one size", c.node.describe(),
         dtypeName(from), dtypeName(to));
  c.out(0, mapUnary(c, x, [from, to](VRef v) {
          if (from == DType::Bool || to == DType::Bool) return loop::cast(v, to);
          return loop::bitcast(v, to);
        }));
}

/// Cast-25's round_mode for float8e8m0 as kiln_e8m0_encode's mode (0 up, 1 down, 2 nearest).
int e8m0RoundMode(OpCtx &c) {
  std::string mode = c.node.attrString("round_mode", "up");
  if (mode == "up") return 0;
  if (mode == "down") return 1;
  if (mode == "nearest") return 2;
  fail("{}: round_mode '{}' is not one of up, down, nearest", c.node.describe(), mode);
}

/// ONNX's float8e8m0 rounding (kiln_e8m0_encode) spelled in integer ops on the float32 bits,
/// so every round mode and `saturate` fit the loop IR's one Cast (which rounds "up",
/// saturating): the result is the exact power of two (or NaN) the code stands for.
VRef castToE8M0(VRef v, bool saturate, int mode) {
  auto i64 = [](int64_t k) { return loop::constantInt(DType::Int64, k); };
  VRef bits = loop::cast(loop::bitcast(loop::cast(v, DType::Float32), DType::UInt32), DType::Int64);
  auto has = [&](int64_t mask) {
    return binary(BinaryOp::Ne, binary(BinaryOp::BitAnd, bits, i64(mask)), i64(0));
  };
  VRef e = binary(BinaryOp::BitAnd, binary(BinaryOp::ShiftR, bits, i64(23)), i64(0xff));
  VRef up = loop::constantInt(DType::Bool, 0);
  if (mode == 0) up = has(0x7fffff);
  if (mode == 2)
    up = binary(BinaryOp::And, has(0x400000),
                binary(BinaryOp::Or, binary(BinaryOp::Or, has(0x200000), has(0x1fffff)),
                       binary(BinaryOp::Gt, e, i64(0))));
  if (saturate) up = binary(BinaryOp::And, up, binary(BinaryOp::Ne, e, i64(0xfe)));
  VRef code = loop::select(binary(BinaryOp::Eq, e, i64(0xff)), i64(0xff),
                           binary(BinaryOp::Add, e, loop::cast(up, DType::Int64)));
  // The float32 whose value the code stands for: 2^(code - 127), NaN for 0xff.
  VRef f32bits = loop::select(binary(BinaryOp::Eq, code, i64(0xff)), i64(0x7fc00000),
                              loop::select(binary(BinaryOp::Eq, code, i64(0)), i64(0x400000),
                                           binary(BinaryOp::ShiftL, code, i64(23))));
  VRef value = loop::bitcast(loop::cast(f32bits, DType::UInt32), DType::Float32);
  return loop::cast(value, DType::Float8E8M0);
}

/// Cast and CastLike: input 0 to `to`, with the node's `saturate` (and, to E8M0, `round_mode`).
void castInputTo(OpCtx &c, DType to) {
  LTensor x = c.in(0);
  if (x.dtype == DType::String || to == DType::String) {
    c.out(0, castString(c, x, to));
    return;
  }
  bool sat = c.node.attrInt("saturate", 1) != 0;
  if (to == DType::Float8E8M0) {
    int mode = e8m0RoundMode(c);
    c.out(0, mapUnary(c, x, [sat, mode](VRef v) { return castToE8M0(v, sat, mode); }));
    return;
  }
  c.out(0, mapUnary(c, x, [to, sat](VRef v) { return castSaturating(v, to, sat); }));
}

void lowerCast(OpCtx &c) {
  DType to;
  if (!dtypeFromOnnx(static_cast<int>(c.node.attrInt("to", 0)), to))
    fail("{}: Cast to ONNX type {} is not supported", c.node.describe(),
         onnxTypeName(static_cast<int>(c.node.attrInt("to", 0))));
  castInputTo(c, to);
}

void lowerCastLike(OpCtx &c) {
  castInputTo(c, c.in(1).dtype);
}

void lowerWhere(OpCtx &c) {
  LTensor cond = c.in(0), x = c.in(1), y = c.in(2);
  if (cond.dtype != DType::Bool)
    fail("{}: condition must be bool, got {}", c.node.describe(), dtypeName(cond.dtype));
  requireSameDtype(c, x, y, "X and Y");
  ir::Shape shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, c.node.describe()),
                                    y.shape, c.node.describe());
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(x.dtype, shape, [=](const Index &i) {
    return loop::select(loadBroadcast(*ctx, cond, shape, i), loadBroadcast(*ctx, x, shape, i),
                        loadBroadcast(*ctx, y, shape, i));
  }));
}

void lowerIdentity(OpCtx &c) {
  c.out(0, c.in(0));
}

void lowerBitShift(OpCtx &c) {
  bool left = c.node.attrString("direction", "") == "LEFT";
  c.out(0, broadcastBinary(c, c.in(0), c.in(1), left ? BinaryOp::ShiftL : BinaryOp::ShiftR));
}

void lowerIsInf(OpCtx &c) {
  bool pos = c.node.attrInt("detect_positive", 1), neg = c.node.attrInt("detect_negative", 1);
  c.out(0, mapUnary(c, c.in(0), [=](VRef x) {
          VRef p = unary(UnaryOp::IsPosInf, x), n = unary(UnaryOp::IsNegInf, x);
          if (pos && neg) return binary(BinaryOp::Or, p, n);
          if (pos) return p;
          if (neg) return n;
          return loop::constantInt(DType::Bool, 0);
        }));
}

} // namespace

// loop::cast saturates (Cast's default); without saturation, values that round past the
// largest finite value (and ±inf) become ±inf for e5m2 and NaN for the other float8 formats.
VRef castSaturating(VRef v, DType to, bool saturate) {
  VRef r = loop::cast(v, to);
  int f = minifloatFormat(to);
  if (saturate || f < 0 || to == DType::Float4E2M1 || !isFloat(v->dtype)) return r;
  kiln_mf_format m = kiln_mf_fmt(f);
  double max = kiln_mf_decode(m.maxcode, f), below = kiln_mf_decode(m.maxcode - 1, f);
  double tie = max + (max - below) / 2; // rounds to max only when max's mantissa is even
  VRef mag = loop::unary(UnaryOp::Abs, v);
  VRef over = loop::binary((m.maxcode & 1) ? BinaryOp::Ge : BinaryOp::Gt, mag,
                           loop::constant(v->dtype, tie));
  VRef overflow = loop::constant(to, NAN);
  if (to == DType::Float8E5M2)
    overflow = loop::select(loop::binary(BinaryOp::Lt, v, loop::constant(v->dtype, 0)),
                            loop::constant(to, -INFINITY), loop::constant(to, INFINITY));
  return loop::select(over, overflow, r);
}

void registerElementwiseOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Add", 1, lowerBinary<BinaryOp::Add>},
                        {"Sub", 1, lowerBinary<BinaryOp::Sub>},
                        {"Mul", 1, lowerBinary<BinaryOp::Mul>},
                        {"Div", 1, lowerDiv},
                        {"Pow", 1, lowerPow},
                        {"Mod", 10, lowerMod},
                        {"Equal", 1, lowerBinary<BinaryOp::Eq>},
                        {"Less", 1, lowerBinary<BinaryOp::Lt>},
                        {"LessOrEqual", 12, lowerBinary<BinaryOp::Le>},
                        {"Greater", 1, lowerBinary<BinaryOp::Gt>},
                        {"GreaterOrEqual", 12, lowerBinary<BinaryOp::Ge>},
                        {"And", 1, lowerBinary<BinaryOp::And>},
                        {"Or", 1, lowerBinary<BinaryOp::Or>},
                        {"Xor", 1, lowerBinary<BinaryOp::Xor>},
                        {"BitwiseAnd", 18, lowerBinary<BinaryOp::BitAnd>},
                        {"BitwiseOr", 18, lowerBinary<BinaryOp::BitOr>},
                        {"BitwiseXor", 18, lowerBinary<BinaryOp::BitXor>},
                        {"BitwiseNot", 18, lowerUnary<UnaryOp::BitNot>},
                        {"BitShift", 11, lowerBitShift},
                        {"Sum", 1, lowerSum},
                        {"Max", 1, lowerSum},
                        {"Min", 1, lowerSum},
                        {"Mean", 1, lowerSum},
                        {"Neg", 1, lowerUnary<UnaryOp::Neg>},
                        {"Abs", 1, lowerUnary<UnaryOp::Abs>},
                        {"Exp", 1, lowerUnary<UnaryOp::Exp>},
                        {"Log", 1, lowerUnary<UnaryOp::Log>},
                        {"Sqrt", 1, lowerUnary<UnaryOp::Sqrt>},
                        {"Tanh", 1, lowerUnary<UnaryOp::Tanh>},
                        {"Erf", 9, lowerUnary<UnaryOp::Erf>},
                        {"Sigmoid", 1, lowerUnary<UnaryOp::Sigmoid>},
                        {"Floor", 1, lowerUnary<UnaryOp::Floor>},
                        {"Ceil", 1, lowerUnary<UnaryOp::Ceil>},
                        {"Round", 11, lowerUnary<UnaryOp::Round>},
                        {"Sin", 7, lowerUnary<UnaryOp::Sin>},
                        {"Cos", 7, lowerUnary<UnaryOp::Cos>},
                        {"Tan", 7, lowerUnary<UnaryOp::Tan>},
                        {"Asin", 7, lowerUnary<UnaryOp::Asin>},
                        {"Acos", 7, lowerUnary<UnaryOp::Acos>},
                        {"Atan", 7, lowerUnary<UnaryOp::Atan>},
                        {"Sinh", 9, lowerUnary<UnaryOp::Sinh>},
                        {"Cosh", 9, lowerUnary<UnaryOp::Cosh>},
                        {"Asinh", 9, lowerUnary<UnaryOp::Asinh>},
                        {"Acosh", 9, lowerUnary<UnaryOp::Acosh>},
                        {"Atanh", 9, lowerUnary<UnaryOp::Atanh>},
                        {"Not", 1, lowerUnary<UnaryOp::Not>},
                        {"Sign", 9, lowerUnary<UnaryOp::Sign>},
                        {"Reciprocal", 1, lowerUnary<UnaryOp::Reciprocal>},
                        {"IsNaN", 9, lowerUnary<UnaryOp::IsNaN>},
                        {"IsInf", 10, lowerIsInf},
                        {"Relu", 1, lowerRelu},
                        {"LeakyRelu", 1, lowerLeakyRelu},
                        {"PRelu", 1, lowerPRelu},
                        {"HardSigmoid", 1, lowerHardSigmoid},
                        {"HardSwish", 14, lowerHardSwish},
                        {"Swish", 24, lowerSwish},
                        {"Mish", 18, lowerMish},
                        {"Clip", 1, lowerClip},
                        {"Elu", 1, lowerElu},
                        {"Selu", 1, lowerElu},
                        {"Gelu", 20, lowerGelu},
                        {"Softplus", 1, lowerSoftplus},
                        {"Softsign", 1, lowerSoftsign},
                        {"ThresholdedRelu", 10, lowerThresholdedRelu},
                        {"Cast", 1, lowerCast},
                        {"BitCast", 26, lowerBitCast},
                        {"CastLike", 15, lowerCastLike},
                        {"Where", 9, lowerWhere},
                        {"Identity", 1, lowerIdentity},
                    });
}

} // namespace kiln::lower
