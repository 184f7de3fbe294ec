// Tuning files (sched/tuning.h). Format "kiln-tuning-2" (written since per-bucket run-time
// selection):
//   {"format": "kiln-tuning-2", "gpu": ..., "arch": ...,
//    "buckets": [{"batch": 1}, {"batch": 8}, {"batch": 64}],
//    "kernels": {"<key>": {"configs": [{"block": 256, "vector": 4, "rows_per_warp": 2,
//                                       "ms": [<per bucket>]}, ...],
//                          "best": [<per bucket: index into configs>]}}}
// Format "kiln-tuning-1" (read only) held one configuration per kernel:
//   "kernels": {"<key>": {"block": ..., "vector": ..., "rows_per_warp": ..., "ms": [...]}}
// with buckets as text ("batch=1,seq=8").
#include "sched/tuning.h"

#include "support/error.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include <fmt/format.h>

namespace kiln::sched {

namespace {

constexpr const char *kFormat1 = "kiln-tuning-1", *kFormat2 = "kiln-tuning-2";

TuningConfig configOf(const nlohmann::json &v) {
  return {v.at("block").get<int>(), v.at("vector").get<int>(), v.at("rows_per_warp").get<int>()};
}

/// "batch=1,seq=8" or "static" (format 1 buckets).
SizeBucket parseBucketText(const std::string &path, const std::string &text) {
  SizeBucket b;
  if (text == "static") return b;
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    std::string part = text.substr(at, comma - at);
    size_t eq = part.find('=');
    char *end = nullptr;
    long long v = eq == std::string::npos ? 0 : std::strtoll(part.c_str() + eq + 1, &end, 10);
    if (eq == std::string::npos || eq == 0 || !end || *end || end == part.c_str() + eq + 1)
      fail("--tuning-file '{}': size bucket \"{}\" is not NAME=VALUE,...", path, text);
    b[part.substr(0, eq)] = v;
    at = comma + 1;
  }
  return b;
}

void readFormat1(const std::string &path, const nlohmann::json &j, TuningTable &t) {
  for (const auto &name : j.value("buckets", std::vector<std::string>{}))
    t.buckets.push_back(parseBucketText(path, name));
  for (auto &[key, v] : j.at("kernels").items()) {
    TunedKernel k;
    k.configs.push_back({configOf(v), v.value("ms", std::vector<double>{})});
    t.kernels[key] = k; // no per-bucket bests: one configuration for all sizes
  }
}

void readFormat2(const std::string &path, const nlohmann::json &j, TuningTable &t) {
  for (const auto &b : j.at("buckets")) {
    if (!b.is_object()) fail("--tuning-file '{}': a size bucket is not an object", path);
    SizeBucket sb;
    for (auto &[name, v] : b.items()) {
      if (!v.is_number_integer())
        fail("--tuning-file '{}': size bucket {} gives symbol '{}' a value that is not an integer",
             path, t.buckets.size(), name);
      sb[name] = v.get<int64_t>();
    }
    t.buckets.push_back(sb);
  }
  const size_t nb = t.buckets.size();
  for (auto &[key, v] : j.at("kernels").items()) {
    TunedKernel k;
    for (const auto &c : v.at("configs"))
      k.configs.push_back({configOf(c), c.at("ms").get<std::vector<double>>()});
    k.best = v.at("best").get<std::vector<int>>();
    if (k.configs.empty()) fail("--tuning-file '{}': kernel {} has no configs", path, key);
    for (size_t c = 0; c < k.configs.size(); ++c)
      if (k.configs[c].ms.size() != nb)
        fail("--tuning-file '{}': kernel {} config {} has {} times for {} size buckets", path, key,
             c, k.configs[c].ms.size(), nb);
    if (k.best.size() != nb)
      fail("--tuning-file '{}': kernel {} has {} 'best' entries for {} size buckets", path, key,
           k.best.size(), nb);
    for (int b : k.best)
      if (b < 0 || static_cast<size_t>(b) >= k.configs.size())
        fail("--tuning-file '{}': kernel {}: 'best' index {} is not one of its {} configs", path,
             key, b, k.configs.size());
    t.kernels[key] = k;
  }
}

} // namespace

std::string bucketText(const SizeBucket &b) {
  if (b.empty()) return "static";
  std::string s;
  for (auto &[name, v] : b)
    s += fmt::format("{}{}={}", s.empty() ? "" : ",", name, v);
  return s;
}

TuningTable readTuningFile(const std::string &path) {
  std::ifstream in(path);
  if (!in) fail("--tuning-file '{}': cannot be read", path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception &e) {
    fail("--tuning-file '{}': not valid JSON ({})", path, e.what());
  }
  std::string format = j.is_object() ? j.value("format", "") : "";
  if (format != kFormat1 && format != kFormat2)
    fail("--tuning-file '{}': not a kiln tuning file (format \"{}\" or \"{}\")", path, kFormat2,
         kFormat1);
  TuningTable t;
  t.path = path;
  try {
    t.gpu = j.value("gpu", "");
    t.arch = j.value("arch", "");
    if (format == kFormat1)
      readFormat1(path, j, t);
    else
      readFormat2(path, j, t);
  } catch (const nlohmann::json::exception &e) {
    fail("--tuning-file '{}': malformed entry ({})", path, e.what());
  }
  return t;
}

void writeTuningFile(const TuningTable &t, const std::string &path) {
  nlohmann::json j;
  j["format"] = kFormat2;
  j["gpu"] = t.gpu;
  j["arch"] = t.arch;
  j["buckets"] = nlohmann::json::array();
  for (const SizeBucket &b : t.buckets)
    j["buckets"].push_back(b);
  j["kernels"] = nlohmann::json::object();
  for (auto &[key, k] : t.kernels) {
    nlohmann::json configs = nlohmann::json::array();
    for (const TimedConfig &c : k.configs)
      configs.push_back({{"block", c.config.block},
                         {"vector", c.config.vector},
                         {"rows_per_warp", c.config.rowsPerWarp},
                         {"ms", c.ms}});
    j["kernels"][key] = {{"configs", configs}, {"best", k.best}};
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(1) << "\n";
    if (!out) {
      std::remove(tmp.c_str());
      fail("cannot write tuning file '{}'", path);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot write tuning file '{}'", path);
  }
}

} // namespace kiln::sched
