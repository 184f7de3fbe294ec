// Ops of today's transformer exports (opsets 23-24): RMSNormalization, RotaryEmbedding,
// Attention (multi-head, grouped-query and multi-query heads; boolean or additive masks,
// causal masking, softcap, past/present key-value caches, nonpad_kv_seqlen) and
// TensorScatter (writing a KV-cache update). All are generated kernels: reductions with
// pointwise prologues; Attention's two matrix products are Sum reductions, so they run
// on every device and dtype but are not oneDNN-fast (docs/ops.md).
#include "lower/ops_common.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

LTensor asBuffer(OpCtx &c, const LTensor &t) {
  return t.buffer ? t : c.realize(t);
}
/// A data-dependent index iv (any integer type) clamped into [0, dim-1], negative wrapped.
VRef clampIndex(VRef iv, sym::Expr dim) {
  iv = loop::cast(iv, DType::Int64);
  VRef zero = loop::constantInt(DType::Int64, 0);
  VRef w = loop::select(bin(BinaryOp::Lt, iv, zero), bin(BinaryOp::Add, iv, sv(dim)), iv);
  return bin(BinaryOp::Max, bin(BinaryOp::Min, w, sv(dim - 1)), zero);
}
bool hasOutput(OpCtx &c, size_t i) {
  return i < c.node.outputs.size() && c.node.outputs[i] && !c.node.outputs[i]->name.empty();
}

// ---------------------------------------------------------------- RMSNormalization

/// y = x / sqrt(mean(x², axes from `axis` on) + epsilon) * scale, in float32 (stash_type 1)
/// or float64 for double inputs.
void lowerRMSNorm(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1);
  requireFloat(c, x, "RMSNormalization input");
  requireBroadcastsTo(scale.shape, x.shape, c.node.describe() + " scale");
  int axis = c.normAxis(c.node.attrInt("axis", -1), x.rank());
  double eps = c.node.attrFloat("epsilon", 1e-5f);
  std::vector<int> axes;
  for (int d = axis; d < x.rank(); ++d)
    axes.push_back(d);
  DType t = x.dtype, acc = accOf(t);
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  VRef n = loop::cast(sv(product(c.ctx(), xs, axis, xs.size())), acc);
  LTensor sq = c.pointwise(acc, xs, [=](const Index &i) {
    VRef v = loop::cast(x.load(i), acc);
    return bin(BinaryOp::Mul, v, v);
  });
  LTensor sum = c.reduce(sq, axes, true, ReduceOp::Sum, acc);
  LTensor inv = c.realize(c.pointwise(acc, sum.shape, [=](const Index &i) {
    VRef ms = bin(BinaryOp::Add, bin(BinaryOp::Div, sum.load(i), n), loop::constant(acc, eps));
    return bin(BinaryOp::Div, loop::constant(acc, 1), loop::unary(UnaryOp::Sqrt, ms));
  }));
  c.out(0, c.pointwise(t, xs, [=](const Index &i) {
    VRef y = bin(BinaryOp::Mul, loop::cast(x.load(i), acc), loadBroadcast(*ctx, inv, xs, i));
    y = bin(BinaryOp::Mul, y, loop::cast(loadBroadcast(*ctx, scale, xs, i), acc));
    return loop::cast(y, t);
  }));
}

// ---------------------------------------------------------------- RotaryEmbedding

/// Rotates pairs of each head's first rotary_embedding_dim channels: (x[a], x[b]) ->
/// (cos·x[a] − sin·x[b], sin·x[a] + cos·x[b]), pairs being halves or (interleaved)
/// neighbours. Input [B, H, S, D] or [B, S, H·D] (num_heads); the caches are indexed by
/// position_ids [B, S] ([P, R/2] caches) or are already [B, S, R/2].
void lowerRotaryEmbedding(OpCtx &c) {
  LTensor x = c.in(0), cosC = c.in(1), sinC = c.in(2);
  requireFloat(c, x, "RotaryEmbedding input");
  int rank = x.rank();
  if (rank != 3 && rank != 4)
    fail("{}: input must be 3-D [batch, seq, hidden] or 4-D [batch, heads, seq, head_size], "
         "got rank {}",
         c.node.describe(), rank);
  sym::Expr headSize = x.shape[3 % rank];
  if (rank == 3) {
    int64_t heads = c.node.attrInt("num_heads", 0);
    if (heads <= 0) fail("{}: a 3-D input needs the num_heads attribute (> 0)", c.node.describe());
    headSize = sym::floorDiv(x.shape[2], heads);
    c.guardEqual(headSize * heads, x.shape[2], "the hidden size must be a multiple of num_heads");
  }
  int64_t d = c.requireStatic(headSize, "RotaryEmbedding head size");
  int64_t r = c.node.attrInt("rotary_embedding_dim", 0);
  if (r == 0) r = d;
  if (r < 2 || r > d || r % 2)
    fail("{}: rotary_embedding_dim {} must be even and in [2, head size {}]", c.node.describe(), r,
         d);
  int64_t half = r / 2;
  bool interleaved = c.node.attrInt("interleaved", 0) != 0;
  std::optional<LTensor> pos;
  if (c.has(3)) {
    pos = c.in(3);
    cosC = asBuffer(c, cosC);
    sinC = asBuffer(c, sinC);
    if (cosC.rank() != 2 || sinC.rank() != 2)
      fail("{}: with position_ids the cos/sin caches must be 2-D [max_position, rotary_dim/2]",
           c.node.describe());
  } else if (cosC.rank() != 3 || sinC.rank() != 3) {
    fail("{}: without position_ids the cos/sin caches must be 3-D [batch, seq, rotary_dim/2]",
         c.node.describe());
  }
  DType t = x.dtype, acc = accOf(t);
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    sym::Expr b = i[0], s = i[rank == 4 ? 2 : 1];
    sym::Expr last = i[rank - 1];
    sym::Expr dd = rank == 4 ? last : sym::mod(last, d); // channel within the head
    sym::Expr base = last - dd;
    sym::Expr partner, ci;
    VRef first;
    if (interleaved) {
      partner = dd + 1 - sym::mod(dd, 2) * 2;
      ci = sym::floorDiv(dd, 2);
      first = bin(BinaryOp::Eq, sv(sym::mod(dd, 2)), loop::constantInt(DType::Int64, 0));
    } else {
      partner = sym::mod(dd + half, r);
      ci = sym::mod(dd, half);
      first = bin(BinaryOp::Lt, sv(dd), loop::constantInt(DType::Int64, half));
    }
    Index pi = i;
    pi[rank - 1] = base + partner;
    auto cache = [&](const LTensor &tab) {
      if (!pos) return loop::cast(tab.load({b, s, ci}), acc);
      sym::Expr var = low->newVar("p", tab.shape[0]);
      VRef v = loop::cast(tab.load({var, ci}), acc);
      return loop::bindIndirect(v, var, clampIndex(pos->load({b, s}), tab.shape[0]));
    };
    VRef xv = loop::cast(x.load(i), acc), xp = loop::cast(x.load(pi), acc);
    VRef cv = cache(cosC), sn = cache(sinC);
    VRef rot = loop::select(
        first, bin(BinaryOp::Sub, bin(BinaryOp::Mul, cv, xv), bin(BinaryOp::Mul, sn, xp)),
        bin(BinaryOp::Add, bin(BinaryOp::Mul, cv, xv), bin(BinaryOp::Mul, sn, xp)));
    VRef rotated = bin(BinaryOp::Lt, sv(dd), loop::constantInt(DType::Int64, r));
    return loop::cast(loop::select(rotated, rot, xv), t);
  }));
}

// ---------------------------------------------------------------- Attention

/// x as [B, H, S, D]: a 4-D input as it is, a 3-D [B, S, H·D] one viewed per head.
LTensor headsView(OpCtx &c, const LTensor &x, int64_t heads, const char *what) {
  if (x.rank() == 4) return x;
  sym::Expr d = sym::floorDiv(x.shape[2], heads);
  c.guardEqual(d * heads, x.shape[2],
               fmt::format("the {} hidden size must be a multiple of its head count", what));
  ir::Shape s{x.shape[0], c.ctx().constant(heads), x.shape[1], d};
  Loader ld = x.load;
  return c.pointwise(
      x.dtype, s,
      [=](const Index &i) {
        return ld({i[0], i[2], i[1] * d + i[3]});
      },
      true);
}

/// The additive bias at [b, h, i, j] of scores over `total` keys: the mask (boolean: 0 or
/// -inf; float: added; a last dim shorter than `total` is padded with -inf), causal masking
/// (key j after query i + past), and keys at or past nonpad_kv_seqlen[b].
struct AttentionBias {
  std::optional<LTensor> mask, nonpad;
  bool causal = false;
  sym::Expr past, total;
  ir::Shape scores;
  sym::Context *ctx = nullptr;

  VRef at(const Index &i, DType acc) const {
    VRef ninf = loop::constant(acc, -INFINITY);
    VRef b = loop::constant(acc, 0);
    if (mask) {
      sym::Expr tm = mask->shape.back();
      Index mi = i;
      mi[3] = sym::min(i[3], tm - 1);
      ir::Shape ms = scores;
      ms[3] = tm;
      VRef mv = loadBroadcast(*ctx, *mask, ms, mi);
      VRef val = mask->dtype == DType::Bool ? loop::select(mv, b, ninf) : loop::cast(mv, acc);
      b = sym::provablyEqual(tm, total)
              ? val
              : loop::select(bin(BinaryOp::Lt, sv(i[3]), sv(tm)), val, ninf);
    }
    if (causal) b = loop::select(bin(BinaryOp::Gt, sv(i[3]), sv(i[2] + past)), ninf, b);
    if (nonpad) {
      VRef n = loop::cast(nonpad->load({i[0]}), DType::Int64);
      b = loop::select(bin(BinaryOp::Ge, sv(i[3]), n), ninf, b);
    }
    return b;
  }
};

/// Attention-23/24: softmax(scale·Q·Kᵀ + bias, softcapped) · V per head; key/value heads
/// are shared by q_heads / kv_heads consecutive query heads. Outputs Y, present key and
/// value (past concatenated with this step's), and qk_matmul_output (mode 0: scaled QKᵀ,
/// 1: + bias, 2: softcapped, 3: softmax). Scores and softmax run in float32 (float64 for
/// double inputs), which covers every softmax_precision.
void lowerAttention(OpCtx &c) {
  LTensor q0 = c.in(0), k0 = c.in(1), v0 = c.in(2);
  requireFloat(c, q0, "Attention query");
  int rank = q0.rank();
  if ((rank != 3 && rank != 4) || k0.rank() != rank || v0.rank() != rank)
    fail("{}: Q, K and V must all be 3-D or all 4-D (ranks {}, {}, {})", c.node.describe(), rank,
         k0.rank(), v0.rank());
  int64_t hq, hkv;
  if (rank == 3) {
    hq = c.node.attrInt("q_num_heads", 0);
    hkv = c.node.attrInt("kv_num_heads", 0);
    if (hq <= 0 || hkv <= 0)
      fail("{}: 3-D inputs need q_num_heads and kv_num_heads (> 0)", c.node.describe());
  } else {
    hq = c.requireStatic(q0.shape[1], "Attention query head count");
    hkv = c.requireStatic(k0.shape[1], "Attention key head count");
  }
  if (hq % hkv)
    fail("{}: q_num_heads {} is not a multiple of kv_num_heads {}", c.node.describe(), hq, hkv);
  int64_t group = hq / hkv;
  LTensor q = headsView(c, q0, hq, "query"), k = headsView(c, k0, hkv, "key"),
          v = headsView(c, v0, hkv, "value");
  DType t = q.dtype, acc = accOf(t);
  AttentionBias bias;
  bias.past = c.ctx().constant(0);
  if (c.has(4) != c.has(5))
    fail("{}: past_key and past_value must be given together", c.node.describe());
  if (c.has(4)) {
    bias.past = c.in(4).shape[2];
    k = concatAlong(c, {c.in(4), k}, 2, t);
    v = concatAlong(c, {c.in(5), v}, 2, t);
  }
  c.out(1, k);
  c.out(2, v);
  sym::Expr B = q.shape[0], Sq = q.shape[2], D = q.shape[3], T = k.shape[2], Dv = v.shape[3];
  sym::Expr H = c.ctx().constant(hq);
  c.guardEqual(k.shape[3], D, "Attention: key head size must equal the query head size");
  c.guardEqual(v.shape[2], T, "Attention: value and key sequence lengths must match");
  VRef scale = c.node.hasAttr("scale") ? loop::constant(acc, c.node.attrFloat("scale", 1.0f))
                                       : bin(BinaryOp::Div, loop::constant(acc, 1),
                                             loop::unary(UnaryOp::Sqrt, loop::cast(sv(D), acc)));

  // Scores [B, H, Sq, T] = scale · Σ_d Q·K (key head = query head / group).
  LTensor qkProd = c.pointwise(acc, {B, H, Sq, T, D}, [=](const Index &i) {
    VRef a = loop::cast(q.load({i[0], i[1], i[2], i[4]}), acc);
    VRef b = loop::cast(k.load({i[0], sym::floorDiv(i[1], group), i[3], i[4]}), acc);
    return bin(BinaryOp::Mul, a, b);
  });
  LTensor dot = c.reduce(qkProd, {4}, false, ReduceOp::Sum, acc);
  ir::Shape s4{B, H, Sq, T};
  LTensor qk =
      c.pointwise(acc, s4, [=](const Index &i) { return bin(BinaryOp::Mul, dot.load(i), scale); });

  bias.ctx = &c.ctx();
  bias.scores = s4;
  bias.total = T;
  bias.causal = c.node.attrInt("is_causal", 0) != 0;
  if (c.has(3)) {
    bias.mask = c.in(3);
    if (bias.mask->rank() < 2 || bias.mask->rank() > 4)
      fail("{}: attn_mask must have rank 2 to 4, got {}", c.node.describe(), bias.mask->rank());
  }
  if (c.numInputs() > 6 && c.has(6)) bias.nonpad = c.in(6);
  LTensor biased = c.pointwise(
      acc, s4, [=](const Index &i) { return bin(BinaryOp::Add, qk.load(i), bias.at(i, acc)); });
  double cap = c.node.attrFloat("softcap", 0.0f);
  LTensor capped = biased;
  if (cap > 0)
    capped = c.pointwise(acc, s4, [=](const Index &i) {
      VRef y =
          loop::unary(UnaryOp::Tanh, bin(BinaryOp::Div, biased.load(i), loop::constant(acc, cap)));
      return bin(BinaryOp::Mul, y, loop::constant(acc, cap));
    });
  capped = c.realize(capped);

  // Softmax over the keys.
  sym::Context *ctx = &c.ctx();
  LTensor mx = c.reduce(capped, {3}, true, ReduceOp::Max, acc);
  auto expAt = [=](const Index &i) {
    return loop::unary(UnaryOp::Exp,
                       bin(BinaryOp::Sub, capped.load(i), loadBroadcast(*ctx, mx, s4, i)));
  };
  LTensor sum = c.reduce(c.pointwise(acc, s4, expAt), {3}, true, ReduceOp::Sum, acc);
  LTensor probs = c.realize(c.pointwise(acc, s4, [=](const Index &i) {
    return bin(BinaryOp::Div, expAt(i), loadBroadcast(*ctx, sum, s4, i));
  }));

  if (hasOutput(c, 3)) {
    int64_t mode = c.node.attrInt("qk_matmul_output_mode", 0);
    if (mode < 0 || mode > 3)
      fail("{}: qk_matmul_output_mode {} is not 0, 1, 2 or 3", c.node.describe(), mode);
    LTensor pick = mode == 0 ? qk : mode == 1 ? biased : mode == 2 ? capped : probs;
    c.out(3, c.pointwise(t, s4, [=](const Index &i) { return loop::cast(pick.load(i), t); }));
  }

  // Y [B, H, Sq, Dv] = Σ_j P·V.
  LTensor pvProd = c.pointwise(acc, {B, H, Sq, Dv, T}, [=](const Index &i) {
    VRef p = probs.load({i[0], i[1], i[2], i[4]});
    VRef b = loop::cast(v.load({i[0], sym::floorDiv(i[1], group), i[4], i[3]}), acc);
    return bin(BinaryOp::Mul, p, b);
  });
  LTensor y = c.reduce(pvProd, {4}, false, ReduceOp::Sum, acc);
  if (rank == 4) {
    c.out(0, c.pointwise(t, y.shape, [=](const Index &i) { return loop::cast(y.load(i), t); }));
    return;
  }
  c.out(0, c.pointwise(t, {B, Sq, H * Dv}, [=](const Index &i) {
    return loop::cast(y.load({i[0], sym::floorDiv(i[2], Dv), i[1], sym::mod(i[2], Dv)}), t);
  }));
}

// ---------------------------------------------------------------- TensorScatter

/// TensorScatter-24: past_cache with `update` written along `axis` from write_indices[b]
/// (0 when absent) in each batch b; mode "circular" wraps positions modulo the cache length.
void lowerTensorScatter(OpCtx &c) {
  LTensor past = c.in(0), upd = asBuffer(c, c.in(1));
  int rank = past.rank();
  if (upd.rank() != rank)
    fail("{}: update rank {} differs from past_cache rank {}", c.node.describe(), upd.rank(), rank);
  int axis = c.normAxis(c.node.attrInt("axis", -2), rank);
  if (axis == 0) fail("{}: axis must not be the batch axis 0", c.node.describe());
  std::string mode = c.node.attrString("mode", "linear");
  if (mode != "linear" && mode != "circular")
    fail("{}: mode '{}' is not 'linear' or 'circular'", c.node.describe(), mode);
  for (int d = 0; d < rank; ++d)
    if (d != axis)
      c.guardEqual(upd.shape[d], past.shape[d],
                   fmt::format("TensorScatter: update dim {} must equal past_cache's", d));
  std::optional<LTensor> writeAt;
  if (c.has(2)) writeAt = c.in(2);
  sym::Expr len = past.shape[axis], u = upd.shape[axis];
  bool circular = mode == "circular";
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(past.dtype, past.shape, [=](const Index &i) {
    VRef p = sv(i[axis]);
    VRef w = writeAt ? loop::cast(writeAt->load({i[0]}), DType::Int64)
                     : loop::constantInt(DType::Int64, 0);
    VRef off = bin(BinaryOp::Sub, p, w); // which update row lands here
    if (circular) off = bin(BinaryOp::Mod, off, sv(len));
    VRef inside = bin(BinaryOp::And, bin(BinaryOp::Ge, off, loop::constantInt(DType::Int64, 0)),
                      bin(BinaryOp::Lt, off, sv(u)));
    sym::Expr var = low->newVar("t", u);
    Index ui = i;
    ui[axis] = var;
    VRef fromUpd = loop::bindIndirect(upd.load(ui), var, clampIndex(off, u));
    return loop::select(inside, fromUpd, past.load(i));
  }));
}

} // namespace

void registerTransformerOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"RMSNormalization", 23, lowerRMSNorm},
                        {"RotaryEmbedding", 23, lowerRotaryEmbedding},
                        {"Attention", 23, lowerAttention},
                        {"TensorScatter", 24, lowerTensorScatter},
                    });
}

} // namespace kiln::lower
