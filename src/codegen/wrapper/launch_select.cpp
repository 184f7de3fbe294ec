#include "codegen/wrapper/launch_select.h"

#include "support/error.h"

#include <climits>
#include <fmt/format.h>

namespace kiln::codegen {

namespace {

struct Branch {
  LaunchCall call;
  std::vector<std::pair<int64_t, int64_t>> ranges;
};

bool sameLaunch(const LaunchCall &a, const LaunchCall &b) {
  return a.index == b.index && a.grid == b.grid && std::equal(a.block, a.block + 3, b.block) &&
         a.sharedBytes == b.sharedBytes;
}

/// `w` in one of the ranges, as a C condition.
std::string condition(const std::vector<std::pair<int64_t, int64_t>> &ranges) {
  std::vector<std::string> terms;
  for (auto [lo, hi] : ranges) {
    if (lo == INT64_MIN && hi == INT64_MAX) return "true";
    if (lo == INT64_MIN)
      terms.push_back(fmt::format("w < INT64_C({})", hi));
    else if (hi == INT64_MAX)
      terms.push_back(fmt::format("w >= INT64_C({})", lo));
    else
      terms.push_back(fmt::format("(w >= INT64_C({}) && w < INT64_C({}))", lo, hi));
  }
  return fmt::format("{}", fmt::join(terms, " || "));
}

} // namespace

std::string printLaunchSelection(const LaunchCall &base, const KernelSource &ks,
                                 const std::function<std::string(sym::Expr)> &cpp,
                                 const DeviceOps &ops) {
  KILN_ASSERT(ks.variants.size() >= 2, "a launch selection needs two or more variants");
  std::vector<Branch> branches;
  for (const LaunchVariant &v : ks.variants) {
    LaunchCall c = base;
    c.name = ks.functions.at(static_cast<size_t>(v.function));
    c.index = base.index + v.function;
    c.grid.clear();
    for (const sym::Expr &e : v.launch.grid)
      c.grid.push_back(cpp(e));
    std::copy(v.launch.block, v.launch.block + 3, c.block);
    c.sharedBytes = v.launch.sharedBytes;
    // Variants that print the same launch share one branch.
    auto same = std::find_if(branches.begin(), branches.end(),
                             [&](const Branch &b) { return sameLaunch(b.call, c); });
    if (same == branches.end()) {
      branches.push_back({c, v.ranges});
      continue;
    }
    same->ranges.insert(same->ranges.end(), v.ranges.begin(), v.ranges.end());
  }
  std::string s =
      fmt::format("{{ // {}: tuned launch by size (sched/tuning_select.cpp)\n", base.name);
  s += fmt::format("    const int64_t w = {};\n", cpp(ks.measure));
  for (size_t i = 0; i < branches.size(); ++i) {
    const Branch &b = branches[i];
    if (branches.size() == 1)
      s += "    {\n";
    else if (i == 0)
      s += fmt::format("    if ({}) {{\n", condition(b.ranges));
    else if (i + 1 < branches.size())
      s += fmt::format("    }} else if ({}) {{\n", condition(b.ranges));
    else
      s += fmt::format("    }} else {{ // {}\n", condition(b.ranges));
    s += "    " + ops.launchKernel(b.call);
  }
  s += "    }\n  }\n";
  return s;
}

} // namespace kiln::codegen
