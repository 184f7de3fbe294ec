// The autotuner. Every scheduled CUDA kernel has a short list of candidate configurations
// (sched/tuning.cpp); variant v compiles the model with candidate v of every kernel (modulo
// its list), so four builds cover every candidate. Each variant runs on the GPU at each size
// bucket (every dynamic dim at its minimum, geometric middle and maximum) with the runtime
// plugin's kernel timing on (KILN_CUDA_KERNEL_TIMES, runtime/cuda/kernel_timing.h). Kernels
// with the same key (repeated layers) are timed together. The file records every measured
// configuration's time per bucket and each bucket's fastest; the compile that reads it
// decides what runs where (sched/tuning_select.cpp).
#include "cli/autotune.h"

#include "cli/model_lib.h"
#include "cli/run_session.h"
#include "support/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <fmt/format.h>

namespace kiln::cli {

namespace {

namespace fs = std::filesystem;
constexpr int kVariants = 4; // the longest candidate list (sched/tuning.cpp)
constexpr int kRuns = 5;     // timed runs per bucket after one warm-up
constexpr int64_t kMaxBucketDim = 4096;

std::vector<kiln_tensor_info> inputInfos(const ModelLib &lib, kiln_container *c) {
  int32_t n = 0;
  lib.check(lib.kiln_num_inputs(c, &n), "kiln_num_inputs");
  std::vector<kiln_tensor_info> infos(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    infos[i].struct_size = sizeof(kiln_tensor_info);
    lib.check(lib.kiln_input_info(c, i, &infos[i]), "kiln_input_info");
  }
  return infos;
}

/// Per dynamic symbol, its values at the buckets (min, geometric middle, max).
std::vector<sched::SizeBucket> sizeBuckets(const ModelLib &lib, kiln_container *c) {
  std::map<std::string, std::pair<int64_t, int64_t>> ranges;
  for (const kiln_tensor_info &info : inputInfos(lib, c))
    for (int32_t d = 0; d < info.ndim; ++d)
      if (info.dims[d] < 0 && info.dim_names && info.dim_names[d])
        ranges[info.dim_names[d]] = {std::max<int64_t>(info.dim_min[d], 1),
                                     std::min(info.dim_max[d], kMaxBucketDim)};
  std::vector<sched::SizeBucket> buckets(ranges.empty() ? 1 : 3);
  for (auto &[name, r] : ranges) {
    int64_t mid = std::llround(std::sqrt(double(r.first) * double(r.second)));
    buckets[0][name] = r.first;
    buckets[1][name] = std::clamp(mid, r.first, r.second);
    buckets[2][name] = r.second;
  }
  // Small ranges give equal buckets: keep each distinct one once.
  std::vector<sched::SizeBucket> unique;
  for (auto &b : buckets)
    if (std::find(unique.begin(), unique.end(), b) == unique.end()) unique.push_back(b);
  return unique;
}

std::map<std::string, std::vector<int64_t>> shapesAt(const ModelLib &lib, kiln_container *c,
                                                     const std::map<std::string, int64_t> &b) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const kiln_tensor_info &info : inputInfos(lib, c)) {
    std::vector<int64_t> dims;
    for (int32_t d = 0; d < info.ndim; ++d)
      dims.push_back(info.dims[d] >= 0 ? info.dims[d] : b.at(info.dim_names[d]));
    shapes[info.name] = dims;
  }
  return shapes;
}

/// Mean ms per run of each kernel name, from the plugin's timing file.
std::map<std::string, double> readTimes(const std::string &path, int runs) {
  std::ifstream in(path);
  if (!in) fail("autotune: the CUDA runtime wrote no kernel times ({})", path);
  nlohmann::json j = nlohmann::json::parse(in);
  std::map<std::string, double> out;
  for (auto &[name, v] : j.at("kernels").items())
    out[name] = v.at("ms").get<double>() / runs;
  return out;
}

/// One kernel's entry: its distinct configurations (a short candidate list repeats in the
/// later variant builds; repeated measurements are averaged) with their times per bucket, in
/// candidate order (the heuristic's first), and the fastest per bucket (ties: the earlier).
sched::TunedKernel measured(const std::vector<sched::TuningConfig> &byVariant,
                            const std::vector<std::vector<double>> &time, size_t buckets) {
  sched::TunedKernel k;
  std::vector<int> count;
  for (size_t v = 0; v < byVariant.size(); ++v) {
    size_t c = 0;
    while (c < k.configs.size() && !(k.configs[c].config == byVariant[v]))
      ++c;
    if (c == k.configs.size()) {
      k.configs.push_back({byVariant[v], std::vector<double>(buckets, 0.0)});
      count.push_back(0);
    }
    ++count[c];
    for (size_t b = 0; b < buckets; ++b)
      k.configs[c].ms[b] += time[v][b];
  }
  for (size_t c = 0; c < k.configs.size(); ++c)
    for (double &ms : k.configs[c].ms)
      ms /= count[c];
  for (size_t b = 0; b < buckets; ++b) {
    int best = 0;
    for (size_t c = 1; c < k.configs.size(); ++c)
      if (k.configs[c].ms[b] < k.configs[best].ms[b]) best = static_cast<int>(c);
    k.best.push_back(best);
  }
  return k;
}

} // namespace

sched::TuningTable autotune(const aot::CompileOptions &base, const std::string &tuningPath) {
  if (base.target.device != sched::DeviceKind::Cuda)
    fail("--autotune tunes CUDA kernels: use it with --device cuda");
  fs::path dir = fs::temp_directory_path() / fmt::format("kiln-autotune-{}", ::getpid());
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  std::string timesPath = (dir / "times.json").string();
  ::setenv("KILN_CUDA_KERNEL_TIMES", timesPath.c_str(), 1); // read when the plugin loads
  // time[key][variant][bucket]; the config each variant gave each key.
  std::map<std::string, std::vector<std::vector<double>>> time;
  std::map<std::string, std::vector<sched::TuningConfig>> configs;
  std::vector<sched::SizeBucket> bucketsSeen;
  for (int v = 0; v < kVariants; ++v) {
    aot::CompileOptions o = base;
    o.target.tuneVariant = v;
    o.outputPath = (dir / fmt::format("variant{}.so", v)).string();
    o.keepSources = false;
    o.onStage = nullptr;
    aot::CompileStats st = aot::compileModel(o);
    ModelLib lib(o.outputPath);
    ContainerOptions co;
    co.device = "cuda";
    std::vector<sched::SizeBucket> buckets;
    {
      kiln_container *probe = nullptr;
      try {
        probe = createContainer(lib, co);
      } catch (const UserError &e) {
        fail("--autotune times kernels on this machine's GPU, which cannot be used: {}\n"
             "Autotune on a machine with an NVIDIA GPU and pass its file with --tuning-file, "
             "or compile without either (heuristic launch configurations)",
             e.what());
      }
      buckets = sizeBuckets(lib, probe);
      lib.kiln_container_destroy(probe);
    }
    if (bucketsSeen.empty()) bucketsSeen = buckets;
    KILN_ASSERT(buckets == bucketsSeen, "autotune variants of one model have other size buckets");
    for (size_t bi = 0; bi < buckets.size(); ++bi) {
      kiln_container *c = createContainer(lib, co);
      {
        RunSession session(lib, c, true);
        session.syntheticInputs(shapesAt(lib, c, buckets[bi]));
        session.prepareOutputs();
        session.runOnce(); // warm-up, timed too: averaged in below as one of kRuns + 1
        for (int r = 0; r < kRuns; ++r)
          session.runOnce();
      }
      lib.kiln_container_destroy(c); // unloads the module: the plugin writes timesPath
      std::map<std::string, double> ms = readTimes(timesPath, kRuns + 1);
      std::map<std::string, double> byKey;
      for (const auto &k : st.cudaKernels)
        if (ms.count(k.name)) byKey[k.tuneKey] += ms[k.name];
      for (const auto &k : st.cudaKernels) {
        auto &t = time[k.tuneKey];
        t.resize(kVariants, std::vector<double>(buckets.size(), 0.0));
        t[v][bi] = byKey[k.tuneKey];
        auto &cfg = configs[k.tuneKey];
        cfg.resize(kVariants);
        cfg[v] = k.config;
      }
    }
    std::cerr << fmt::format("kiln: autotune: variant {}/{} timed at {} size bucket(s)\n", v + 1,
                             kVariants, buckets.size());
  }
  sched::TuningTable table;
  table.gpu = "cuda:0";
  table.arch = base.target.cudaArchs.empty() ? "" : base.target.cudaArchs.back();
  table.buckets = bucketsSeen;
  for (auto &[key, t] : time)
    table.kernels[key] = measured(configs[key], t, bucketsSeen.size());
  sched::writeTuningFile(table, tuningPath);
  return table;
}

} // namespace kiln::cli
