/* Soak (issue 11): one container, R runs of a small static model, and every S runs a constant
 * swap (the other weight set written into the inactive buffer, then swapped; the inactive one
 * freed after every other swap). Every output must equal, bit for bit, the reference of the
 * weight set active at that moment. Reports throughput and RSS after warm-up and at the end;
 * fails on any wrong output or an RSS growth above max_growth_kb.
 * With KILN_SOAK_LEAK_CANARY set the container is not destroyed: under LeakSanitizer that run
 * must report a leak (runtime.soak_leak_canary proves the leak check is live).
 * Usage: soak <libkiln_rt.so> <model.so> [runs=1000000] [swap_every=1000] [max_growth_kb=4096]
 * Prints: soak: runs=... swaps=... seconds=... runs_per_s=... rss_start_kb=... rss_end_kb=... */
#define _POSIX_C_SOURCE 200809L
#include <kiln/model.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kMax = 8 };

static struct {
  void (*options_init)(kiln_container_options *);
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  const char *(*last_error)(void);
  int (*num_inputs)(const kiln_container *, int32_t *);
  int (*num_outputs)(const kiln_container *, int32_t *);
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*num_constants)(const kiln_container *, int32_t *);
  int (*constant_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
  int (*update)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                uint32_t);
  int (*swap)(kiln_container *);
  int (*free_inactive)(kiln_container *);
  int (*read_constant)(kiln_container *, int32_t, const char *, DLTensor *);
} api;

static long rssKb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double nowS(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A CPU tensor shaped like info (static dims only), zero-filled. */
static DLTensor tensorLike(const kiln_tensor_info *info) {
  DLTensor t;
  size_t n = (info->dtype.bits + 7u) / 8u;
  int32_t d;
  memset(&t, 0, sizeof t);
  for (d = 0; d < info->ndim; ++d)
    n *= (size_t)info->dims[d];
  t.device.device_type = kDLCPU;
  t.ndim = info->ndim;
  t.dtype = info->dtype;
  t.shape = (int64_t *)info->dims;
  t.data = calloc(n ? n : 1, 1);
  t.byte_offset = n; /* remembered here while building; cleared before use */
  return t;
}

#define LOAD(field, name)                                                                          \
  do {                                                                                             \
    *(void **)&api.field = dlsym(h, name);                                                         \
    if (!api.field) {                                                                              \
      fprintf(stderr, "missing %s\n", name);                                                       \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)
#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != KILN_OK) {                                                                       \
      fprintf(stderr, "%s: %s\n", #call, api.last_error());                                        \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  void *h;
  kiln_container *c = NULL;
  kiln_container_options o;
  kiln_tensor_info info;
  DLTensor in[kMax], out[kMax], ref[2][kMax], sets[2][kMax];
  size_t outBytes[kMax], e;
  const char *names[kMax];
  int32_t nin, nout, ncon, i;
  long runs = argc > 3 ? atol(argv[3]) : 1000000, every = argc > 4 ? atol(argv[4]) : 1000, r;
  long maxGrowthKb = argc > 5 ? atol(argv[5]) : 4096, rssStart = 0, rssEnd, swaps = 0, wrong = 0;
  int active = 0, s;
  double t0 = 0;
  if (argc < 3 || every < 1) return 2;
  if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL) || !(h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL))) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  LOAD(options_init, "kiln_container_options_init");
  LOAD(create, "kiln_container_create");
  LOAD(destroy, "kiln_container_destroy");
  LOAD(last_error, "kiln_last_error");
  LOAD(num_inputs, "kiln_num_inputs");
  LOAD(num_outputs, "kiln_num_outputs");
  LOAD(input_info, "kiln_input_info");
  LOAD(output_info, "kiln_output_info");
  LOAD(num_constants, "kiln_num_constants");
  LOAD(constant_info, "kiln_constant_info");
  LOAD(run, "kiln_run");
  LOAD(update, "kiln_update_constants");
  LOAD(swap, "kiln_swap_constants");
  LOAD(free_inactive, "kiln_free_inactive_constants");
  LOAD(read_constant, "kiln_read_constant");
  api.options_init(&o);
  o.num_runners = 1;
  o.threads_per_run = 1;
  CHECK(api.create(&o, &c));
  api.num_inputs(c, &nin);
  api.num_outputs(c, &nout);
  api.num_constants(c, &ncon);
  if (nin > kMax || nout > kMax || ncon > kMax || ncon < 1) return 1;
  for (i = 0; i < nin; ++i) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    api.input_info(c, i, &info);
    in[i] = tensorLike(&info);
    for (e = 0; e < in[i].byte_offset / 4 && info.dtype.code == kDLFloat; ++e)
      ((float *)in[i].data)[e] = (float)((e * 7919u) % 1000u) / 500.0f - 1.0f;
    in[i].byte_offset = 0;
  }
  for (i = 0; i < nout; ++i) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    api.output_info(c, i, &info);
    out[i] = tensorLike(&info);
    outBytes[i] = out[i].byte_offset;
    out[i].byte_offset = 0;
    for (s = 0; s < 2; ++s) {
      ref[s][i] = tensorLike(&info);
      ref[s][i].byte_offset = 0;
    }
  }
  /* Set 0: the compiled weights; set 1: every float32 constant * 0.5 + 0.25. */
  for (i = 0; i < ncon; ++i) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    api.constant_info(c, i, &info);
    names[i] = info.name;
    for (s = 0; s < 2; ++s) {
      size_t n;
      sets[s][i] = tensorLike(&info);
      n = sets[s][i].byte_offset;
      sets[s][i].byte_offset = 0;
      CHECK(api.read_constant(c, KILN_CONSTANTS_ACTIVE, info.name, &sets[s][i]));
      for (e = 0; s == 1 && info.dtype.code == kDLFloat && e < n / 4; ++e)
        ((float *)sets[s][i].data)[e] = ((float *)sets[s][i].data)[e] * 0.5f + 0.25f;
    }
  }
  CHECK(api.run(c, in, nin, ref[0], nout));
  CHECK(api.update(c, KILN_CONSTANTS_INACTIVE, names, sets[1], ncon, KILN_UPDATE_REQUIRE_ALL));
  CHECK(api.swap(c));
  CHECK(api.run(c, in, nin, ref[1], nout));
  CHECK(api.swap(c));
  if (memcmp(ref[0][0].data, ref[1][0].data, outBytes[0]) == 0) {
    fprintf(stderr, "the two weight sets give the same output; the soak cannot tell them apart\n");
    return 1;
  }
  for (r = 0; r < runs; ++r) {
    if (r == 1000 || (r == 0 && runs <= 1000)) {
      rssStart = rssKb(); /* after warm-up: arenas and primitive caches are built */
      t0 = nowS();
    }
    if (r > 0 && r % every == 0) {
      active ^= 1;
      CHECK(api.update(c, KILN_CONSTANTS_INACTIVE, names, sets[active], ncon,
                       KILN_UPDATE_REQUIRE_ALL));
      CHECK(api.swap(c));
      if (++swaps % 2 == 0) CHECK(api.free_inactive(c));
    }
    CHECK(api.run(c, in, nin, out, nout));
    for (i = 0; i < nout; ++i)
      if (memcmp(out[i].data, ref[active][i].data, outBytes[i]) != 0) {
        if (wrong++ == 0) fprintf(stderr, "run %ld: output %d differs from set %d\n", r, i, active);
        break;
      }
  }
  rssEnd = rssKb();
  {
    double secs = nowS() - t0, timed = (double)(runs > 1000 ? runs - 1000 : runs);
    printf("soak: runs=%ld swaps=%ld wrong=%ld seconds=%.2f runs_per_s=%.0f rss_start_kb=%ld "
           "rss_end_kb=%ld\n",
           runs, swaps, wrong, secs, timed / (secs > 0 ? secs : 1), rssStart, rssEnd);
  }
  if (!getenv("KILN_SOAK_LEAK_CANARY")) api.destroy(c);
  c = NULL;
  for (i = 0; i < nin; ++i)
    free(in[i].data);
  for (i = 0; i < nout; ++i) {
    free(out[i].data);
    free(ref[0][i].data);
    free(ref[1][i].data);
  }
  for (i = 0; i < ncon; ++i) {
    free(sets[0][i].data);
    free(sets[1][i].data);
  }
  if (rssEnd - rssStart > maxGrowthKb) {
    fprintf(stderr, "RSS grew by %ld kB (limit %ld)\n", rssEnd - rssStart, maxGrowthKb);
    return 1;
  }
  return wrong != 0;
}
