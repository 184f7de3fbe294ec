/* GPU smoke test of the CUDA runtime (run by tests/gpu/rt_smoke.sh on a machine with a GPU):
 * runs the fake CUDA model (y = 2 x + w) through kiln_run, kiln_run_v2 on a user stream and
 * kiln_run_alloc_v2, swaps constants, checks a wrong-device error, times runs, and prints one
 * JSON object. Exit status 0 only when every check passed. */
#define _POSIX_C_SOURCE 200809L /* also for pthreads */
#include <kiln/model.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W 256
typedef int (*cu_int_fn)(unsigned);
typedef int (*cu_dev_get_fn)(int *, int);
typedef int (*cu_retain_fn)(void **, int);
typedef int (*cu_ctx_set_fn)(void *);
typedef int (*cu_stream_create_fn)(void **, unsigned);
typedef int (*cu_stream_fn)(void *);

static int failures = 0;
static char notes[2048] = "";

static void note(const char *what, const char *detail) {
  ++failures;
  size_t n = strlen(notes);
  snprintf(notes + n, sizeof notes - n, "%s%s: %s", n ? "; " : "", what, detail);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static DLTensor host_tensor(float *data, int64_t *dims, int32_t ndim) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.ndim = ndim;
  t.dtype.code = kDLFloat;
  t.dtype.bits = 32;
  t.dtype.lanes = 1;
  t.shape = dims;
  return t;
}

/* Max |y - (2 x + w)| of device tensor y. */
static double check(kiln_container *c, DLTensor *y, const float *x, int64_t batch, float w_base) {
  static float out[64 * W];
  int64_t dims[2] = {batch, W};
  DLTensor hy = host_tensor(out, dims, 2);
  if (kiln_copy_tensor(c, &hy, y) != KILN_OK) {
    note("copy back", kiln_last_error());
    return 1e30;
  }
  double err = 0;
  for (int64_t i = 0; i < batch * W; ++i) {
    float w = w_base == 0 ? (i % W) * 0.5f : w_base + (i % W);
    double e = fabs(out[i] - (2 * x[i] + w));
    if (e > err) err = e;
  }
  return err;
}

/* ---- stress: threads run asynchronously on their own streams while main swaps weights ---- */
static kiln_container *g_c;
static void *g_cu, *g_ctx;
static int g_stop; /* __atomic_* only */
static int g_torn, g_failed, g_runs;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* Each thread enqueues 4 runs (into 4 outputs) per round, synchronises its stream, and checks
 * every output holds y = 2 x + w for one whole weight set (w[i] = base + i * step). */
static void *stress_worker(void *arg) {
  (void)arg;
  void *stream = NULL;
  /* A new thread has no current context: the host's own driver calls need one (the runtime
   * makes its context current itself). */
  ((cu_ctx_set_fn)dlsym(g_cu, "cuCtxSetCurrent"))(g_ctx);
  int cst = ((cu_stream_create_fn)dlsym(g_cu, "cuStreamCreate"))(&stream, 1);
  cu_stream_fn sync = (cu_stream_fn)dlsym(g_cu, "cuStreamSynchronize");
  int64_t dims[2] = {64, W};
  DLDataType f32 = {kDLFloat, 32, 1};
  DLManagedTensor *x = NULL, *y[4] = {NULL, NULL, NULL, NULL};
  static float zeros[64 * W];
  float *out = malloc(sizeof(float) * 64 * W);
  int torn = 0, failed = 0, runs = 0;
  char first_error[256] = "";
  if (cst) {
    snprintf(first_error, sizeof first_error, "cuStreamCreate failed (%d)", cst);
    failed++;
  }
  if (!failed && kiln_alloc_tensor(g_c, f32, 2, dims, &x)) failed++;
  for (int k = 0; k < 4 && !failed; ++k)
    if (kiln_alloc_tensor(g_c, f32, 2, dims, &y[k])) failed++;
  DLTensor hz = host_tensor(zeros, dims, 2), ho = host_tensor(out, dims, 2);
  if (!failed && kiln_copy_tensor(g_c, &x->dl_tensor, &hz)) failed++;
  kiln_run_options ro;
  kiln_run_options_init(&ro);
  ro.stream = stream;
  while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE) && !failed) {
    for (int k = 0; k < 4; ++k)
      if (kiln_run_v2(g_c, &ro, &x->dl_tensor, 1, &y[k]->dl_tensor, 1)) {
        if (!failed) snprintf(first_error, sizeof first_error, "run_v2: %s", kiln_last_error());
        failed++;
      }
    sync(stream);
    runs += 4;
    for (int k = 0; k < 4 && !failed; ++k) {
      if (kiln_copy_tensor(g_c, &ho, &y[k]->dl_tensor)) {
        failed++;
        break;
      }
      float base = out[0], step = out[1] - out[0];
      for (int e = 0; e < 64 * W; ++e)
        if (out[e] != base + (e % W) * step) {
          torn++;
          break;
        }
    }
  }
  if (failed && !first_error[0]) snprintf(first_error, sizeof first_error, "%s", kiln_last_error());
  pthread_mutex_lock(&g_mu);
  if (failed) note("stress worker", first_error);
  g_torn += torn;
  g_failed += failed;
  g_runs += runs;
  pthread_mutex_unlock(&g_mu);
  if (x) x->deleter(x);
  for (int k = 0; k < 4; ++k)
    if (y[k]) y[k]->deleter(y[k]);
  free(out);
  return NULL;
}

/* Returns the number of swaps done in about `ms` milliseconds. */
static int stress(int threads, int ms) {
  pthread_t t[8];
  float w[W];
  int64_t wd[1] = {W};
  DLTensor wt = host_tensor(w, wd, 1);
  const char *name = "w";
  int swaps = 0;
  __atomic_store_n(&g_stop, 0, __ATOMIC_RELEASE);
  for (int i = 0; i < threads; ++i)
    pthread_create(&t[i], NULL, stress_worker, NULL);
  double end = now_us() + ms * 1e3;
  for (int k = 1; now_us() < end; ++k) {
    for (int i = 0; i < W; ++i)
      w[i] = 100.f * (k % 50) + i * (1 + k % 3);
    if (kiln_update_constants(g_c, KILN_CONSTANTS_INACTIVE, &name, &wt, 1, 0) ||
        kiln_swap_constants(g_c)) {
      note("stress swap", kiln_last_error());
      break;
    }
    if (k % 5 == 0) kiln_free_inactive_constants(g_c);
    ++swaps;
  }
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < threads; ++i)
    pthread_join(t[i], NULL);
  return swaps;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000; /* timed kiln_run_v2 calls */
  if (n < 1) n = 1;
  void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!cu) {
    printf("{\"ok\": false, \"error\": \"no libcuda.so.1\"}\n");
    return 1;
  }
  void *ctx = NULL, *stream = NULL;
  int dev = 0;
  const char *need[] = {"cuInit",          "cuDeviceGet",    "cuDevicePrimaryCtxRetain",
                        "cuCtxSetCurrent", "cuStreamCreate", "cuStreamSynchronize"};
  for (int i = 0; i < 6; ++i)
    if (!dlsym(cu, need[i])) {
      printf("{\"ok\": false, \"error\": \"libcuda.so.1 lacks %s\"}\n", need[i]);
      return 1;
    }
  ((cu_int_fn)dlsym(cu, "cuInit"))(0);
  ((cu_dev_get_fn)dlsym(cu, "cuDeviceGet"))(&dev, 0);
  ((cu_retain_fn)dlsym(cu, "cuDevicePrimaryCtxRetain"))(&ctx, dev);
  ((cu_ctx_set_fn)dlsym(cu, "cuCtxSetCurrent"))(ctx);
  ((cu_stream_create_fn)dlsym(cu, "cuStreamCreate"))(&stream, 1 /* non-blocking */);
  cu_stream_fn stream_sync = (cu_stream_fn)dlsym(cu, "cuStreamSynchronize");

  kiln_container *c = NULL;
  double t0 = now_us();
  if (kiln_container_create(NULL, &c) != KILN_OK) {
    printf("{\"ok\": false, \"error\": \"create: %s\"}\n", kiln_last_error());
    return 1;
  }
  double create_ms = (now_us() - t0) / 1e3;
  static float x[64 * W];
  for (int i = 0; i < 64 * W; ++i)
    x[i] = (float)(i % 13) - 6.f;
  int64_t batch = 64, dims[2] = {64, W};
  DLManagedTensor *dx = NULL, *dy = NULL;
  if (kiln_alloc_tensor(c, (DLDataType){kDLFloat, 32, 1}, 2, dims, &dx) ||
      kiln_alloc_tensor(c, (DLDataType){kDLFloat, 32, 1}, 2, dims, &dy)) {
    printf("{\"ok\": false, \"error\": \"alloc: %s\"}\n", kiln_last_error());
    return 1;
  }
  DLTensor hx = host_tensor(x, dims, 2);
  if (kiln_copy_tensor(c, &dx->dl_tensor, &hx)) note("copy in", kiln_last_error());

  /* kiln_run (synchronous, runner stream) at batch 64, then 5 (same arena). */
  double v1_err = 0;
  if (kiln_run(c, &dx->dl_tensor, 1, &dy->dl_tensor, 1)) note("kiln_run", kiln_last_error());
  v1_err = check(c, &dy->dl_tensor, x, batch, 0);
  batch = 5; /* smaller runs reuse the runner's arena; the tensors keep their 64-row memory */
  dims[0] = 5;
  dx->dl_tensor.shape[0] = 5;
  dy->dl_tensor.shape[0] = 5;
  if (kiln_run(c, &dx->dl_tensor, 1, &dy->dl_tensor, 1)) note("kiln_run b5", kiln_last_error());
  double v1_err5 = check(c, &dy->dl_tensor, x, batch, 0);

  /* kiln_run_v2 on a user stream: asynchronous; the caller synchronises. */
  kiln_run_options ro;
  kiln_run_options_init(&ro);
  ro.stream = stream;
  if (kiln_run_v2(c, &ro, &dx->dl_tensor, 1, &dy->dl_tensor, 1)) note("run_v2", kiln_last_error());
  stream_sync(stream);
  double v2_err = check(c, &dy->dl_tensor, x, batch, 0);

  DLManagedTensor *out = NULL;
  double alloc_err = 1e30;
  if (kiln_run_alloc_v2(c, &ro, &dx->dl_tensor, 1, &out, 1)) {
    note("run_alloc_v2", kiln_last_error());
  } else {
    stream_sync(stream);
    alloc_err = check(c, &out->dl_tensor, x, batch, 0);
    if (out->dl_tensor.device.device_type != kDLCUDA) note("run_alloc_v2", "not on the GPU");
    out->deleter(out);
  }

  /* Constants: fill the inactive buffer from host values, swap, run. */
  float w2[W];
  for (int i = 0; i < W; ++i)
    w2[i] = 1000.f + i;
  int64_t wd[1] = {W};
  DLTensor wt = host_tensor(w2, wd, 1);
  const char *name = "w";
  double swap_err = 1e30;
  if (kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, &name, &wt, 1, 0) ||
      kiln_swap_constants(c)) {
    note("swap", kiln_last_error());
  } else {
    if (kiln_run_v2(c, &ro, &dx->dl_tensor, 1, &dy->dl_tensor, 1))
      note("run after swap", kiln_last_error());
    stream_sync(stream);
    swap_err = check(c, &dy->dl_tensor, x, batch, 1000.f);
  }

  /* A host tensor given to a CUDA container. */
  int st = kiln_run_v2(c, &ro, &hx, 1, &dy->dl_tensor, 1);
  int device_error_ok = st == KILN_ERR_DEVICE && strstr(kiln_last_error(), "input 'x'") != NULL;
  if (!device_error_ok) note("wrong-device input", kiln_last_error());

  /* Timing: enqueue cost of kiln_run_v2 and the synchronous kiln_run. */
  t0 = now_us();
  for (int i = 0; i < n; ++i)
    kiln_run_v2(c, &ro, &dx->dl_tensor, 1, &dy->dl_tensor, 1);
  double enqueue_us = (now_us() - t0) / n;
  stream_sync(stream);
  double v2_total_us = (now_us() - t0) / n;
  t0 = now_us();
  int n1 = n / 4 + 1;
  for (int i = 0; i < n1; ++i)
    kiln_run(c, &dx->dl_tensor, 1, &dy->dl_tensor, 1);
  double v1_us = (now_us() - t0) / n1;
  double final_err = check(c, &dy->dl_tensor, x, batch, 1000.f);

  g_c = c;
  g_cu = cu;
  g_ctx = ctx;
  int swaps = stress(8, n >= 100 ? 3000 : 300);
  if (g_torn || g_failed) note("stress", "torn or failed runs");

  dx->deleter(dx);
  dy->deleter(dy);
  kiln_container_destroy(c);
  double tol = 1e-5;
  if (v1_err > tol || v1_err5 > tol || v2_err > tol || alloc_err > tol || swap_err > tol ||
      final_err > tol)
    note("values", "max error above 1e-5");
  printf("{\"ok\": %s, \"create_ms\": %.3f, \"run_v1_max_err\": %g, \"run_v1_b5_max_err\": %g, "
         "\"run_v2_stream_max_err\": %g, \"run_alloc_v2_max_err\": %g, \"swap_max_err\": %g, "
         "\"final_max_err\": %g, \"device_error_ok\": %s, \"run_v2_enqueue_us\": %.2f, "
         "\"run_v2_us\": %.2f, \"run_v1_us\": %.2f, \"stress_runs\": %d, \"stress_swaps\": %d, "
         "\"stress_torn\": %d, \"stress_failed\": %d, \"notes\": \"%s\"}\n",
         failures ? "false" : "true", create_ms, v1_err, v1_err5, v2_err, alloc_err, swap_err,
         final_err, device_error_ok ? "true" : "false", enqueue_us, v2_total_us, v1_us, g_runs,
         swaps, g_torn, g_failed, notes);
  return failures ? 1 : 0;
}
