// The CUDA runtime path on a machine without a GPU: the plugin runs the fake CUDA model
// (tests/gpu/fake_cuda_model) against the mock driver (mock_driver.cpp), which records
// launches, allocations, synchronisations and events.
#include "mock_driver.h"

#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>

extern "C" const kiln_model_desc_v1 *kiln_model_descriptor(void);

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Mock {
  kiln_mock_counters_fn counters;
  kiln_mock_last_launch_fn lastLaunch;
  kiln_mock_set_auto_complete_fn setAutoComplete;
  kiln_mock_complete_events_fn completeEvents;
  kiln_mock_pending_events_fn pendingEvents;
  kiln_mock_set_device_count_fn setDeviceCount;
};

// Points the plugin at the mock before any CUDA container exists; the plugin's dlopen of the
// same path returns this handle, so the hooks see the driver's state.
const Mock &mock() {
  static Mock m = [] {
    setenv("KILN_CUDA_DRIVER_MOCK", KILN_MOCK_DRIVER_PATH, 1);
    void *h = dlopen(KILN_MOCK_DRIVER_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!h) std::abort();
    Mock r;
    r.counters = reinterpret_cast<kiln_mock_counters_fn>(dlsym(h, "kiln_mock_counters"));
    r.lastLaunch = reinterpret_cast<kiln_mock_last_launch_fn>(dlsym(h, "kiln_mock_last_launch"));
    r.setAutoComplete =
        reinterpret_cast<kiln_mock_set_auto_complete_fn>(dlsym(h, "kiln_mock_set_auto_complete"));
    r.completeEvents =
        reinterpret_cast<kiln_mock_complete_events_fn>(dlsym(h, "kiln_mock_complete_events"));
    r.pendingEvents =
        reinterpret_cast<kiln_mock_pending_events_fn>(dlsym(h, "kiln_mock_pending_events"));
    r.setDeviceCount =
        reinterpret_cast<kiln_mock_set_device_count_fn>(dlsym(h, "kiln_mock_set_device_count"));
    return r;
  }();
  return m;
}

kiln_mock_stats counters() {
  kiln_mock_stats c;
  mock().counters(&c);
  return c;
}

constexpr int kWidth = 256;
const DLDataType kF32 = {kDLFloat, 32, 1};

float weight(int i) {
  return i * 0.5f;
}

// A container plus device tensors x, y for one batch size.
struct CudaRun : ::testing::Test {
  kiln_container *c = nullptr;
  DLManagedTensor *x = nullptr, *y = nullptr;
  int64_t batch = 3;
  std::vector<float> hostX;
  const char *device = "cuda";

  void SetUp() override {
    mock().setAutoComplete(1);
    kiln_container_options o;
    kiln_container_options_init(&o);
    o.device = device;
    ASSERT_EQ(kiln_container_create(&o, &c), KILN_OK) << kiln_last_error();
    int64_t dims[2] = {batch, kWidth};
    ASSERT_EQ(kiln_alloc_tensor(c, kF32, 2, dims, &x), KILN_OK) << kiln_last_error();
    ASSERT_EQ(kiln_alloc_tensor(c, kF32, 2, dims, &y), KILN_OK) << kiln_last_error();
    EXPECT_EQ(x->dl_tensor.device.device_type, kDLCUDA);
    hostX.resize(batch * kWidth);
    for (size_t i = 0; i < hostX.size(); ++i)
      hostX[i] = static_cast<float>(i % 7) - 3.0f;
    DLTensor hx = host(hostX.data());
    ASSERT_EQ(kiln_copy_tensor(c, &x->dl_tensor, &hx), KILN_OK) << kiln_last_error();
  }
  void TearDown() override {
    if (x) x->deleter(x);
    if (y) y->deleter(y);
    kiln_container_destroy(c);
  }
  DLTensor host(float *data) {
    static int64_t dims[2];
    dims[0] = batch, dims[1] = kWidth;
    DLTensor t{};
    t.data = data;
    t.device = {kDLCPU, 0};
    t.ndim = 2;
    t.dtype = kF32;
    t.shape = dims;
    return t;
  }
  // Copies y back and checks y = 2 x + w with w[i] = wOf(i).
  template <class W> void expectY(W wOf) {
    std::vector<float> out(batch * kWidth, -1.f);
    DLTensor hy = host(out.data());
    ASSERT_EQ(kiln_copy_tensor(c, &hy, &y->dl_tensor), KILN_OK) << kiln_last_error();
    for (size_t i = 0; i < out.size(); ++i)
      ASSERT_FLOAT_EQ(out[i], 2 * hostX[i] + wOf(static_cast<int>(i % kWidth))) << "at " << i;
  }
  int runV2(void *stream) {
    kiln_run_options ro;
    kiln_run_options_init(&ro);
    ro.stream = stream;
    return kiln_run_v2(c, &ro, &x->dl_tensor, 1, &y->dl_tensor, 1);
  }
};

TEST_F(CudaRun, LaunchesTheKernelWithItsGridAndArguments) {
  void *stream = reinterpret_cast<void *>(0x5000);
  ASSERT_EQ(runV2(stream), KILN_OK) << kiln_last_error();
  kiln_mock_launch L;
  ASSERT_TRUE(mock().lastLaunch(&L));
  EXPECT_STREQ(L.name, "kiln_fake_scale_add");
  EXPECT_EQ(L.grid[0], static_cast<uint32_t>(batch)); // batch * 256 elements / 256 threads
  EXPECT_EQ(L.grid[1], 1u);
  EXPECT_EQ(L.block[0], 256u);
  EXPECT_EQ(L.stream, stream);
  EXPECT_EQ(L.args[0], reinterpret_cast<uint64_t>(x->dl_tensor.data));
  EXPECT_NE(L.args[1], 0u);                                            // the device weights
  EXPECT_NE(L.args[2], reinterpret_cast<uint64_t>(y->dl_tensor.data)); // scratch, copied to y
  EXPECT_EQ(L.args[3], static_cast<uint64_t>(batch * kWidth));
  expectY(weight);
}

TEST_F(CudaRun, SteadyStateRunsAllocateAndSynchroniseNothing) {
  void *s1 = reinterpret_cast<void *>(0x5001), *s2 = reinterpret_cast<void *>(0x5002);
  ASSERT_EQ(runV2(s1), KILN_OK) << kiln_last_error(); // reserves the runner's arena
  kiln_mock_stats before = counters();
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(runV2(s1), KILN_OK) << kiln_last_error();
  kiln_mock_stats after = counters();
  EXPECT_EQ(after.allocs - before.allocs, 0);
  EXPECT_EQ(after.syncs - before.syncs, 0);
  EXPECT_EQ(after.launches - before.launches, 10);
  EXPECT_EQ(after.event_records - before.event_records, 10);
  EXPECT_EQ(after.stream_waits - before.stream_waits, 0); // same stream: ordered already
  ASSERT_EQ(runV2(s2), KILN_OK) << kiln_last_error();
  EXPECT_EQ(counters().stream_waits - after.stream_waits, 1); // new stream waits for the last run
  EXPECT_EQ(counters().ctx_pushes, counters().ctx_pops);
  expectY(weight);
}

TEST_F(CudaRun, RunV1SynchronisesOnTheRunnersStream) {
  kiln_mock_stats before = counters();
  ASSERT_EQ(kiln_run(c, &x->dl_tensor, 1, &y->dl_tensor, 1), KILN_OK) << kiln_last_error();
  EXPECT_GE(counters().syncs - before.syncs, 1);
  expectY(weight);
  DLManagedTensor *out = nullptr;
  ASSERT_EQ(kiln_run_alloc_v2(c, nullptr, &x->dl_tensor, 1, &out, 1), KILN_OK) << kiln_last_error();
  EXPECT_EQ(out->dl_tensor.device.device_type, kDLCUDA);
  EXPECT_EQ(out->dl_tensor.shape[0], batch);
  int64_t live = counters().live_allocs;
  out->deleter(out);
  EXPECT_EQ(counters().live_allocs, live - 1);
}

TEST_F(CudaRun, SwapWaitsForTheGpuWorkOfRunsStillReadingTheWeights) {
  mock().setAutoComplete(0);
  ASSERT_EQ(runV2(nullptr), KILN_OK) << kiln_last_error(); // returns with its event pending
  EXPECT_EQ(mock().pendingEvents(), 1);
  std::vector<float> w2(kWidth);
  for (int i = 0; i < kWidth; ++i)
    w2[i] = 1000.f + i;
  int64_t wd[1] = {kWidth};
  DLTensor wt{w2.data(), {kDLCPU, 0}, 1, kF32, wd, nullptr, 0};
  const char *name = "w";
  ASSERT_EQ(kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, &name, &wt, 1, 0), KILN_OK)
      << kiln_last_error();
  std::atomic<bool> swapped{false};
  std::thread t([&] {
    EXPECT_EQ(kiln_swap_constants(c), KILN_OK) << kiln_last_error();
    swapped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(swapped) << "swap returned while a kernel could still read the old weights";
  int64_t frees = counters().frees;
  // Freeing the old weights must wait the same way; it is serialised behind the swap.
  mock().completeEvents();
  t.join();
  EXPECT_TRUE(swapped);
  EXPECT_EQ(counters().frees, frees);
  mock().setAutoComplete(1);
  ASSERT_EQ(runV2(nullptr), KILN_OK) << kiln_last_error();
  expectY([&](int i) { return w2[i]; });
  // Reading back goes through the host.
  std::vector<float> back(kWidth);
  DLTensor bt{back.data(), {kDLCPU, 0}, 1, kF32, wd, nullptr, 0};
  ASSERT_EQ(kiln_read_constant(c, KILN_CONSTANTS_INACTIVE, "w", &bt), KILN_OK);
  EXPECT_FLOAT_EQ(back[10], weight(10));
  ASSERT_EQ(kiln_free_inactive_constants(c), KILN_OK);
  EXPECT_EQ(counters().frees, frees + 1);
}

TEST_F(CudaRun, DeviceUpdateOfActiveConstants) {
  // Values already on the device are copied device to device.
  int64_t wd[1] = {kWidth};
  DLManagedTensor *w = nullptr;
  ASSERT_EQ(kiln_alloc_tensor(c, kF32, 1, wd, &w), KILN_OK);
  std::vector<float> w3(kWidth, 7.f);
  DLTensor hw{w3.data(), {kDLCPU, 0}, 1, kF32, wd, nullptr, 0};
  ASSERT_EQ(kiln_copy_tensor(c, &w->dl_tensor, &hw), KILN_OK);
  const char *name = "w";
  ASSERT_EQ(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, &name, &w->dl_tensor, 1, 0), KILN_OK)
      << kiln_last_error();
  w->deleter(w);
  ASSERT_EQ(runV2(nullptr), KILN_OK) << kiln_last_error();
  expectY([](int) { return 7.f; });
}

TEST_F(CudaRun, TensorsOnTheWrongDeviceAreRefusedByName) {
  DLTensor hx = host(hostX.data());
  EXPECT_EQ(kiln_run_v2(c, nullptr, &hx, 1, &y->dl_tensor, 1), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "input 'x'"), nullptr) << kiln_last_error();
  EXPECT_NE(std::strstr(kiln_last_error(), "is on cpu"), nullptr) << kiln_last_error();
  DLTensor other = y->dl_tensor;
  other.device.device_id = 1;
  EXPECT_EQ(kiln_run(c, &x->dl_tensor, 1, &other, 1), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "output 'y'"), nullptr) << kiln_last_error();
  EXPECT_NE(std::strstr(kiln_last_error(), "cuda:1"), nullptr) << kiln_last_error();
}

// "cuda:N" opens GPU N's primary context: its allocations and launches happen there, its
// tensors say device_id N, and a tensor on another GPU is refused by name.
struct CudaRunOnSecondGpu : CudaRun {
  kiln_mock_stats before{};
  void SetUp() override {
    mock().setDeviceCount(2);
    device = "cuda:1";
    before = counters();
    CudaRun::SetUp();
  }
  void TearDown() override {
    CudaRun::TearDown();
    mock().setDeviceCount(1);
  }
};

TEST_F(CudaRunOnSecondGpu, AllocatesAndLaunchesOnThatGpu) {
  EXPECT_EQ(x->dl_tensor.device.device_type, kDLCUDA);
  EXPECT_EQ(x->dl_tensor.device.device_id, 1);
  ASSERT_EQ(runV2(nullptr), KILN_OK) << kiln_last_error();
  kiln_mock_launch L;
  ASSERT_TRUE(mock().lastLaunch(&L));
  EXPECT_EQ(L.device, 1);
  kiln_mock_stats now = counters();
  EXPECT_GT(now.allocs_on[1], before.allocs_on[1]);
  EXPECT_EQ(now.allocs_on[0], before.allocs_on[0]);
  expectY(weight);
  DLTensor other = y->dl_tensor;
  other.device.device_id = 0;
  EXPECT_EQ(kiln_run(c, &x->dl_tensor, 1, &other, 1), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "cuda:0"), nullptr) << kiln_last_error();
}

TEST(CudaContainer, AGpuThatIsNotThereIsRefusedByName) {
  mock().setDeviceCount(2);
  kiln_container_options o;
  kiln_container_options_init(&o);
  o.device = "cuda:2";
  kiln_container *c = nullptr;
  EXPECT_EQ(kiln_container_create(&o, &c), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "cuda:2"), nullptr) << kiln_last_error();
  mock().setDeviceCount(1);
}

// Runs from several threads (synchronous and asynchronous) while constants are rewritten and
// swapped: every run sees one whole weight set, and no pin is lost (a lost pin would hang a
// swap; a leaked one too).
TEST(CudaContainer, ConcurrentRunsAndSwaps) {
  mock().setAutoComplete(1);
  kiln_container *c = nullptr;
  ASSERT_EQ(kiln_container_create(nullptr, &c), KILN_OK) << kiln_last_error();
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, failed{0};
  auto worker = [&](int id) {
    int64_t dims[2] = {2, kWidth};
    DLManagedTensor *x = nullptr, *y = nullptr;
    if (kiln_alloc_tensor(c, kF32, 2, dims, &x) || kiln_alloc_tensor(c, kF32, 2, dims, &y)) {
      ++failed;
      return;
    }
    std::memset(x->dl_tensor.data, 0, 2 * kWidth * sizeof(float)); // mock memory is host memory
    for (int i = 0; i < 300; ++i) {
      kiln_run_options ro;
      kiln_run_options_init(&ro);
      ro.flags = (i + id) % 2 ? KILN_RUN_SYNC : 0;
      int st = i % 3 ? kiln_run_v2(c, &ro, &x->dl_tensor, 1, &y->dl_tensor, 1)
                     : kiln_run(c, &x->dl_tensor, 1, &y->dl_tensor, 1);
      if (st) {
        ++failed;
        break;
      }
      auto *out = static_cast<const float *>(y->dl_tensor.data);
      float base = out[0]; // y = w: one set has w[i] = base + i * step
      float step = out[1] - out[0];
      for (int k = 0; k < 2 * kWidth; ++k)
        if (out[k] != base + (k % kWidth) * step) {
          ++torn;
          break;
        }
    }
    x->deleter(x);
    y->deleter(y);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back(worker, t);
  std::thread writer([&] {
    std::vector<float> w(kWidth);
    int64_t wd[1] = {kWidth};
    DLTensor wt{w.data(), {kDLCPU, 0}, 1, kF32, wd, nullptr, 0};
    const char *name = "w";
    for (int k = 1; !stop; ++k) {
      for (int i = 0; i < kWidth; ++i)
        w[i] = 100.f * k + i;
      if (kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, &name, &wt, 1, 0) ||
          kiln_swap_constants(c))
        ++failed;
      if (k % 7 == 0 && kiln_free_inactive_constants(c)) ++failed;
    }
  });
  for (std::thread &t : threads)
    t.join();
  stop = true;
  writer.join();
  EXPECT_EQ(failed, 0) << kiln_last_error();
  EXPECT_EQ(torn, 0);
  kiln_container_destroy(c);
}

// A CUDA model whose shapes depend on an input's values: that input reaches bind_shapes_v2
// as a host copy (the documented synchronisation), the others as NULL.
const void *seenData = nullptr;
float seenValue = 0;
int bindFromData(const int64_t *const *dims, const int32_t *ndims, const void *const *data,
                 int64_t *syms, char *, size_t) {
  seenData = data[0];
  seenValue = data[0] ? static_cast<const float *>(data[0])[kWidth] : -1.f;
  syms[0] = dims[0][0];
  return 0;
}

TEST_F(CudaRun, InputsReadForShapesAreCopiedToTheHost) {
  kiln_model_desc_v1 d = *kiln_model_descriptor();
  static const int32_t onHost[1] = {1};
  d.bind_shapes_v2 = bindFromData;
  d.input_data_on_host = onHost;
  kiln_container *c2 = nullptr;
  ASSERT_EQ(kiln_rt_container_create_v1(&d, nullptr, &c2), KILN_OK) << kiln_last_error();
  int64_t syncs = counters().syncs;
  ASSERT_EQ(kiln_run_v2(c2, nullptr, &x->dl_tensor, 1, &y->dl_tensor, 1), KILN_OK)
      << kiln_last_error();
  EXPECT_NE(seenData, nullptr);
  EXPECT_NE(seenData, x->dl_tensor.data); // a host copy, not the device pointer
  EXPECT_EQ(seenValue, hostX[kWidth]);
  EXPECT_EQ(counters().syncs - syncs, 1); // the one copy to the host
  kiln_container_destroy(c2);
}

TEST(CudaContainer, DeviceChoicesAreChecked) {
  mock();
  kiln_container *c = nullptr;
  kiln_container_options o;
  kiln_container_options_init(&o);
  o.device = "cpu";
  EXPECT_EQ(kiln_container_create(&o, &c), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "compiled for cuda"), nullptr) << kiln_last_error();
  o.device = "cuda:3";
  EXPECT_EQ(kiln_container_create(&o, &c), KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "does not exist"), nullptr) << kiln_last_error();
  o.device = "cuda:x";
  EXPECT_EQ(kiln_container_create(&o, &c), KILN_ERR_INVALID_ARGUMENT);
  o.device = nullptr; // the model's own device
  ASSERT_EQ(kiln_container_create(&o, &c), KILN_OK) << kiln_last_error();
  kiln_run_options ro;
  kiln_run_options_init(&ro);
  ro.flags = 0x80;
  EXPECT_EQ(kiln_run_v2(c, &ro, nullptr, 1, nullptr, 1), KILN_ERR_INVALID_ARGUMENT);
  kiln_container_destroy(c);
  EXPECT_EQ(counters().module_loads, counters().module_unloads);
}

TEST(CudaShims, RefuseACpuRunner) {
  kiln_shim_ctx *r = nullptr;
  ASSERT_EQ(kiln_rt_runner_create(&r), KILN_OK);
  kiln_cuda_matmul_params_v1 p{};
  EXPECT_EQ(kiln_shim_cuda_matmul_v1(r, 0, nullptr, nullptr, nullptr, nullptr, &p),
            KILN_ERR_DEVICE);
  EXPECT_NE(std::strstr(kiln_last_error(), "CPU runner"), nullptr) << kiln_last_error();
  kiln_rt_runner_destroy(r);
}

} // namespace
