// Tree ensembles of ai.onnx.ml: TreeEnsemble (opset 5), TreeEnsembleRegressor and
// TreeEnsembleClassifier (opsets 1-3). Every form is first normalised to one table layout
// (a Forest): per node its feature, threshold, which comparisons send it to the true branch,
// and its two successors; a leaf points at itself. Y[n, t] is then one reduction over the
// trees whose body walks a tree `depth` steps through those constant tables (indirect loads).
#include "lower/ml_common.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

namespace kiln::lower {

namespace {

using namespace ml;
using loop::ReduceOp;

enum class Aggregate { Sum, Average, Min, Max };

struct Forest {
  // Per node. A leaf has no flags set and both successors equal to itself.
  std::vector<int64_t> feature, next_true, next_false;
  std::vector<double> threshold;
  std::vector<uint8_t> on_lt, on_eq, on_gt, on_nan; // conditions that take the true branch
  std::vector<bool> leaf;
  std::vector<int64_t> roots;
  int64_t targets = 1;
  // weights[node * targets + t], summed over a leaf's votes; voted marks (node, t) with one.
  std::vector<double> weights;
  std::vector<bool> voted;

  int64_t addNode() {
    for (auto *v : {&feature, &next_true, &next_false})
      v->push_back(0);
    threshold.push_back(0);
    for (auto *v : {&on_lt, &on_eq, &on_gt, &on_nan})
      v->push_back(0);
    leaf.push_back(false);
    return (int64_t)feature.size() - 1;
  }
  int64_t addLeaf() {
    int64_t k = addNode();
    leaf[k] = true;
    next_true[k] = next_false[k] = k;
    return k;
  }
  void setMode(const ir::Node &n, int64_t k, const std::string &mode) {
    on_lt[k] = mode == "BRANCH_LT" || mode == "BRANCH_LEQ" || mode == "BRANCH_NEQ";
    on_eq[k] = mode == "BRANCH_EQ" || mode == "BRANCH_LEQ" || mode == "BRANCH_GTE";
    on_gt[k] = mode == "BRANCH_GT" || mode == "BRANCH_GTE" || mode == "BRANCH_NEQ";
    if (!on_lt[k] && !on_eq[k] && !on_gt[k])
      fail("{}: node mode '{}' is not a BRANCH_* mode", n.describe(), mode);
    if (mode == "BRANCH_NEQ") on_nan[k] = 1; // NaN != v is true
  }
  void vote(int64_t node, int64_t target, double w) {
    if (weights.size() < feature.size() * targets) {
      weights.resize(feature.size() * targets, 0);
      voted.resize(feature.size() * targets, false);
    }
    weights[node * targets + target] += w;
    voted[node * targets + target] = true;
  }
  /// The longest root-to-leaf path in branch nodes; fails on a cycle.
  int64_t depth(const ir::Node &n) const {
    std::vector<int64_t> memo(feature.size(), -1);
    std::vector<bool> open(feature.size(), false);
    std::function<int64_t(int64_t)> walk = [&](int64_t k) -> int64_t {
      if (leaf[k]) return 0;
      if (memo[k] >= 0) return memo[k];
      if (open[k]) fail("{}: the trees contain a cycle at node {}", n.describe(), k);
      open[k] = true;
      memo[k] = 1 + std::max(walk(next_true[k]), walk(next_false[k]));
      open[k] = false;
      return memo[k];
    };
    int64_t d = 0;
    for (int64_t r : roots)
      d = std::max(d, walk(r));
    return d;
  }
};

/// TreeEnsembleRegressor / TreeEnsembleClassifier (nodes_* with tree and node ids; votes in
/// `prefix`_treeids/_nodeids/_ids/_weights).
Forest forestFromIds(OpCtx &c, const std::string &prefix, int64_t targets) {
  const ir::Node &n = c.node;
  std::vector<int64_t> tree = n.attrInts("nodes_treeids"), id = n.attrInts("nodes_nodeids"),
                       feat = n.attrInts("nodes_featureids"),
                       tnext = n.attrInts("nodes_truenodeids"),
                       fnext = n.attrInts("nodes_falsenodeids"),
                       miss = n.attrInts("nodes_missing_value_tracks_true");
  std::vector<std::string> modes = n.attrStrings("nodes_modes");
  std::vector<double> values = attrDoubles(n, "nodes_values");
  size_t count = tree.size();
  if (count == 0) fail("{}: nodes_treeids is missing or empty", n.describe());
  for (size_t s : {id.size(), feat.size(), tnext.size(), fnext.size(), modes.size()})
    if (s != count)
      fail("{}: the nodes_* attributes have different lengths ({} and {})", n.describe(), count, s);
  if (!values.empty() && values.size() != count)
    fail("{}: nodes_values has {} entries for {} nodes", n.describe(), values.size(), count);
  if (!miss.empty() && miss.size() != count)
    fail("{}: nodes_missing_value_tracks_true has {} entries for {} nodes", n.describe(),
         miss.size(), count);
  Forest f;
  f.targets = targets;
  std::map<std::pair<int64_t, int64_t>, int64_t> at;
  for (size_t i = 0; i < count; ++i) {
    if (!at.emplace(std::make_pair(tree[i], id[i]), (int64_t)i).second)
      fail("{}: node {} of tree {} is defined twice", n.describe(), id[i], tree[i]);
    if (modes[i] == "LEAF") {
      f.addLeaf();
      continue;
    }
    int64_t k = f.addNode();
    f.setMode(n, k, modes[i]);
    f.feature[k] = feat[i];
    f.threshold[k] = values.empty() ? 0 : values[i];
    if (!miss.empty() && miss[i]) f.on_nan[k] = 1;
  }
  std::map<int64_t, std::pair<int64_t, bool>> rootOf; // tree → (node, has a parent)
  std::vector<bool> isChild(count, false);
  for (size_t i = 0; i < count; ++i) {
    if (f.leaf[i]) continue;
    for (auto [succ, dst] : {std::pair{tnext[i], &f.next_true}, {fnext[i], &f.next_false}}) {
      auto it = at.find({tree[i], succ});
      if (it == at.end())
        fail("{}: node {} of tree {} points at node {}, which the tree lacks", n.describe(), id[i],
             tree[i], succ);
      (*dst)[i] = it->second;
      isChild[it->second] = true;
    }
  }
  std::map<int64_t, int64_t> firstRoot; // per tree id, in the order trees first appear
  std::vector<int64_t> order;
  for (size_t i = 0; i < count; ++i)
    if (!isChild[i] && !firstRoot.count(tree[i])) {
      firstRoot[tree[i]] = (int64_t)i;
      order.push_back((int64_t)i);
    }
  f.roots = order;
  std::vector<int64_t> vTree = n.attrInts(prefix + "_treeids"),
                       vNode = n.attrInts(prefix + "_nodeids"), vId = n.attrInts(prefix + "_ids");
  std::vector<double> vW = attrDoubles(n, prefix + "_weights");
  if (vNode.size() != vTree.size() || vId.size() != vTree.size() || vW.size() != vTree.size())
    fail("{}: the {}_* attributes have different lengths", n.describe(), prefix);
  f.weights.assign(count * targets, 0);
  f.voted.assign(count * targets, false);
  for (size_t i = 0; i < vTree.size(); ++i) {
    auto it = at.find({vTree[i], vNode[i]});
    if (it == at.end())
      fail("{}: a weight is for node {} of tree {}, which does not exist", n.describe(), vNode[i],
           vTree[i]);
    if (vId[i] < 0 || vId[i] >= targets)
      fail("{}: {}_ids has {}, outside [0, {})", n.describe(), prefix, vId[i], targets);
    f.vote(it->second, vId[i], vW[i]);
  }
  return f;
}

/// TreeEnsemble (ai.onnx.ml opset 5): nodes indexed directly, leaves in their own arrays,
/// BRANCH_MEMBER sets expanded into chains of BRANCH_EQ nodes.
Forest forestV5(OpCtx &c) {
  const ir::Node &n = c.node;
  std::vector<int64_t> feat = n.attrInts("nodes_featureids"),
                       tnext = n.attrInts("nodes_truenodeids"),
                       fnext = n.attrInts("nodes_falsenodeids"),
                       tleaf = n.attrInts("nodes_trueleafs"),
                       fleaf = n.attrInts("nodes_falseleafs"),
                       miss = n.attrInts("nodes_missing_value_tracks_true"),
                       roots = n.attrInts("tree_roots"), leafTarget = n.attrInts("leaf_targetids");
  std::vector<double> splits = tensorAttrDoubles(n, "nodes_splits"),
                      modes = tensorAttrDoubles(n, "nodes_modes"),
                      leafW = tensorAttrDoubles(n, "leaf_weights"),
                      members = tensorAttrDoubles(n, "membership_values");
  size_t count = feat.size();
  for (size_t s : {tnext.size(), fnext.size(), tleaf.size(), fleaf.size(), splits.size()})
    if (s != count)
      fail("{}: the nodes_* attributes have different lengths ({} and {})", n.describe(), count, s);
  if (!modes.empty() && modes.size() != count)
    fail("{}: nodes_modes has {} entries for {} nodes", n.describe(), modes.size(), count);
  if (leafW.size() != leafTarget.size())
    fail("{}: leaf_weights and leaf_targetids differ in length", n.describe());
  Forest f;
  f.targets = n.attrInt("n_targets", 0);
  if (f.targets <= 0) fail("{}: n_targets must be positive", n.describe());
  int64_t leaves = (int64_t)leafW.size();
  for (size_t i = 0; i < count; ++i)
    f.addNode();
  for (int64_t j = 0; j < leaves; ++j)
    f.addLeaf();
  f.weights.assign((count + leaves) * f.targets, 0);
  f.voted.assign((count + leaves) * f.targets, false);
  for (int64_t j = 0; j < leaves; ++j) {
    if (leafTarget[j] < 0 || leafTarget[j] >= f.targets)
      fail("{}: leaf_targetids has {}, outside [0, {})", n.describe(), leafTarget[j], f.targets);
    f.vote((int64_t)count + j, leafTarget[j], leafW[j]);
  }
  auto succ = [&](int64_t target, int64_t isLeaf, size_t i) {
    int64_t limit = isLeaf ? leaves : (int64_t)count;
    if (target < 0 || target >= limit)
      fail("{}: node {} points at {} {}, outside [0, {})", n.describe(), i,
           isLeaf ? "leaf" : "node", target, limit);
    return isLeaf ? (int64_t)count + target : target;
  };
  size_t memberPos = 0;
  for (size_t i = 0; i < count; ++i) {
    int mode = modes.empty() ? 0 : (int)modes[i];
    if (mode < 0 || mode > 6) fail("{}: nodes_modes has {}, outside [0, 6]", n.describe(), mode);
    bool nanTrue = !miss.empty() && miss.at(i) != 0;
    int64_t t = succ(tnext[i], tleaf[i], i), e = succ(fnext[i], fleaf[i], i);
    if (mode != 6) {
      static const char *names[] = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                    "BRANCH_GT",  "BRANCH_EQ", "BRANCH_NEQ"};
      f.setMode(n, i, names[mode]);
      f.feature[i] = feat[i];
      f.threshold[i] = splits[i];
      f.next_true[i] = t;
      f.next_false[i] = e;
      if (nanTrue) f.on_nan[i] = 1;
      continue;
    }
    // One set of membership_values per BRANCH_MEMBER node, NaN-terminated, in node order.
    std::vector<double> set;
    while (memberPos < members.size() && !std::isnan(members[memberPos]))
      set.push_back(members[memberPos++]);
    if (memberPos >= members.size() && set.empty())
      fail("{}: membership_values has no set for BRANCH_MEMBER node {}", n.describe(), i);
    ++memberPos;
    if (set.empty()) set.push_back(std::numeric_limits<double>::quiet_NaN()); // never equal
    int64_t k = (int64_t)i;
    for (size_t j = 0; j < set.size(); ++j) {
      f.setMode(n, k, "BRANCH_EQ");
      f.feature[k] = feat[i];
      f.threshold[k] = set[j];
      f.on_nan[k] = nanTrue;
      f.next_true[k] = t;
      int64_t nxt = j + 1 < set.size() ? f.addNode() : e;
      f.next_false[k] = nxt;
      k = nxt;
    }
  }
  f.weights.resize(f.feature.size() * f.targets, 0);
  f.voted.resize(f.feature.size() * f.targets, false);
  for (int64_t r : roots) {
    if (r < 0 || r >= (int64_t)count)
      fail("{}: tree_roots has {}, outside [0, {})", n.describe(), r, count);
    f.roots.push_back(r);
  }
  if (f.roots.empty()) fail("{}: tree_roots is empty", n.describe());
  return f;
}

/// Y[n, t] (float64, [N, targets]) = aggregate over trees of the reached leaf's weight for t,
/// plus base[t]; targets no tree votes for take base[t] alone.
LTensor evalForest(OpCtx &c, const LTensor &xIn, const Forest &f, Aggregate agg,
                   std::vector<double> base) {
  const ir::Node &n = c.node;
  if (xIn.rank() != 2 && xIn.rank() != 1)
    fail("{}: input must be [N, F], got {}", n.describe(), ir::shapeToString(xIn.shape));
  if (xIn.dtype == DType::String || xIn.dtype == DType::Bool)
    fail("{}: input of type {} is not supported", n.describe(), dtypeName(xIn.dtype));
  sym::Context &ctx = c.ctx();
  LTensor x = xIn.rank() == 1 ? reshapeView(ctx, xIn, {ctx.constant(1), xIn.shape[0]}) : xIn;
  DType cmp = x.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  int64_t features = c.requireStatic(x.shape[1], "the number of features");
  for (size_t k = 0; k < f.feature.size(); ++k)
    if (!f.leaf[k] && (f.feature[k] < 0 || f.feature[k] >= features))
      fail("{}: a node reads feature {}, but the input has {} features", n.describe(), f.feature[k],
           features);
  if (base.empty()) base.assign(f.targets, 0);
  if ((int64_t)base.size() != f.targets)
    fail("{}: base_values has {} entries for {} targets", n.describe(), base.size(), f.targets);
  int64_t depth = f.depth(n);
  int64_t nodes = (int64_t)f.feature.size(), trees = (int64_t)f.roots.size();
  std::string lbl = n.name + "_tree";
  auto table8 = [&](const std::vector<uint8_t> &v, const char *what) {
    return constTable(c, {nodes}, v.data(), DType::UInt8, lbl + what);
  };
  LTensor feat = constTable(c, {nodes}, f.feature.data(), DType::Int64, lbl + "_feature");
  LTensor tnext = constTable(c, {nodes}, f.next_true.data(), DType::Int64, lbl + "_true");
  LTensor fnext = constTable(c, {nodes}, f.next_false.data(), DType::Int64, lbl + "_false");
  LTensor lt = table8(f.on_lt, "_lt"), eq = table8(f.on_eq, "_eq"), gt = table8(f.on_gt, "_gt"),
          nan = table8(f.on_nan, "_nan");
  std::vector<double> thr64 = f.threshold;
  std::vector<float> thr32(thr64.begin(), thr64.end());
  LTensor thr = cmp == DType::Float64
                    ? constTable(c, {nodes}, thr64.data(), DType::Float64, lbl + "_split")
                    : constTable(c, {nodes}, thr32.data(), DType::Float32, lbl + "_split");
  LTensor roots = constTable(c, {trees}, f.roots.data(), DType::Int64, lbl + "_roots");
  // Weights, with ±inf where a leaf has no vote so MIN/MAX skip it.
  double none = agg == Aggregate::Min   ? std::numeric_limits<double>::infinity()
                : agg == Aggregate::Max ? -std::numeric_limits<double>::infinity()
                                        : 0.0;
  std::vector<double> w = f.weights;
  for (size_t k = 0; k < w.size(); ++k)
    if (!f.voted[k]) w[k] = none;
  LTensor wt = constTable(c, {nodes, f.targets}, w.data(), DType::Float64, lbl + "_weights");
  LTensor src = x.buffer ? x : c.realize(x);
  Lowerer *low = &c.lowerer();
  sym::Expr nodesE = ctx.constant(nodes);
  auto at = [=](const LTensor &tab, VRef node) {
    sym::Expr var = low->newVar("tn", nodesE);
    return loop::bindIndirect(tab.load({var}), var, node);
  };
  auto flag = [=](const LTensor &tab, VRef node) {
    return loop::binary(BinaryOp::Ne, at(tab, node), loop::constantInt(DType::UInt8, 0));
  };
  ir::Shape walkShape{x.shape[0], ctx.constant(trees), ctx.constant(f.targets)};
  LTensor contrib = c.pointwise(DType::Float64, walkShape, [=](const Index &i) {
    VRef node = roots.load({i[1]});
    for (int64_t d = 0; d < depth; ++d) {
      sym::Expr fv = low->newVar("tf", x.shape[1]);
      VRef xv = loop::cast(loop::bindIndirect(src.load({i[0], fv}), fv, at(feat, node)), cmp);
      VRef th = at(thr, node);
      VRef go = loop::binary(BinaryOp::And, flag(lt, node), loop::binary(BinaryOp::Lt, xv, th));
      go = loop::binary(
          BinaryOp::Or, go,
          loop::binary(BinaryOp::And, flag(eq, node), loop::binary(BinaryOp::Eq, xv, th)));
      go = loop::binary(
          BinaryOp::Or, go,
          loop::binary(BinaryOp::And, flag(gt, node), loop::binary(BinaryOp::Gt, xv, th)));
      go = loop::binary(
          BinaryOp::Or, go,
          loop::binary(BinaryOp::And, flag(nan, node), loop::unary(UnaryOp::IsNaN, xv)));
      node = loop::select(go, at(tnext, node), at(fnext, node));
    }
    sym::Expr var = low->newVar("tl", nodesE);
    return loop::bindIndirect(wt.load({var, i[2]}), var, node);
  });
  ReduceOp rop = agg == Aggregate::Min   ? ReduceOp::Min
                 : agg == Aggregate::Max ? ReduceOp::Max
                                         : ReduceOp::Sum;
  LTensor red = c.reduce(contrib, {1}, false, rop, DType::Float64);
  LTensor bt = constTable(c, {f.targets}, base.data(), DType::Float64, lbl + "_base");
  double scale = agg == Aggregate::Average ? 1.0 / (double)trees : 1.0;
  return c.pointwise(DType::Float64, red.shape, [=](const Index &i) {
    VRef v = red.load(i);
    if (agg == Aggregate::Min || agg == Aggregate::Max) // no tree voted: 0
      v = loop::select(
          loop::unary(agg == Aggregate::Min ? UnaryOp::IsPosInf : UnaryOp::IsNegInf, v),
          loop::constant(DType::Float64, 0), v);
    if (scale != 1.0) v = loop::binary(BinaryOp::Mul, v, loop::constant(DType::Float64, scale));
    return loop::binary(BinaryOp::Add, v, bt.load({i[1]}));
  });
}

Aggregate parseAggregate(OpCtx &c, const std::string &s) {
  if (s == "SUM") return Aggregate::Sum;
  if (s == "AVERAGE") return Aggregate::Average;
  if (s == "MIN") return Aggregate::Min;
  if (s == "MAX") return Aggregate::Max;
  fail("{}: aggregate_function '{}' is not AVERAGE, SUM, MIN or MAX", c.node.describe(), s);
}

LTensor castTo(OpCtx &c, const LTensor &t, DType d) {
  return mapUnary(c, t, [d](VRef v) { return loop::cast(v, d); });
}

void lowerTreeEnsemble(OpCtx &c) {
  static const char *aggs[] = {"AVERAGE", "SUM", "MIN", "MAX"};
  static const char *posts[] = {"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"};
  int64_t a = c.node.attrInt("aggregate_function", 1), p = c.node.attrInt("post_transform", 0);
  if (a < 0 || a > 3) fail("{}: aggregate_function {} is not in [0, 3]", c.node.describe(), a);
  if (p < 0 || p > 4) fail("{}: post_transform {} is not in [0, 4]", c.node.describe(), p);
  LTensor x = c.in(0);
  Forest f = forestV5(c);
  LTensor y = evalForest(c, x, f, parseAggregate(c, aggs[a]), {});
  y = applyPostTransform(c, c.realize(y), parsePostTransform(c, posts[p]));
  DType out = x.dtype == DType::Float64 || x.dtype == DType::Float16 ? x.dtype : DType::Float32;
  c.out(0, castTo(c, y, out));
}

void lowerTreeEnsembleRegressor(OpCtx &c) {
  int64_t targets = c.node.attrInt("n_targets", 1);
  if (targets <= 0) fail("{}: n_targets must be positive", c.node.describe());
  Forest f = forestFromIds(c, "target", targets);
  Aggregate agg = parseAggregate(c, c.node.attrString("aggregate_function", "SUM"));
  LTensor y = evalForest(c, c.in(0), f, agg, attrDoubles(c.node, "base_values"));
  PostTransform pt = parsePostTransform(c, c.node.attrString("post_transform", "NONE"));
  y = applyPostTransform(c, c.realize(y), pt);
  c.out(0, castTo(c, y, DType::Float32));
}

// Scores as the ONNX reference computes them: SUM of class votes plus base values; with
// votes for one class only (a binary model), column 1 is that score and column 0 its
// complement (1 - s without a transform or with PROBIT, else -s).
void lowerTreeEnsembleClassifier(OpCtx &c) {
  const ir::Node &n = c.node;
  if (n.hasAttr("classlabels_strings"))
    c.unsupported("TreeEnsembleClassifier with classlabels_strings (string constants are not "
                  "supported)");
  std::vector<int64_t> labels = n.attrInts("classlabels_int64s");
  if (labels.empty()) fail("{}: classlabels_int64s is missing", n.describe());
  std::vector<int64_t> ids = n.attrInts("class_ids");
  bool binary =
      !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](int64_t v) { return v == ids[0]; });
  int64_t classes = (int64_t)labels.size();
  if (binary && classes == 1) c.unsupported("TreeEnsembleClassifier with a single class label");
  if (binary && ids[0] != 0)
    c.unsupported("a binary TreeEnsembleClassifier voting for class id other than 0");
  Forest f = forestFromIds(c, "class", classes);
  PostTransform pt = parsePostTransform(c, n.attrString("post_transform", "NONE"));
  LTensor s = c.realize(evalForest(c, c.in(0), f, Aggregate::Sum, attrDoubles(n, "base_values")));
  if (binary) {
    bool complement = pt == PostTransform::None || pt == PostTransform::Probit;
    sym::Context *ctx = &c.ctx();
    s = c.realize(c.pointwise(DType::Float64, s.shape, [=](const Index &i) {
      VRef v = s.load({i[0], ctx->constant(0)});
      VRef other = complement ? loop::binary(BinaryOp::Sub, loop::constant(DType::Float64, 1), v)
                              : loop::unary(UnaryOp::Neg, v);
      VRef col = loop::symInt(i[1]);
      return loop::select(
          loop::binary(BinaryOp::Eq, col, loop::constantInt(DType::Int64, 0)), other,
          loop::select(loop::binary(BinaryOp::Eq, col, loop::constantInt(DType::Int64, 1)), v,
                       s.load(i)));
    }));
  }
  s = c.realize(applyPostTransform(c, s, pt));
  c.out(0, pickLabels(c, argmaxLast(c, s), labels));
  c.out(1, castTo(c, s, DType::Float32));
}

} // namespace

namespace ml {
void registerTreeOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"TreeEnsemble", 5, lowerTreeEnsemble},
                        {"TreeEnsembleRegressor", 1, lowerTreeEnsembleRegressor},
                        {"TreeEnsembleClassifier", 1, lowerTreeEnsembleClassifier},
                    });
}
} // namespace ml

} // namespace kiln::lower
