// Packed weights are shared by the runners of one container (one copy per constants
// generation), a constant update still reaches every runner, and only pages of read-only file
// mappings are ever dropped (WeightStore). The model is written here: y = x B through the
// matmul shim, B a constant, so its packed copy goes to the pinned set's store.
#include "container.h"
#include "weight_store.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

// Small M and a square B: oneDNN packs B into a blocked layout (checked by the tests).
constexpr int64_t kM = 2, kK = 256, kN = 256;
const int64_t xDims[] = {kM, kK};
const int64_t yDims[] = {kM, kN};
const int32_t noSymbols[] = {-1, -1};
const int64_t bDims[] = {kK, kN};
const int64_t sDims[] = {16};
const kiln_io_desc_v1 inputs[] = {{"x", {kDLFloat, 32, 1}, 2, xDims, noSymbols}};
const kiln_io_desc_v1 outputs[] = {{"y", {kDLFloat, 32, 1}, 2, yDims, noSymbols}};
// "s" is unused by the run; it makes an update of "b" alone partial (the set is copied).
const kiln_constant_desc_v1 constants[] = {
    {"b", {kDLFloat, 32, 1}, 2, bDims, sizeof(float) * kK *kN, 0},
    {"s", {kDLFloat, 32, 1}, 1, sDims, sizeof(float) * 16, sizeof(float) * kK *kN}};

// Called inside each run after the matmul with the run's runner (tests coordinate runs).
std::function<void(void *)> afterMatmul;

int bindShapes(const int64_t *const *, const int32_t *, int64_t *, char *, size_t) {
  return KILN_OK;
}
void outputDims(const int64_t *, int64_t *const *out) {
  out[0][0] = kM;
  out[0][1] = kN;
}
int run(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *,
        void *const *consts) {
  kiln_matmul_params_v1 p{};
  p.batch = 1;
  p.m = kM;
  p.n = kN;
  p.k = kK;
  p.lda = kK;
  p.ldb = kN;
  p.ldc = kN;
  p.a_batch_stride = kM * kK;
  p.b_batch_stride = kK * kN;
  p.c_batch_stride = kM * kN;
  p.alpha = 1.f;
  p.beta = 1.f;
  int st = kiln_shim_matmul_v1(
      static_cast<kiln_shim_ctx *>(ctx->runner), 7, static_cast<const float *>(in[0]),
      static_cast<const float *>(consts[0]), nullptr, static_cast<float *>(out[0]), &p);
  if (st == KILN_OK && afterMatmul) afterMatmul(ctx->runner);
  return st;
}

kiln_model_desc_v1 makeDesc(const void *blob, size_t blobSize) {
  kiln_model_desc_v1 d{};
  d.struct_size = sizeof d;
  d.abi_version = KILN_ABI_VERSION;
  d.shim_version = 1;
  d.device = "cpu";
  d.num_inputs = d.num_outputs = 1;
  d.num_constants = 2;
  d.inputs = inputs;
  d.outputs = outputs;
  d.constants = constants;
  d.weights = static_cast<const uint8_t *>(blob);
  d.weights_size = blobSize;
  d.bind_shapes = bindShapes;
  d.output_dims = outputDims;
  d.run = run;
  d.cpu_isa = "x86-64";
  d.cpu_features = "";
  return d;
}

// The weights blob: b, then s (zeros).
std::vector<float> blobOf(const std::vector<float> &b) {
  std::vector<float> blob(b);
  blob.resize(b.size() + 16, 0.f);
  return blob;
}

std::vector<float> randomFloats(unsigned seed, size_t n) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float &f : v)
    f = u(rng);
  return v;
}

// x B in float64.
std::vector<double> reference(const std::vector<float> &x, const std::vector<float> &b) {
  std::vector<double> y(kM * kN, 0.0);
  for (int64_t i = 0; i < kM; ++i)
    for (int64_t j = 0; j < kN; ++j)
      for (int64_t q = 0; q < kK; ++q)
        y[i * kN + j] += double(x[i * kK + q]) * b[q * kN + j];
  return y;
}

double relErr(const std::vector<float> &got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

// A temporary weights file holding blob; its path, or "" when it could not be written.
std::string writeWeightsFile(const std::vector<float> &blob) {
  char path[] = "/tmp/kiln_shared_weights_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return "";
  const ssize_t bytes = static_cast<ssize_t>(blob.size() * sizeof(float));
  const bool whole = write(fd, blob.data(), blob.size() * sizeof(float)) == bytes;
  close(fd);
  if (!whole) unlink(path);
  return whole ? path : "";
}

// fp32 sums of 256 products of values in [-1, 1]: ~1e-7 relative; a wrong B is ~1.
constexpr double kTol = 1e-5;

kiln::rt::WeightStore &activeStore(kiln_container *c) {
  return *c->slots[c->activeSlot.load()]->derived;
}

int runOnce(kiln_container *c, const std::vector<float> &x, std::vector<float> &y) {
  void *in[] = {const_cast<float *>(x.data())};
  void *out[] = {y.data()};
  return kiln_rt_run_minimal(c, in, out);
}

int updateB(kiln_container *c, int32_t buffer, std::vector<float> &b) {
  const char *names[] = {"b"};
  int64_t shape[] = {kK, kN};
  DLTensor t{};
  t.data = b.data();
  t.device = {kDLCPU, 0};
  t.ndim = 2;
  t.dtype = {kDLFloat, 32, 1};
  t.shape = shape;
  return kiln_rt_update_constants(c, buffer, names, &t, 1, 0);
}

// Runs twice at once, so the two runs hold different runners: the first run's matmul
// finishes (and packs B) before the second starts. Returns the two runners.
std::pair<void *, void *> runOverlapping(kiln_container *c, const std::vector<float> &x,
                                         std::vector<float> &y1, std::vector<float> &y2) {
  std::mutex mu;
  std::condition_variable cv;
  bool firstPacked = false, secondDone = false;
  void *runners[2] = {nullptr, nullptr};
  thread_local int role = 0;
  afterMatmul = [&](void *runner) {
    std::unique_lock<std::mutex> lock(mu);
    runners[role] = runner;
    if (role == 0) {
      firstPacked = true;
      cv.notify_all();
      cv.wait(lock, [&] { return secondDone; });
    }
  };
  int st1 = -1, st2 = -1;
  std::thread first([&] {
    role = 0;
    st1 = runOnce(c, x, y1);
  });
  std::thread second([&] {
    role = 1;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return firstPacked; });
    }
    st2 = runOnce(c, x, y2);
    std::lock_guard<std::mutex> lock(mu);
    secondDone = true;
    cv.notify_all();
  });
  first.join();
  second.join();
  afterMatmul = nullptr;
  EXPECT_EQ(st1, KILN_OK) << kiln_rt_last_error();
  EXPECT_EQ(st2, KILN_OK) << kiln_rt_last_error();
  return {runners[0], runners[1]};
}

struct Container {
  kiln_container *c = nullptr;
  kiln_model_desc_v1 desc;
  Container(const void *blob, size_t size, const char *weightsPath = nullptr, int runners = 2)
      : desc(makeDesc(blob, size)) {
    kiln_container_options o;
    kiln_rt_container_options_init(&o);
    o.num_runners = runners;
    o.threads_per_run = 1;
    o.weights_path = weightsPath;
    EXPECT_EQ(kiln_rt_container_create_v1(&desc, &o, &c), KILN_OK) << kiln_rt_last_error();
  }
  ~Container() { kiln_rt_container_destroy(c); }
};

TEST(SharedWeights, TwoRunnersShareOnePackedCopy) {
  std::vector<float> b = randomFloats(1, kK * kN), x = randomFloats(2, kM * kK);
  std::vector<float> blob = blobOf(b);
  Container k(blob.data(), blob.size() * sizeof(float));
  ASSERT_NE(k.c, nullptr);
  std::vector<float> y1(kM * kN), y2(kM * kN);
  auto [r1, r2] = runOverlapping(k.c, x, y1, y2);
  ASSERT_NE(r1, r2) << "the overlapping runs must hold two runners";
  std::vector<double> want = reference(x, b);
  EXPECT_LT(relErr(y1, want), kTol);
  EXPECT_LT(relErr(y2, want), kTol);

  kiln::rt::WeightStore &store = activeStore(k.c);
  ASSERT_EQ(store.size(), 1u) << "oneDNN kept B plain: the test shape no longer packs";
  EXPECT_EQ(store.builds(), 1u) << "the second runner packed its own copy";
  for (void *r : {r1, r2}) {
    auto *runner = static_cast<kiln::rt::Runner *>(r);
    EXPECT_EQ(&runner->dnnl.store(), &store);
    EXPECT_EQ(runner->dnnl.numWeights(), 1u);
  }
  // A heap blob is not a file mapping: nothing of it may be dropped, B reads back intact.
  EXPECT_EQ(store.releasedBytes(), 0u);
  std::vector<float> back(b.size());
  int64_t shape[] = {kK, kN};
  DLTensor t{};
  t.data = back.data();
  t.device = {kDLCPU, 0};
  t.ndim = 2;
  t.dtype = {kDLFloat, 32, 1};
  t.shape = shape;
  ASSERT_EQ(kiln_rt_read_constant(k.c, KILN_CONSTANTS_ACTIVE, "b", &t), KILN_OK);
  EXPECT_EQ(back, b);
}

TEST(SharedWeights, UpdatesReachBothRunners) {
  std::vector<float> b = randomFloats(3, kK * kN), x = randomFloats(4, kM * kK);
  std::vector<float> blob = blobOf(b);
  Container k(blob.data(), blob.size() * sizeof(float));
  ASSERT_NE(k.c, nullptr);
  std::vector<float> y1(kM * kN), y2(kM * kN);
  runOverlapping(k.c, x, y1, y2); // both runners now hold B's packed copy

  auto check = [&](std::vector<float> &bNew, const char *what) {
    std::vector<double> want = reference(x, bNew);
    auto [r1, r2] = runOverlapping(k.c, x, y1, y2);
    EXPECT_NE(r1, r2);
    EXPECT_LT(relErr(y1, want), kTol) << what;
    EXPECT_LT(relErr(y2, want), kTol) << what;
    EXPECT_EQ(activeStore(k.c).builds(), 1u) << what;
  };
  // An update of the active set publishes a new set with its own store.
  std::vector<float> b2 = randomFloats(5, kK * kN);
  ASSERT_EQ(updateB(k.c, KILN_CONSTANTS_ACTIVE, b2), KILN_OK) << kiln_rt_last_error();
  check(b2, "active update");
  // Fill the inactive set and swap.
  std::vector<float> b3 = randomFloats(6, kK * kN);
  ASSERT_EQ(updateB(k.c, KILN_CONSTANTS_INACTIVE, b3), KILN_OK) << kiln_rt_last_error();
  ASSERT_EQ(kiln_rt_swap_constants(k.c), KILN_OK);
  check(b3, "inactive update + swap");
  // The inactive set is now b2's, whose store holds b2 packed: writing it in place must drop
  // that store, or the next swap would run on b2's packed copy.
  std::vector<float> b4 = randomFloats(7, kK * kN);
  ASSERT_EQ(updateB(k.c, KILN_CONSTANTS_INACTIVE, b4), KILN_OK) << kiln_rt_last_error();
  ASSERT_EQ(kiln_rt_swap_constants(k.c), KILN_OK);
  check(b4, "in-place inactive update + swap");
}

// A weights file, mapped read-only by the container: the packed constant's pages are dropped
// and fault back in unchanged when read.
TEST(SharedWeights, DropsPackedSourcePagesOfAWeightsFile) {
  std::vector<float> b = randomFloats(8, kK * kN), x = randomFloats(9, kM * kK);
  const std::string file = writeWeightsFile(blobOf(b));
  ASSERT_FALSE(file.empty());
  const char *path = file.c_str();
  {
    Container k(nullptr, 0, path);
    ASSERT_NE(k.c, nullptr);
    std::vector<float> y1(kM * kN), y2(kM * kN);
    runOverlapping(k.c, x, y1, y2);
    std::vector<double> want = reference(x, b);
    EXPECT_LT(relErr(y1, want), kTol);
    EXPECT_LT(relErr(y2, want), kTol);
    kiln::rt::WeightStore &store = activeStore(k.c);
    EXPECT_EQ(store.builds(), 1u);
    // B is 256 KiB at offset 0 of a page-aligned mapping: every page of it goes (unless
    // KILN_RELEASE_WEIGHT_PAGES=0 turns that off).
    if (kiln::rt::releaseWeightPagesEnabled()) {
      EXPECT_EQ(store.releasedBytes(), b.size() * sizeof(float));
    }
    std::vector<float> back(b.size());
    int64_t shape[] = {kK, kN};
    DLTensor t{};
    t.data = back.data();
    t.device = {kDLCPU, 0};
    t.ndim = 2;
    t.dtype = {kDLFloat, 32, 1};
    t.shape = shape;
    ASSERT_EQ(kiln_rt_read_constant(k.c, KILN_CONSTANTS_ACTIVE, "b", &t), KILN_OK);
    EXPECT_EQ(back, b) << "dropped pages must fault back in from the file";
    ASSERT_EQ(runOnce(k.c, x, y1), KILN_OK);
    EXPECT_LT(relErr(y1, want), kTol);
    // A partial update copies the mapped set into an owned one (reading every page back
    // in); the mapping's whole pages (all of b's 64) are dropped again, the new values run.
    uint64_t before = store.releasedBytes();
    std::vector<float> b2 = randomFloats(13, kK * kN);
    ASSERT_EQ(updateB(k.c, KILN_CONSTANTS_INACTIVE, b2), KILN_OK) << kiln_rt_last_error();
    if (kiln::rt::releaseWeightPagesEnabled()) {
      EXPECT_EQ(store.releasedBytes(), before + b.size() * sizeof(float));
    }
    ASSERT_EQ(kiln_rt_swap_constants(k.c), KILN_OK);
    ASSERT_EQ(runOnce(k.c, x, y1), KILN_OK);
    EXPECT_LT(relErr(y1, reference(x, b2)), kTol);
  }
  unlink(path);
}

// The same product through kiln_shim_matmul_multi_v1 with B as two constants of N/2 columns
// ("b0", "b1"), as a transformer's Q/K/V projections are.
const int64_t halfDims[] = {kK, kN / 2};
const kiln_constant_desc_v1 halves[] = {
    {"b0", {kDLFloat, 32, 1}, 2, halfDims, sizeof(float) * kK *kN / 2, 0},
    {"b1", {kDLFloat, 32, 1}, 2, halfDims, sizeof(float) * kK *kN / 2, sizeof(float) * kK *kN / 2}};
int runMulti(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *,
             void *const *consts) {
  kiln_matmul_multi_params_v1 p{};
  p.m = kM;
  p.k = p.lda = kK;
  p.ldc = kN;
  p.count = 2;
  p.n[0] = p.n[1] = kN / 2;
  const float *b[] = {static_cast<const float *>(consts[0]), static_cast<const float *>(consts[1])};
  return kiln_shim_matmul_multi_v1(static_cast<kiln_shim_ctx *>(ctx->runner), 3,
                                   static_cast<const float *>(in[0]), b, nullptr,
                                   static_cast<float *>(out[0]), &p);
}

// b's two halves side by side are b: [k][0, N/2) then [k][N/2, N), each contiguous.
std::vector<float> halvesOf(const std::vector<float> &b) {
  std::vector<float> out(b.size());
  for (int64_t q = 0; q < kK; ++q)
    for (int64_t j = 0; j < kN; ++j)
      out[(j < kN / 2 ? 0 : kK * kN / 2) + q * (kN / 2) + j % (kN / 2)] = b[q * kN + j];
  return out;
}

// Whether the mapping holding p is advised off huge pages ("nh" in its VmFlags).
bool mappingAdvisedNoHuge(const void *p) {
  FILE *f = std::fopen("/proc/self/smaps", "re");
  if (!f) return false;
  char line[512];
  bool inside = false, nh = false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) // a mapping's first line
      inside = at >= lo && at < hi;
    else if (inside && std::strncmp(line, "VmFlags:", 8) == 0)
      nh = std::strstr(line, " nh") != nullptr;
  }
  std::fclose(f);
  return nh;
}

// A GEMM of several constant B's (kiln_shim_matmul_multi_v1) drops every B's file-backed
// pages once its packed copy is stored, and the mapping is kept off huge pages (a read of a
// small constant beside dropped ones would fault its whole 2 MiB folio back in).
TEST(SharedWeights, MultiMatmulDropsEverySourcesPages) {
  std::vector<float> b = randomFloats(21, kK * kN), x = randomFloats(22, kM * kK);
  const std::string file = writeWeightsFile(halvesOf(b));
  ASSERT_FALSE(file.empty());
  const char *path = file.c_str();
  {
    kiln_model_desc_v1 desc = makeDesc(nullptr, 0);
    desc.constants = halves;
    desc.run = runMulti;
    desc.shim_version = 8;
    kiln_container_options o;
    kiln_rt_container_options_init(&o);
    o.num_runners = 1;
    o.threads_per_run = 1;
    o.weights_path = path;
    kiln_container *c = nullptr;
    ASSERT_EQ(kiln_rt_container_create_v1(&desc, &o, &c), KILN_OK) << kiln_rt_last_error();
    std::vector<float> y(kM * kN);
    ASSERT_EQ(runOnce(c, x, y), KILN_OK) << kiln_rt_last_error();
    EXPECT_LT(relErr(y, reference(x, b)), kTol);
    if (kiln::rt::releaseWeightPagesEnabled()) {
      EXPECT_EQ(activeStore(c).releasedBytes(), b.size() * sizeof(float)) << "both halves go";
      EXPECT_TRUE(mappingAdvisedNoHuge(c->slots[0]->base));
    }
    ASSERT_EQ(runOnce(c, x, y), KILN_OK); // from the packed copy; the file is untouched
    EXPECT_LT(relErr(y, reference(x, b)), kTol);
    kiln_rt_container_destroy(c);
  }
  unlink(path);
}

TEST(SharedWeights, OnlyReadOnlyFileMappingsCount) {
  std::vector<float> heap(4096);
  EXPECT_FALSE(kiln::rt::isReadOnlyFileMapping(heap.data(), heap.size() * sizeof(float)));
  char path[] = "/tmp/kiln_mapping_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::vector<char> bytes(3 * 4096, 1);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  void *ro = mmap(nullptr, bytes.size(), PROT_READ, MAP_PRIVATE, fd, 0);
  void *rw = mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  unlink(path);
  ASSERT_NE(ro, MAP_FAILED);
  ASSERT_NE(rw, MAP_FAILED);
  EXPECT_TRUE(kiln::rt::isReadOnlyFileMapping(ro, bytes.size()));
  EXPECT_TRUE(kiln::rt::isReadOnlyFileMapping(static_cast<char *>(ro) + 100, 5000));
  EXPECT_FALSE(kiln::rt::isReadOnlyFileMapping(ro, bytes.size() + 4096)); // runs past it
  EXPECT_FALSE(kiln::rt::isReadOnlyFileMapping(rw, bytes.size()));        // written pages are anon
  munmap(ro, bytes.size());
  munmap(rw, bytes.size());
}

// Many threads run while another updates B back and forth: every result is x B for one of
// the two values (never a stale or half-built packed copy).
TEST(SharedWeights, StressRunsAgainstUpdates) {
  std::vector<float> b1 = randomFloats(10, kK * kN), b2 = randomFloats(11, kK * kN),
                     x = randomFloats(12, kM * kK);
  const std::vector<double> want1 = reference(x, b1), want2 = reference(x, b2);
  std::vector<float> blob = blobOf(b1);
  Container k(blob.data(), blob.size() * sizeof(float), nullptr, 4);
  ASSERT_NE(k.c, nullptr);
  constexpr int kThreads = 4, kRuns = 150;
  std::atomic<int> bad{0}, failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      std::vector<float> y(kM * kN);
      for (int i = 0; i < kRuns; ++i) {
        if (runOnce(k.c, x, y) != KILN_OK) {
          failed++;
          continue;
        }
        if (relErr(y, want1) > kTol && relErr(y, want2) > kTol) bad++;
      }
    });
  std::thread updater([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (updateB(k.c, KILN_CONSTANTS_ACTIVE, i % 2 ? b1 : b2) != KILN_OK) failed++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (auto &t : threads)
    t.join();
  stop = true;
  updater.join();
  EXPECT_EQ(failed.load(), 0) << kiln_rt_last_error();
  EXPECT_EQ(bad.load(), 0) << "runs saw a B that is neither value";
}

} // namespace
