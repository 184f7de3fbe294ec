// Tuning keys and candidate configurations of scheduled CUDA groups (sched/tuning.h).
#include "sched/tuning.h"

#include <map>
#include <sstream>

#include <fmt/format.h>

namespace kiln::sched {

namespace {

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// Size of v written out as a tree (shared nodes counted once per use), saturating at `cap`.
uint64_t treeSize(const loop::VRef &v, std::map<const loop::VNode *, uint64_t> &memo,
                  uint64_t cap) {
  if (auto it = memo.find(v.get()); it != memo.end()) return it->second;
  uint64_t n = 1;
  for (const loop::VRef &a : v->args)
    n = std::min(cap, n + treeSize(a, memo, cap));
  for (const auto &iv : v->indirect)
    n = std::min(cap, n + treeSize(iv.second, memo, cap));
  memo[v.get()] = n;
  return n;
}

/// v with each shared node written once (`#k` refers back): linear in the DAG, where
/// loop::toString is exponential for bodies that reuse values at every level (tree walks).
void dagString(const loop::VRef &v, std::map<const loop::VNode *, int> &ids, std::ostream &os) {
  if (auto it = ids.find(v.get()); it != ids.end()) {
    os << "#" << it->second;
    return;
  }
  int id = static_cast<int>(ids.size());
  ids[v.get()] = id;
  os << "(" << static_cast<int>(v->kind) << ":" << dtypeName(v->dtype) << ":" << v->fval << ":"
     << v->ival << ":" << static_cast<int>(v->uop) << ":" << static_cast<int>(v->bop) << ":"
     << v->bits;
  if (v->kind == loop::VKind::SymInt || v->kind == loop::VKind::Load)
    os << ":" << sym::toString(v->sym);
  if (v->buf) os << ":" << v->buf->name;
  for (const auto &[var, val] : v->indirect) {
    os << " " << sym::toString(var) << "=";
    dagString(val, ids, os);
  }
  for (const loop::VRef &a : v->args) {
    os << " ";
    dagString(a, ids, os);
  }
  os << ")";
}

/// The body's text for the key: loop::toString (keys of earlier tuning files stay valid)
/// unless that text would be huge, then the shared-node form.
std::string bodyText(const loop::VRef &body) {
  constexpr uint64_t kTreeLimit = 1 << 16;
  std::map<const loop::VNode *, uint64_t> memo;
  if (treeSize(body, memo, kTreeLimit + 1) <= kTreeLimit) return loop::toString(body);
  std::map<const loop::VNode *, int> ids;
  std::ostringstream os;
  os << "dag";
  dagString(body, ids, os);
  return os.str();
}

} // namespace

std::string tuningKey(const loop::KernelGroup &g) {
  std::ostringstream os;
  os << static_cast<int>(g.cuda.strategy) << "/" << g.outerRank << "/" << g.cuda.tileDim;
  for (const loop::Kernel *k : g.kernels) {
    os << "|" << static_cast<int>(k->kind) << ":" << dtypeName(k->out->dtype)
       << ir::shapeToString(k->out->shape) << ir::shapeToString(k->rsizes);
    if (k->body) os << bodyText(k->body);
    if (k->kind == loop::KernelKind::Attention) os << ir::shapeToString(k->attn.dims);
  }
  return fmt::format("{:016x}", fnv1a(os.str()));
}

std::vector<TuningConfig> tuningCandidates(const loop::KernelGroup &g) {
  const loop::CudaSchedule &s = g.cuda;
  TuningConfig h{s.block, s.vector, s.rowsPerWarp};
  std::vector<TuningConfig> out{h};
  auto add = [&](TuningConfig c) {
    if (c.block < 32 || c.block > 1024) return;
    for (const TuningConfig &o : out)
      if (o == c) return;
    out.push_back(c);
  };
  switch (s.strategy) {
  case loop::CudaStrategy::Elementwise:
    if (s.tileDim >= 0) break; // tiles are 32 wide with block/32 rows: one shape
    for (int b : {128, 256, 512})
      add({b, h.vector, h.rowsPerWarp});
    if (h.vector == 4) add({h.block, 1, h.rowsPerWarp});
    break;
  case loop::CudaStrategy::ThreadPerOutput:
    for (int b : {128, 256, 512})
      add({b, h.vector, h.rowsPerWarp});
    break;
  case loop::CudaStrategy::BlockPerOutput:
  case loop::CudaStrategy::BlockPerOuter:
    add({h.block / 2, h.vector, h.rowsPerWarp});
    add({h.block * 2, h.vector, h.rowsPerWarp});
    break;
  case loop::CudaStrategy::FusedAttention: {
    // Static shared memory: the block's query rows plus a key and a value tile, 48 KiB.
    const loop::AttentionCall &a = g.kernels.front()->attn;
    int64_t d = a.dims[4]->value + 1, dv = a.dims[5]->value + 1;
    auto fits = [&](int block, int rows) {
      return (block / 32 * rows * d + 32 * d + 32 * dv) * 4 <= 48 * 1024;
    };
    for (int r : {1, 4})
      if (fits(h.block, r)) add({h.block, h.vector, r});
    if (fits(128, h.rowsPerWarp)) add({128, h.vector, h.rowsPerWarp});
    break;
  }
  }
  return out;
}

} // namespace kiln::sched
