// Small ops without a better home: TfIdfVectorizer (n-gram counting) and Det (Gaussian
// elimination, one kernel per step).
#include "lower/ops_common.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace kiln::lower {

/// A compile-time table built by the lowering (TfIdf n-gram pools, ML tree and label
/// tables: attributes, not initializers), stored like an initializer.
LTensor constTable(OpCtx &c, const std::vector<int64_t> &dims, const void *bytes, DType t,
                   const std::string &label) {
  auto data = std::make_shared<ir::TensorData>();
  data->dtype = t;
  data->dims = dims;
  data->bytes.resize(static_cast<size_t>(data->numel()) * dtypeSize(t));
  if (!data->bytes.empty()) std::memcpy(data->bytes.data(), bytes, data->bytes.size());
  loop::Buffer *b =
      c.prog().newBuffer(t, constants(c.ctx(), dims), loop::BufferKind::Constant, label);
  b->data = data;
  b->index = static_cast<int>(c.prog().constants.size());
  c.prog().constants.push_back(b);
  return fromBuffer(c.ctx(), b);
}

namespace {

using loop::ReduceOp;

// ---------------------------------------------------------------- TfIdfVectorizer

// Output slot j counts the occurrences of one pool n-gram g (length n): the sum over start
// positions p and skips s of [X[p + i*(s+1)] == g[i] for all i < n]. The pool is laid out
// per slot as constant tables (length, grams[i][j], weight), so the count is one reduction
// over (skip, position) whose body compares the longest n-gram length's worth of elements.
void lowerTfIdfVectorizer(OpCtx &c) {
  const ir::Node &node = c.node;
  LTensor x = c.in(0);
  if (x.dtype != DType::Int32 && x.dtype != DType::Int64)
    fail("{}: input of type {} is not supported (int32/int64 only; string pools are not "
         "supported)",
         node.describe(), dtypeName(x.dtype));
  if (x.rank() != 1 && x.rank() != 2)
    fail("{}: input must be 1-D or 2-D, got rank {}", node.describe(), x.rank());
  for (const char *a : {"mode", "min_gram_length", "max_gram_length", "max_skip_count",
                        "ngram_counts", "ngram_indexes"})
    if (!node.hasAttr(a)) fail("{}: required attribute '{}' is missing", node.describe(), a);
  if (!node.hasAttr("pool_int64s")) c.unsupported("TfIdfVectorizer without pool_int64s");
  std::string mode = node.attrString("mode", "");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF")
    fail("{}: unknown mode '{}' (TF, IDF or TFIDF)", node.describe(), mode);
  int64_t minN = node.attrInt("min_gram_length", 1), maxN = node.attrInt("max_gram_length", 1);
  int64_t maxSkip = node.attrInt("max_skip_count", 0);
  if (minN < 1 || maxN < minN || maxSkip < 0)
    fail("{}: invalid min_gram_length {} / max_gram_length {} / max_skip_count {}", node.describe(),
         minN, maxN, maxSkip);
  std::vector<int64_t> pool = node.attrInts("pool_int64s"), counts = node.attrInts("ngram_counts"),
                       indexes = node.attrInts("ngram_indexes");
  std::vector<float> weights = node.attrFloats("weights");

  // Enumerate the pool's n-grams in order: level l holds (l+1)-grams from counts[l].
  struct Gram {
    int64_t start, len;
  };
  std::vector<Gram> grams;
  for (size_t l = 0; l < counts.size(); ++l) {
    int64_t n = static_cast<int64_t>(l) + 1;
    int64_t b = counts[l], e = l + 1 < counts.size() ? counts[l + 1] : (int64_t)pool.size();
    if (b < 0 || e < b || e > (int64_t)pool.size() || (e - b) % n != 0)
      fail("{}: ngram_counts {} does not split pool_int64s ({} items) into {}-grams",
           node.describe(), counts[l], pool.size(), n);
    for (int64_t s = b; s < e; s += n)
      grams.push_back({s, n});
  }
  if (indexes.size() != grams.size() || indexes.empty())
    fail("{}: ngram_indexes has {} entries for {} pool n-grams", node.describe(), indexes.size(),
         grams.size());
  if (!weights.empty() && weights.size() != grams.size())
    fail("{}: weights has {} entries for {} pool n-grams", node.describe(), weights.size(),
         grams.size());
  int64_t slots = *std::max_element(indexes.begin(), indexes.end()) + 1;
  if (*std::min_element(indexes.begin(), indexes.end()) < 0 || slots > (int64_t{1} << 24))
    fail("{}: ngram_indexes must lie in [0, 2^24)", node.describe());

  // Per-slot tables; a length of 0 never matches (empty slot or length outside the range).
  int64_t width = std::min<int64_t>(maxN, (int64_t)counts.size());
  width = std::max<int64_t>(width, 1);
  std::vector<int64_t> lens(slots, 0), table(width * slots, 0);
  std::vector<float> w(slots, 1.0f);
  std::vector<bool> used(slots, false);
  for (size_t k = 0; k < grams.size(); ++k) {
    int64_t j = indexes[k];
    if (used[j]) fail("{}: ngram_indexes repeats slot {}", node.describe(), j);
    used[j] = true;
    if (!weights.empty()) w[j] = weights[k];
    if (grams[k].len < minN || grams[k].len > maxN) continue;
    lens[j] = grams[k].len;
    for (int64_t i = 0; i < grams[k].len; ++i)
      table[i * slots + j] = pool[grams[k].start + i];
  }
  int64_t longest = *std::max_element(lens.begin(), lens.end());
  int64_t skips = longest > 1 ? maxSkip + 1 : 1; // unigrams ignore skips (counted once)
  std::string label = node.name + "_tfidf";
  LTensor lenT = constTable(c, {slots}, lens.data(), DType::Int64, label + "_len");
  LTensor gramT = constTable(c, {width, slots}, table.data(), DType::Int64, label + "_pool");
  LTensor wT; // only IDF/TFIDF read the weights
  if (mode != "TF") wT = constTable(c, {slots}, w.data(), DType::Float32, label + "_weights");

  LTensor src = x.cheap ? x : c.realize(x);
  bool batched = x.rank() == 2;
  sym::Expr len = x.shape.back();
  sym::Context *ctx = &c.ctx();
  ir::Shape hitShape;
  if (batched) hitShape.push_back(x.shape[0]);
  hitShape.push_back(ctx->constant(slots));
  hitShape.push_back(ctx->constant(skips));
  hitShape.push_back(len);
  int r = batched ? 1 : 0; // position of the slot index
  LTensor hits = c.pointwise(DType::Int64, hitShape, [=](const Index &idx) {
    sym::Expr j = idx[r], s = idx[r + 1], p = idx[r + 2];
    VRef n = lenT.load({j});
    VRef ok = loop::binary(BinaryOp::Gt, n, loop::constantInt(DType::Int64, 0));
    if (skips > 1) // a skip only applies to n-grams of two or more
      ok = loop::binary(
          BinaryOp::And, ok,
          loop::binary(
              BinaryOp::Or,
              loop::binary(BinaryOp::Eq, loop::symInt(s), loop::constantInt(DType::Int64, 0)),
              loop::binary(BinaryOp::Gt, n, loop::constantInt(DType::Int64, 1))));
    for (int64_t i = 0; i < width; ++i) {
      sym::Expr pos = p + (s + ctx->constant(1)) * ctx->constant(i);
      Index at;
      if (batched) at.push_back(idx[0]);
      at.push_back(sym::min(pos, len - ctx->constant(1)));
      VRef eq = loop::binary(BinaryOp::Eq, loop::cast(src.load(at), DType::Int64),
                             gramT.load({ctx->constant(i), j}));
      if (i > 0)
        eq = loop::binary(
            BinaryOp::Or, loop::binary(BinaryOp::Le, n, loop::constantInt(DType::Int64, i)),
            loop::binary(BinaryOp::And,
                         loop::binary(BinaryOp::Lt, loop::symInt(pos), loop::symInt(len)), eq));
      ok = loop::binary(BinaryOp::And, ok, eq);
    }
    return loop::cast(ok, DType::Int64);
  });
  LTensor count = c.reduce(hits, {r + 1, r + 2}, false, ReduceOp::Sum, DType::Int64);
  c.out(0, c.pointwise(DType::Float32, count.shape, [=](const Index &idx) {
    VRef tf = loop::cast(count.load(idx), DType::Float32);
    if (mode == "TF") return tf;
    VRef wj = wT.load({idx[r]});
    if (mode == "TFIDF") return loop::binary(BinaryOp::Mul, tf, wj);
    return loop::select(loop::binary(BinaryOp::Gt, tf, loop::constant(DType::Float32, 0)), wj,
                        loop::constant(DType::Float32, 0));
  }));
}

// ---------------------------------------------------------------- Det

constexpr int64_t kMaxDet = 64; // one elimination step per kernel: 2M kernels

// Gaussian elimination with partial pivoting in float64, one realized step per column
// (an unrolled single expression would be a DAG that kiln's tree walks expand
// exponentially). Step k moves the pivot row to row k, negated when it was swapped in (a
// swap plus a negation keeps the determinant), and eliminates below it; the determinant
// is then the product of the diagonal. A zero pivot column just leaves a zero on it.
void lowerDet(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "input");
  int rank = x.rank();
  if (rank < 2) fail("{}: input must have rank >= 2, got {}", c.node.describe(), rank);
  sym::Expr rows = x.shape[rank - 2], cols = x.shape[rank - 1];
  int64_t m = c.requireStatic(rows, "the matrix size (kiln unrolls the elimination)");
  int64_t n = c.requireStatic(cols, "the matrix size (kiln unrolls the elimination)");
  if (n != m) fail("{}: matrices must be square, got {} x {}", c.node.describe(), m, n);
  if (m > kMaxDet)
    fail("{}: matrices larger than {}x{} are not supported (got {}x{})", c.node.describe(), kMaxDet,
         kMaxDet, m, m);
  const DType f = DType::Float64;
  int nb = rank - 2;
  ir::Shape batch(x.shape.begin(), x.shape.end() - 2);
  sym::Context *ctx = &c.ctx();
  Lowerer *low = &c.lowerer();
  auto at = [](Index b, sym::Expr r, sym::Expr j) {
    b.push_back(r);
    b.push_back(j);
    return b;
  };
  auto ci = [](int64_t v) { return loop::constantInt(DType::Int64, v); };
  LTensor a = c.realize(mapUnary(c, x, [=](VRef v) { return loop::cast(v, f); }));
  for (int64_t k = 0; k + 1 < m; ++k) {
    sym::Expr K = ctx->constant(k);
    ir::Shape colShape = batch;
    colShape.push_back(rows);
    LTensor mag = c.pointwise(f, colShape, [=](const Index &i) {
      Index b(i.begin(), i.end() - 1);
      VRef v = loop::unary(UnaryOp::Abs, a.load(at(b, i.back(), K)));
      return loop::select(loop::binary(BinaryOp::Lt, loop::symInt(i.back()), ci(k)),
                          loop::constant(f, -1), v);
    });
    LTensor piv = c.reduce(mag, {nb}, false, loop::ReduceOp::ArgMax, f);
    LTensor prev = a;
    a = c.realize(c.pointwise(f, x.shape, [=](const Index &i) {
      Index b(i.begin(), i.end() - 2);
      sym::Expr r = i[nb], j = i[nb + 1];
      VRef p = piv.load(b);
      auto pivotRow = [&](sym::Expr col) {
        sym::Expr var = low->newVar("p", rows);
        return loop::bindIndirect(prev.load(at(b, var, col)), var, p);
      };
      VRef pj = pivotRow(j), pk = pivotRow(K);
      VRef rowK =
          loop::select(loop::binary(BinaryOp::Eq, p, ci(k)), pj, loop::unary(UnaryOp::Neg, pj));
      // Below row k: row r, or the old row k where the pivot row came from.
      VRef moved = loop::binary(BinaryOp::Eq, loop::symInt(r), p);
      VRef sj = loop::select(moved, prev.load(at(b, K, j)), prev.load(at(b, r, j)));
      VRef sk = loop::select(moved, prev.load(at(b, K, K)), prev.load(at(b, r, K)));
      VRef safe = loop::select(loop::binary(BinaryOp::Eq, pk, loop::constant(f, 0)),
                               loop::constant(f, 1), pk);
      VRef below =
          loop::binary(BinaryOp::Sub, sj,
                       loop::binary(BinaryOp::Mul, loop::binary(BinaryOp::Div, sk, safe), pj));
      below = loop::select(loop::binary(BinaryOp::Le, loop::symInt(j), ci(k)), loop::constant(f, 0),
                           below);
      VRef rv = loop::symInt(r);
      return loop::select(loop::binary(BinaryOp::Lt, rv, ci(k)), prev.load(at(b, r, j)),
                          loop::select(loop::binary(BinaryOp::Eq, rv, ci(k)), rowK, below));
    }));
  }
  ir::Shape diagShape = batch;
  diagShape.push_back(rows);
  LTensor diag = c.pointwise(f, diagShape, [=](const Index &i) {
    return a.load(at(Index(i.begin(), i.end() - 1), i.back(), i.back()));
  });
  LTensor det = c.reduce(diag, {nb}, false, loop::ReduceOp::Prod, f);
  DType t = x.dtype;
  c.out(0, mapUnary(c, det, [=](VRef v) { return loop::cast(v, t); }));
}

} // namespace

void registerMiscOps(std::vector<OpInfo> &r) {
  r.push_back({"TfIdfVectorizer", 9, lowerTfIdfVectorizer});
  r.push_back({"Det", 11, lowerDet});
}

} // namespace kiln::lower
