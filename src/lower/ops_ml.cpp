// The ai.onnx.ml domain (scikit-learn / XGBoost exports): Binarizer, ArrayFeatureExtractor,
// Scaler, Normalizer, OneHotEncoder, LinearRegressor, LinearClassifier, and the helpers the
// tree ensembles share. Attribute tables become constants; everything else is plain
// pointwise and reduction code, so it runs wherever those kernels run.
#include "lower/ml_common.h"

#include <cmath>
#include <cstring>
#include <map>

namespace kiln::lower {
namespace ml {

using loop::ReduceOp;

std::vector<double> tensorAttrDoubles(const ir::Node &n, const std::string &name) {
  std::vector<double> r;
  auto it = n.attrs.find(name);
  if (it == n.attrs.end()) return r;
  if (!it->second.tensor) fail("{}: attribute '{}' must be a tensor", n.describe(), name);
  const ir::TensorData &t = *it->second.tensor;
  for (int64_t i = 0; i < t.numel(); ++i)
    r.push_back(t.getDouble(i));
  return r;
}

std::vector<double> attrDoubles(const ir::Node &n, const std::string &name) {
  if (n.hasAttr(name + "_as_tensor")) return tensorAttrDoubles(n, name + "_as_tensor");
  std::vector<float> f = n.attrFloats(name);
  return {f.begin(), f.end()};
}

PostTransform parsePostTransform(OpCtx &c, const std::string &name) {
  if (name == "NONE") return PostTransform::None;
  if (name == "SOFTMAX") return PostTransform::Softmax;
  if (name == "LOGISTIC") return PostTransform::Logistic;
  if (name == "SOFTMAX_ZERO") return PostTransform::SoftmaxZero;
  if (name == "PROBIT") return PostTransform::Probit;
  fail("{}: post_transform '{}' is not one of NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO, PROBIT",
       c.node.describe(), name);
}

namespace {
VRef f64(double v) {
  return loop::constant(DType::Float64, v);
}
} // namespace

LTensor applyPostTransform(OpCtx &c, const LTensor &s, PostTransform pt) {
  switch (pt) {
  case PostTransform::None:
    return s;
  case PostTransform::Probit:
    c.unsupported("post_transform PROBIT (kiln has no inverse error function)");
  case PostTransform::Logistic:
    return mapUnary(c, s, [](VRef v) { return loop::unary(UnaryOp::Sigmoid, v); });
  case PostTransform::Softmax:
  case PostTransform::SoftmaxZero:
    break;
  }
  // Softmax along the last axis; SOFTMAX_ZERO leaves (near-)zero scores at 0 and out of the sum.
  bool zero = pt == PostTransform::SoftmaxZero;
  LTensor src = c.realize(s);
  LTensor mx = c.reduce(src, {1}, true, ReduceOp::Max, DType::Float64);
  auto keep = [](VRef v) {
    return loop::binary(BinaryOp::Gt, loop::unary(UnaryOp::Abs, v), f64(1e-7));
  };
  LTensor e = c.realize(c.pointwise(DType::Float64, s.shape, [=](const Index &i) {
    VRef v = src.load(i);
    VRef x = loop::unary(UnaryOp::Exp, loop::binary(BinaryOp::Sub, v, mx.load({i[0], c0(i)})));
    return zero ? loop::select(keep(v), x, f64(0)) : x;
  }));
  LTensor sum = c.reduce(e, {1}, true, ReduceOp::Sum, DType::Float64);
  return c.pointwise(DType::Float64, s.shape, [=](const Index &i) {
    VRef d = sum.load({i[0], c0(i)});
    VRef r = loop::binary(BinaryOp::Div, e.load(i), d);
    return zero ? loop::select(loop::binary(BinaryOp::Gt, d, f64(0)), r, f64(0)) : r;
  });
}

LTensor argmaxLast(OpCtx &c, const LTensor &scores) {
  return c.reduce(scores, {scores.rank() - 1}, false, ReduceOp::ArgMax, DType::Float64);
}

LTensor pickLabels(OpCtx &c, const LTensor &idx, const std::vector<int64_t> &labels) {
  LTensor tab =
      constTable(c, {(int64_t)labels.size()}, labels.data(), DType::Int64, c.node.name + "_labels");
  LTensor src = c.realize(idx);
  Lowerer *low = &c.lowerer();
  sym::Expr n = tab.shape[0];
  return c.pointwise(DType::Int64, idx.shape, [=](const Index &i) {
    sym::Expr var = low->newVar("lab", n);
    VRef k =
        loop::binary(BinaryOp::Max, loop::binary(BinaryOp::Min, src.load(i), loop::symInt(n - 1)),
                     loop::constantInt(DType::Int64, 0));
    return loop::bindIndirect(tab.load({var}), var, k);
  });
}

} // namespace ml

namespace {

using namespace ml;

VRef f64(double v) {
  return loop::constant(DType::Float64, v);
}

/// X as [N, F] (a 1-D X is one row), checked to be a number type.
LTensor asRows(OpCtx &c, const LTensor &x) {
  if (x.dtype == DType::String || x.dtype == DType::Bool)
    fail("{}: input of type {} is not supported (numbers only)", c.node.describe(),
         dtypeName(x.dtype));
  if (x.rank() == 2) return x;
  if (x.rank() == 1) return reshapeView(c.ctx(), x, {c.ctx().constant(1), x.shape[0]});
  fail("{}: input must be [N, F] or [F], got {}", c.node.describe(), ir::shapeToString(x.shape));
}

void lowerBinarizer(OpCtx &c) {
  LTensor x = c.in(0);
  double t = c.node.attrFloat("threshold", 0.0f);
  DType dt = x.dtype;
  c.out(0, mapUnary(c, x, [=](VRef v) {
          return loop::select(loop::binary(BinaryOp::Gt, v, loop::constant(dt, t)),
                              loop::constant(dt, 1), loop::constant(dt, 0));
        }));
}

// Y = X[..., indices]; a 1-D X gives [1, len(indices)].
void lowerArrayFeatureExtractor(OpCtx &c) {
  LTensor x = c.in(0), ind = c.in(1);
  if (ind.dtype != DType::Int64 && ind.dtype != DType::Int32)
    fail("{}: indices must be int64, got {}", c.node.describe(), dtypeName(ind.dtype));
  sym::Context &ctx = c.ctx();
  sym::Expr count = product(ctx, ind.shape, 0, ind.shape.size());
  if (x.rank() == 1) x = reshapeView(ctx, x, {ctx.constant(1), x.shape[0]});
  ir::Shape shape(x.shape.begin(), x.shape.end() - 1);
  shape.push_back(count);
  LTensor src = x.buffer ? x : c.realize(x);
  LTensor flatInd = reshapeView(ctx, ind, {count});
  sym::Expr dim = x.shape.back();
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(x.dtype, shape, [=](const Index &i) {
    VRef k = loop::cast(flatInd.load({i.back()}), DType::Int64);
    sym::Expr var = low->newVar("afe", dim);
    Index at(i.begin(), i.end() - 1);
    at.push_back(var);
    VRef clamped =
        loop::binary(BinaryOp::Max, loop::binary(BinaryOp::Min, k, loop::symInt(dim - 1)),
                     loop::constantInt(DType::Int64, 0));
    return loop::bindIndirect(src.load(at), var, clamped);
  }));
}

/// A per-feature list (one value broadcast to all) as a constant [F] float64 table.
LTensor featureTable(OpCtx &c, std::vector<double> v, sym::Expr features, const char *what,
                     double dflt) {
  int64_t f = c.requireStatic(features, "the number of features");
  if (v.empty()) v.assign(f, dflt);
  if (v.size() == 1) v.assign(f, v[0]);
  if ((int64_t)v.size() != f)
    fail("{}: {} has {} values for {} features", c.node.describe(), what, v.size(), f);
  return constTable(c, {f}, v.data(), DType::Float64, c.node.name + "_" + what);
}

void lowerScaler(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() < 1) fail("{}: input must have rank >= 1", c.node.describe());
  std::vector<float> off = c.node.attrFloats("offset"), sc = c.node.attrFloats("scale");
  LTensor o = featureTable(c, {off.begin(), off.end()}, x.shape.back(), "offset", 0);
  LTensor s = featureTable(c, {sc.begin(), sc.end()}, x.shape.back(), "scale", 1);
  c.out(0, c.pointwise(DType::Float32, x.shape, [=](const Index &i) {
    VRef v = loop::cast(x.load(i), DType::Float64);
    VRef r = loop::binary(BinaryOp::Mul, loop::binary(BinaryOp::Sub, v, o.load({i.back()})),
                          s.load({i.back()}));
    return loop::cast(r, DType::Float32);
  }));
}

void lowerNormalizer(OpCtx &c) {
  LTensor x = asRows(c, c.in(0));
  std::string norm = c.node.attrString("norm", "MAX");
  ReduceOp op = norm == "MAX" ? ReduceOp::Max : ReduceOp::Sum;
  if (norm != "MAX" && norm != "L1" && norm != "L2")
    fail("{}: norm '{}' is not MAX, L1 or L2", c.node.describe(), norm);
  LTensor src = c.realize(x);
  LTensor d = c.reduce(src, {1}, true, op, DType::Float64, [norm](VRef v) {
    v = loop::cast(v, DType::Float64);
    if (norm == "L1") return loop::unary(UnaryOp::Abs, v);
    if (norm == "L2") return loop::binary(BinaryOp::Mul, v, v);
    return v;
  });
  LTensor y = c.pointwise(DType::Float32, x.shape, [=](const Index &i) {
    VRef den = d.load({i[0], c0(i)});
    if (norm == "L2") den = loop::unary(UnaryOp::Sqrt, den);
    VRef r = loop::binary(BinaryOp::Div, loop::cast(src.load(i), DType::Float64), den);
    return loop::cast(r, DType::Float32);
  });
  c.out(0, c.in(0).rank() == 1 ? reshapeView(c.ctx(), y, c.in(0).shape) : y);
}

// Y[..., j] = (X[...] == cats[j]); unknown categories give a zero row (zeros=1).
void lowerOneHotEncoder(OpCtx &c) {
  LTensor x = c.in(0);
  if (c.node.hasAttr("cats_strings"))
    c.unsupported("OneHotEncoder with cats_strings (string constants are not supported)");
  std::vector<int64_t> cats = c.node.attrInts("cats_int64s");
  if (cats.empty()) fail("{}: cats_int64s is missing or empty", c.node.describe());
  if (c.node.attrInt("zeros", 1) == 0)
    c.unsupported("OneHotEncoder with zeros=0 (an unknown category is a run-time error)");
  if (x.dtype == DType::String) fail("{}: string input needs cats_strings", c.node.describe());
  LTensor tab =
      constTable(c, {(int64_t)cats.size()}, cats.data(), DType::Int64, c.node.name + "_cats");
  ir::Shape shape = x.shape;
  shape.push_back(tab.shape[0]);
  c.out(0, c.pointwise(DType::Float32, shape, [=](const Index &i) {
    Index xi(i.begin(), i.end() - 1);
    VRef eq =
        loop::binary(BinaryOp::Eq, loop::cast(x.load(xi), DType::Int64), tab.load({i.back()}));
    return loop::select(eq, loop::constant(DType::Float32, 1), loop::constant(DType::Float32, 0));
  }));
}

/// X·Wᵀ + b for W [T, F] (row-major `coef`), as float64 [N, T].
LTensor linearScores(OpCtx &c, const LTensor &x, const std::vector<double> &coef,
                     std::vector<double> bias, int64_t targets) {
  int64_t f = c.requireStatic(x.shape[1], "the number of features");
  if (targets <= 0 || (int64_t)coef.size() != targets * f)
    fail("{}: coefficients has {} values; expected {} targets x {} features", c.node.describe(),
         coef.size(), targets, f);
  if (bias.empty()) bias.assign(targets, 0);
  if ((int64_t)bias.size() != targets)
    fail("{}: intercepts has {} values for {} targets", c.node.describe(), bias.size(), targets);
  LTensor w = constTable(c, {targets, f}, coef.data(), DType::Float64, c.node.name + "_coef");
  LTensor b = constTable(c, {targets}, bias.data(), DType::Float64, c.node.name + "_bias");
  sym::Context &ctx = c.ctx();
  ir::Shape prodShape{x.shape[0], ctx.constant(targets), x.shape[1]};
  LTensor prods = c.pointwise(DType::Float64, prodShape, [=](const Index &i) {
    return loop::binary(BinaryOp::Mul, loop::cast(x.load({i[0], i[2]}), DType::Float64),
                        w.load({i[1], i[2]}));
  });
  LTensor dot = c.reduce(prods, {2}, false, ReduceOp::Sum, DType::Float64);
  return c.pointwise(DType::Float64, dot.shape, [=](const Index &i) {
    return loop::binary(BinaryOp::Add, dot.load(i), b.load({i[1]}));
  });
}

void lowerLinearRegressor(OpCtx &c) {
  LTensor x = asRows(c, c.in(0));
  std::vector<float> coef = c.node.attrFloats("coefficients"),
                     bias = c.node.attrFloats("intercepts");
  int64_t targets = c.node.attrInt("targets", 1);
  LTensor s = linearScores(c, x, {coef.begin(), coef.end()}, {bias.begin(), bias.end()}, targets);
  s = applyPostTransform(c, s, parsePostTransform(c, c.node.attrString("post_transform", "NONE")));
  c.out(0, mapUnary(c, s, [](VRef v) { return loop::cast(v, DType::Float32); }));
}

void lowerLinearClassifier(OpCtx &c) {
  LTensor x = asRows(c, c.in(0));
  if (c.node.hasAttr("classlabels_strings"))
    c.unsupported("LinearClassifier with classlabels_strings (string constants are not "
                  "supported)");
  std::vector<int64_t> labels = c.node.attrInts("classlabels_ints");
  if (labels.empty()) fail("{}: classlabels_ints is missing", c.node.describe());
  std::vector<float> coef = c.node.attrFloats("coefficients"),
                     bias = c.node.attrFloats("intercepts");
  int64_t f = c.requireStatic(x.shape[1], "the number of features");
  int64_t classes = f > 0 ? (int64_t)coef.size() / f : 0;
  if (classes != (int64_t)labels.size())
    c.unsupported(fmt::format("LinearClassifier with {} coefficient rows for {} class labels "
                              "(kiln needs one row per class)",
                              classes, labels.size()));
  LTensor s = linearScores(c, x, {coef.begin(), coef.end()}, {bias.begin(), bias.end()}, classes);
  s = c.realize(
      applyPostTransform(c, s, parsePostTransform(c, c.node.attrString("post_transform", "NONE"))));
  c.out(0, pickLabels(c, argmaxLast(c, s), labels));
  c.out(1, mapUnary(c, s, [](VRef v) { return loop::cast(v, DType::Float32); }));
}

/// A LabelEncoder list attribute (keys_* / values_* / default_*, or the *_tensor form) as
/// numbers with its element type; strings are reported as DType::String with no numbers.
struct EncoderList {
  DType dtype = DType::Int64;
  std::vector<double> values;
  bool present = false;
};

EncoderList encoderList(const ir::Node &n, const std::string &kind) {
  EncoderList r;
  auto tensor = n.attrs.find(kind + "_tensor");
  if (tensor != n.attrs.end() && tensor->second.tensor) {
    const ir::TensorData &t = *tensor->second.tensor;
    r.present = true;
    r.dtype = t.dtype;
    if (t.dtype != DType::String)
      for (int64_t i = 0; i < t.numel(); ++i)
        r.values.push_back(t.getDouble(i));
    return r;
  }
  std::string plural = kind == "default" ? "" : "s";
  if (n.hasAttr(kind + "_strings") || n.hasAttr(kind + "_string")) {
    r.present = true;
    r.dtype = DType::String;
  } else if (n.hasAttr(kind + "_int64" + plural)) {
    r.present = true;
    r.dtype = DType::Int64;
    if (kind == "default")
      r.values = {(double)n.attrInt("default_int64", -1)};
    else
      for (int64_t v : n.attrInts(kind + "_int64s"))
        r.values.push_back((double)v);
  } else if (n.hasAttr(kind + "_float" + plural)) {
    r.present = true;
    r.dtype = DType::Float32;
    if (kind == "default")
      r.values = {n.attrFloat("default_float", -0.0f)};
    else
      for (float v : n.attrFloats(kind + "_floats"))
        r.values.push_back(v);
  }
  return r;
}

/// The index of x's element among string keys (-1: none), through the string lookup shim.
LTensor stringKeyIndex(OpCtx &c, const LTensor &x, const std::vector<std::string> &keys) {
  loop::Buffer *xb = c.realize(x).buffer;
  loop::Buffer *out = c.prog().newBuffer(DType::Int64, x.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::StringLookup);
  k->ext.inputs = {xb};
  k->ext.outputs = {out};
  loop::ExternArg count = externArg(loop::ExternArg::Kind::Value);
  count.dims = {product(c.ctx(), x.shape, 0, x.shape.size())};
  loop::ExternArg table = externArg(loop::ExternArg::Kind::Strings);
  table.strings = keys;
  k->ext.args = {externArg(loop::ExternArg::Kind::Site),
                 externArg(loop::ExternArg::Kind::Buffer, xb),
                 count,
                 table,
                 externInt(static_cast<int64_t>(keys.size())),
                 externArg(loop::ExternArg::Kind::Buffer, out)};
  return fromBuffer(c.ctx(), out);
}

/// The index of x's element among numeric keys (-1: none; NaN matches a NaN key): a max
/// over the keys of (match ? key index : -1).
LTensor numericKeyIndex(OpCtx &c, const LTensor &x, const std::vector<double> &keys) {
  LTensor kt =
      constTable(c, {(int64_t)keys.size()}, keys.data(), DType::Float64, c.node.name + "_keys");
  ir::Shape matchShape = x.shape;
  matchShape.push_back(kt.shape[0]);
  LTensor match = c.pointwise(DType::Int64, matchShape, [=](const Index &i) {
    VRef v = loop::cast(x.load(Index(i.begin(), i.end() - 1)), DType::Float64);
    VRef key = kt.load({i.back()});
    VRef eq = loop::binary(BinaryOp::Or, loop::binary(BinaryOp::Eq, v, key),
                           loop::binary(BinaryOp::And, loop::unary(UnaryOp::IsNaN, v),
                                        loop::unary(UnaryOp::IsNaN, key)));
    return loop::select(eq, loop::symInt(i.back()), loop::constantInt(DType::Int64, -1));
  });
  return c.reduce(match, {x.rank()}, false, ReduceOp::Max, DType::Int64);
}

// Y = values[j] where keys[j] == X (NaN keys match NaN), else the default. The index of the
// matching key is one max-reduction over the keys (string keys: the string lookup shim);
// string values are refused (kiln has no string constants).
void lowerLabelEncoder(OpCtx &c) {
  const ir::Node &n = c.node;
  LTensor x = c.in(0);
  EncoderList keys = encoderList(n, "keys"), vals = encoderList(n, "values");
  if (n.hasAttr("classes_strings") || vals.dtype == DType::String)
    c.unsupported("LabelEncoder with string values (kiln has no string constants yet)");
  if (!keys.present || !vals.present)
    fail("{}: keys_* and values_* attributes are required", n.describe());
  if ((x.dtype == DType::String) != (keys.dtype == DType::String))
    fail("{}: input of type {} with keys of type {}", n.describe(), dtypeName(x.dtype),
         dtypeName(keys.dtype));
  std::vector<std::string> keyStrings;
  if (keys.dtype == DType::String) {
    auto t = n.attrs.find("keys_tensor");
    keyStrings = t != n.attrs.end() && t->second.tensor ? t->second.tensor->strings
                                                        : n.attrStrings("keys_strings");
    for (const std::string &k : keyStrings)
      if (k.find('\0') != std::string::npos)
        fail("{}: a key contains a NUL byte; kiln passes string keys as C strings", n.describe());
    keys.values.assign(keyStrings.size(), 0); // only the count matters below
  }
  if (keys.values.size() != vals.values.size() || keys.values.empty())
    fail("{}: {} keys for {} values", n.describe(), keys.values.size(), vals.values.size());
  EncoderList dflt = encoderList(n, "default");
  double dv = vals.dtype == DType::Int64 ? -1.0 : isFloat(vals.dtype) ? -0.0 : 0.0;
  if (dflt.present && !dflt.values.empty()) dv = dflt.values[0];
  int64_t k = (int64_t)keys.values.size();
  LTensor vt = constTable(c, {k}, vals.values.data(), DType::Float64, n.name + "_values");
  LTensor idx = keys.dtype == DType::String ? stringKeyIndex(c, x, keyStrings)
                                            : numericKeyIndex(c, x, keys.values);
  Lowerer *low = &c.lowerer();
  DType out = vals.dtype;
  sym::Expr kE = vt.shape[0];
  c.out(0, c.pointwise(out, x.shape, [=](const Index &i) {
    VRef j = idx.load(i);
    sym::Expr var = low->newVar("le", kE);
    VRef safe = loop::binary(BinaryOp::Max, j, loop::constantInt(DType::Int64, 0));
    VRef hit = loop::bindIndirect(vt.load({var}), var, safe);
    VRef r = loop::select(loop::binary(BinaryOp::Ge, j, loop::constantInt(DType::Int64, 0)), hit,
                          loop::constant(DType::Float64, dv));
    return loop::cast(r, out);
  }));
}

} // namespace

namespace ml {
sym::Expr c0(const Index &i) {
  return i[0].ctx().constant(0);
}
} // namespace ml

const std::vector<OpInfo> &mlOpRegistry() {
  static const std::vector<OpInfo> ops = [] {
    std::vector<OpInfo> r = {
        {"Binarizer", 1, lowerBinarizer},
        {"ArrayFeatureExtractor", 1, lowerArrayFeatureExtractor},
        {"Scaler", 1, lowerScaler},
        {"Normalizer", 1, lowerNormalizer},
        {"OneHotEncoder", 1, lowerOneHotEncoder},
        {"LinearRegressor", 1, lowerLinearRegressor},
        {"LinearClassifier", 1, lowerLinearClassifier},
        {"LabelEncoder", 1, lowerLabelEncoder},
    };
    registerTreeOps(r);
    return r;
  }();
  return ops;
}

const OpInfo *findMlOp(const std::string &op) {
  for (const OpInfo &o : mlOpRegistry())
    if (op == o.name) return &o;
  return nullptr;
}

} // namespace kiln::lower
