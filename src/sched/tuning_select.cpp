// Applying a tuning file to a scheduled CUDA group (sched/tuning.h). One configuration is
// kept for all sizes: the measured one with the smallest sum over buckets of its time
// relative to that bucket's fastest (ties keep the earlier, heuristic-first, candidate).
// A bucket whose own fastest configuration beats the kept one there by kSelectionMargin
// switches to it. When that leaves more than one configuration, the group gets run-time
// variants chosen by its work (elements times reduction extent, a symbolic expression):
// buckets sorted by work, thresholds at the geometric midpoints of adjacent buckets' work
// (for a product of symbols that is the product of each symbol's geometric midpoint, the
// natural split on sizes spread over orders of magnitude), adjacent buckets with the same
// choice merged. Variants whose printed code is the same (they differ in block only) share
// one function, launched with their own block.
#include "sched/target.h"
#include "sched/tuning.h"
#include "support/error.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include <fmt/format.h>

namespace kiln::sched {

namespace {

void apply(loop::CudaSchedule &s, const TuningConfig &c) {
  s.block = c.block;
  if (c.vector == 1) s.vectorLoads.clear(); // scalar lanes: no 16-byte loads
  s.vector = c.vector;
  s.rowsPerWarp = c.rowsPerWarp;
}

/// Configurations print the same function when they differ only in the block size, which
/// the code reads from blockDim (attention derives its tile of query rows from it).
bool sameCode(const loop::CudaSchedule &a, const loop::CudaSchedule &b) {
  bool blockInCode = a.strategy == loop::CudaStrategy::FusedAttention;
  return a.vector == b.vector && a.rowsPerWarp == b.rowsPerWarp &&
         (!blockInCode || a.block == b.block);
}

sym::Expr workOf(sym::Context &ctx, const loop::KernelGroup &g) {
  sym::Expr w = ctx.constant(0);
  for (const loop::Kernel *k : g.kernels)
    w = w + loop::product(ctx, k->out->shape) * loop::product(ctx, k->rsizes);
  return w;
}

/// Index of the configuration kept for all sizes among the `usable` ones.
int keptConfig(const TunedKernel &k, const std::vector<bool> &usable, size_t buckets) {
  std::vector<double> fastest(buckets, INFINITY);
  for (size_t c = 0; c < k.configs.size(); ++c)
    for (size_t b = 0; usable[c] && b < k.configs[c].ms.size() && b < buckets; ++b)
      fastest[b] = std::min(fastest[b], k.configs[c].ms[b]);
  int kept = -1;
  double keptScore = INFINITY;
  for (size_t c = 0; c < k.configs.size(); ++c) {
    if (!usable[c]) continue;
    double score = 0;
    for (size_t b = 0; b < buckets; ++b) {
      bool timed = b < k.configs[c].ms.size() && fastest[b] > 0 && std::isfinite(fastest[b]);
      score += timed ? k.configs[c].ms[b] / fastest[b] : 1.0;
    }
    if (kept < 0 || score < keptScore - 1e-9) {
      kept = static_cast<int>(c);
      keptScore = score;
    }
  }
  return kept;
}

struct Interval {
  int64_t lo, hi;
  int config;
};

/// The work axis cut into intervals, each with its configuration (adjacent ones merged);
/// empty when the buckets do not determine the group's work.
std::vector<Interval> intervals(const TuningTable &t, const std::vector<int> &choice,
                                sym::Expr measure, int kept) {
  std::vector<std::pair<int64_t, int>> at; // (work, configuration) per bucket
  for (size_t b = 0; b < t.buckets.size(); ++b) {
    for (const sym::Expr &s : sym::freeSymbols(measure))
      if (!t.buckets[b].count(s.name())) return {}; // e.g. a size computed from input data
    at.push_back({sym::evaluate(measure, t.buckets[b]), choice[b]});
  }
  std::sort(at.begin(), at.end());
  // Buckets of equal work that disagree: no evidence for either, keep the common config.
  std::vector<std::pair<int64_t, int>> points;
  for (size_t i = 0; i < at.size(); ++i) {
    if (!points.empty() && points.back().first == at[i].first) {
      if (points.back().second != at[i].second) points.back().second = kept;
      continue;
    }
    points.push_back(at[i]);
  }
  std::vector<Interval> out;
  for (size_t i = 0; i < points.size(); ++i) {
    int64_t lo = INT64_MIN;
    if (i > 0) {
      double a = double(points[i - 1].first), b = double(points[i].first);
      lo = std::max(points[i - 1].first + 1, static_cast<int64_t>(std::llround(std::sqrt(a * b))));
    }
    if (!out.empty() && out.back().config == points[i].second) continue; // extends it
    if (!out.empty()) out.back().hi = lo;
    out.push_back({lo, INT64_MAX, points[i].second});
  }
  return out;
}

std::string configText(const loop::CudaSchedule &s) {
  std::string t = fmt::format("block {} vector {}", s.block, s.vector);
  if (s.strategy == loop::CudaStrategy::FusedAttention)
    t += fmt::format(" rows/warp {}", s.rowsPerWarp);
  return t;
}

} // namespace

void applyTuning(loop::KernelGroup &g, sym::Context &ctx, const Target &t) {
  g.cuda.tuneKey = tuningKey(g);
  std::vector<TuningConfig> candidates = tuningCandidates(g);
  if (t.tuneVariant >= 0) {
    apply(g.cuda, candidates[static_cast<size_t>(t.tuneVariant) % candidates.size()]);
    return;
  }
  if (!t.tuning) return;
  auto it = t.tuning->kernels.find(g.cuda.tuneKey);
  if (it == t.tuning->kernels.end()) return;
  const TunedKernel &k = it->second;
  // Only the group's own candidates: a stale or hand-edited file cannot ask for a
  // configuration the printer does not support.
  std::vector<bool> usable;
  for (const TimedConfig &c : k.configs)
    usable.push_back(std::find(candidates.begin(), candidates.end(), c.config) != candidates.end());
  const size_t nb = t.tuning->buckets.size();
  int kept = keptConfig(k, usable, nb);
  if (kept < 0) return;
  std::vector<int> choice(nb, kept);
  for (size_t b = 0; b < nb && k.best.size() == nb; ++b) {
    int f = k.best[b];
    if (f == kept || !usable[f] || k.configs[f].ms.size() != nb || k.configs[kept].ms.size() != nb)
      continue;
    double keptMs = k.configs[kept].ms[b], bestMs = k.configs[f].ms[b];
    if (bestMs > 0 && keptMs >= kSelectionMargin * bestMs) choice[b] = f;
  }
  const loop::CudaSchedule heuristic = g.cuda;
  apply(g.cuda, k.configs[kept].config);
  if (std::all_of(choice.begin(), choice.end(), [&](int c) { return c == kept; })) return;
  sym::Expr measure = workOf(ctx, g);
  std::vector<Interval> parts = intervals(*t.tuning, choice, measure, kept);
  if (parts.size() < 2) return;
  // Variants in order of their first interval, each with all of its intervals.
  std::vector<int> order;
  std::vector<loop::CudaVariant> variants;
  for (const Interval &p : parts) {
    size_t v = std::find(order.begin(), order.end(), p.config) - order.begin();
    if (v == order.size()) {
      order.push_back(p.config);
      loop::CudaVariant var{heuristic, {}};
      apply(var.schedule, k.configs[p.config].config);
      variants.push_back(var);
    }
    variants[v].ranges.push_back({p.lo, p.hi});
  }
  // Functions: variants with the same code share one, bounded by their largest block.
  std::vector<size_t> firstOf; // per function: its first variant
  for (loop::CudaVariant &v : variants) {
    size_t f = 0;
    while (f < firstOf.size() && !sameCode(variants[firstOf[f]].schedule, v.schedule))
      ++f;
    if (f == firstOf.size()) firstOf.push_back(&v - variants.data());
    v.schedule.function = static_cast<int>(f);
  }
  for (loop::CudaVariant &v : variants)
    for (const loop::CudaVariant &o : variants)
      if (o.schedule.function == v.schedule.function)
        v.schedule.launchBound = std::max(v.schedule.launchBound, o.schedule.block);
  g.cuda = variants.front().schedule;
  g.cudaVariants = std::move(variants);
  g.cudaMeasure = measure;
}

void checkTuningFits(const loop::Program &p, const Target &t) {
  if (!t.tuning || t.tuning->kernels.empty()) return;
  const TuningTable &table = *t.tuning;
  std::string file = table.path.empty() ? "(autotune)" : table.path;
  size_t known = 0;
  for (const loop::KernelGroup &g : p.groups)
    known += !g.cuda.tuneKey.empty() && table.kernels.count(g.cuda.tuneKey);
  if (known == 0)
    fail("--tuning-file '{}': none of its {} kernels is a kernel of this model (it was tuned "
         "for another model, other input shapes or another kiln version); autotune again or "
         "compile without --tuning-file",
         file, table.kernels.size());
  std::set<std::string> dims;
  for (const loop::Buffer *in : p.inputs)
    for (const sym::Expr &d : in->shape)
      for (const sym::Expr &s : sym::freeSymbols(d))
        dims.insert(s.name());
  for (const SizeBucket &b : table.buckets)
    for (auto &[name, v] : b)
      if (!dims.count(name))
        fail("--tuning-file '{}': size bucket {} names '{}', which is no dynamic dim of this "
             "model's inputs ({})",
             file, bucketText(b), name,
             dims.empty() ? "it has none" : fmt::format("{}", fmt::join(dims, ", ")));
}

std::string describeSelection(const loop::KernelGroup &g) {
  if (g.cudaVariants.empty()) return "";
  std::vector<std::string> parts;
  for (const loop::CudaVariant &v : g.cudaVariants) {
    std::vector<std::string> where;
    for (auto [lo, hi] : v.ranges)
      where.push_back(lo == INT64_MIN   ? fmt::format("< {}", hi)
                      : hi == INT64_MAX ? fmt::format(">= {}", lo)
                                        : fmt::format("[{}, {})", lo, hi));
    parts.push_back(
        fmt::format("{}: {}{}", fmt::join(where, " or "), configText(v.schedule),
                    v.schedule.function ? fmt::format(" (_v{})", v.schedule.function) : ""));
  }
  return fmt::format("by {}: {}", sym::toString(g.cudaMeasure), fmt::join(parts, "; "));
}

} // namespace kiln::sched
