/* Concurrency and constant swaps on one container, for any model.so (dlopen only).
 *
 * Weight set A = the model's own constants, B = every float32 constant scaled by 0.5 plus
 * 0.25 (other dtypes unchanged). Reference outputs for A and B are computed first. Then T
 * threads each run the model R times (kiln_run, and kiln_run_minimal on every other run when
 * the model is static) while an updater thread writes the other set into the inactive
 * buffer (REQUIRE_ALL) and swaps, every ~1 ms. Workers pause ~20 us between runs so that
 * even a trivial model's runs span many swaps. Every output must equal the A or the B
 * reference bit for bit; a run matching neither is torn. Exit 0 only with 0 torn and 0
 * failed runs, at least 10 swaps, and both sets seen.
 * With churn > 0, that many more threads create a container of their own, run it once
 * (checked against reference A) and destroy it, over and over, while the rest goes on; and
 * the updater also frees the inactive buffer after every third swap.
 * Usage: concurrency_test <model.so> [threads=8] [runs=2000] [runners=4] [churn=0] */
#define _POSIX_C_SOURCE 200809L

#include <kiln/model.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXT 16

static struct {
  void (*options_init)(kiln_container_options *);
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  const char *(*last_error)(void);
  int (*num_inputs)(const kiln_container *, int32_t *);
  int (*num_outputs)(const kiln_container *, int32_t *);
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_dims)(kiln_container *, const DLTensor *, int32_t, int64_t *const *);
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
  int (*run_minimal)(kiln_container *, void *const *, void *const *);
  int (*num_constants)(const kiln_container *, int32_t *);
  int (*constant_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*update)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                uint32_t);
  int (*swap)(kiln_container *);
  int (*read_constant)(kiln_container *, int32_t, const char *, DLTensor *);
  int (*free_inactive)(kiln_container *);
} api;

typedef struct {
  int32_t n;
  DLTensor *t;
  int64_t **shapes;
  size_t *bytes;
} tensor_list;

static kiln_container *g_c;
static tensor_list g_in, g_ref[2];
static int g_nout, g_static, g_runs;
static const char **g_cnames;
static DLTensor *g_sets[2];
static int32_t g_ncon;
static int g_stop; /* __atomic builtins: a plain flag would be a data race */

static size_t nbytes(DLDataType dt, int32_t ndim, const int64_t *dims) {
  size_t n = 1;
  int32_t d;
  for (d = 0; d < ndim; ++d)
    n *= (size_t)dims[d];
  return n * ((dt.bits * dt.lanes + 7u) / 8u);
}

/* Allocates tensors like the model's inputs (symbolic dims at 2, clamped to the range). */
static void make_tensors(tensor_list *l, int32_t n, int input, int64_t *const *out_dims) {
  int32_t i, d;
  l->n = n;
  l->t = calloc((size_t)n, sizeof(DLTensor));
  l->shapes = calloc((size_t)n, sizeof(int64_t *));
  l->bytes = calloc((size_t)n, sizeof(size_t));
  for (i = 0; i < n; ++i) {
    kiln_tensor_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    (input ? api.input_info : api.output_info)(g_c, i, &info);
    l->shapes[i] = calloc((size_t)info.ndim + 1, sizeof(int64_t));
    for (d = 0; d < info.ndim; ++d) {
      int64_t v = info.dims[d] >= 0 ? info.dims[d] : 2;
      if (info.dims[d] < 0 && v < info.dim_min[d]) v = info.dim_min[d];
      if (info.dims[d] < 0 && v > info.dim_max[d]) v = info.dim_max[d];
      l->shapes[i][d] = out_dims ? out_dims[i][d] : v;
    }
    l->t[i].device.device_type = kDLCPU;
    l->t[i].ndim = info.ndim;
    l->t[i].dtype = info.dtype;
    l->t[i].shape = l->shapes[i];
    l->bytes[i] = nbytes(info.dtype, info.ndim, l->shapes[i]);
    l->t[i].data = malloc(l->bytes[i] + 64);
    memset(l->t[i].data, 0, l->bytes[i]);
  }
}

static void free_tensors(tensor_list *l) {
  int32_t i;
  for (i = 0; i < l->n; ++i) {
    free(l->t[i].data);
    free(l->shapes[i]);
  }
  free(l->t);
  free(l->shapes);
  free(l->bytes);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
  int id, torn, failed, matched[2];
} worker;

static void *work(void *p) {
  worker *w = (worker *)p;
  tensor_list out;
  void **in_ptrs = calloc((size_t)g_in.n + 1, sizeof(void *));
  void **out_ptrs = calloc((size_t)g_nout + 1, sizeof(void *));
  int r, i, s;
  make_tensors(&out, g_nout, 0, g_ref[0].shapes);
  for (i = 0; i < g_in.n; ++i)
    in_ptrs[i] = g_in.t[i].data;
  for (i = 0; i < g_nout; ++i)
    out_ptrs[i] = out.t[i].data;
  for (r = 0; r < g_runs; ++r) {
    int st = g_static && (r + w->id) % 2 ? api.run_minimal(g_c, in_ptrs, out_ptrs)
                                         : api.run(g_c, g_in.t, g_in.n, out.t, g_nout);
    if (st != KILN_OK) {
      if (w->failed++ == 0) fprintf(stderr, "run failed: %d %s\n", st, api.last_error());
      continue;
    }
    for (s = 0; s < 2; ++s) {
      for (i = 0; i < g_nout; ++i)
        if (memcmp(out.t[i].data, g_ref[s].t[i].data, out.bytes[i]) != 0) break;
      if (i == g_nout) break;
    }
    if (s == 2)
      ++w->torn;
    else
      ++w->matched[s];
    {
      struct timespec ts = {0, 20000};
      nanosleep(&ts, NULL);
    }
  }
  free_tensors(&out);
  free(in_ptrs);
  free(out_ptrs);
  return NULL;
}

static int swaps = 0;

/* Writes sets in the order A B B A A B B A ...: the two buffers alternate as the inactive
 * one, so each of them holds A and B in turn (a cache keyed by buffer address alone would
 * then serve stale derived weights). */
static void *updater(void *p) {
  int k = 0, next;
  (void)p;
  while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
    next = ((k + 1) / 2) % 2;
    ++k;
    struct timespec ts = {0, 1000000};
    if (api.update(g_c, KILN_CONSTANTS_INACTIVE, g_cnames, g_sets[next], g_ncon,
                   KILN_UPDATE_REQUIRE_ALL) != KILN_OK ||
        api.swap(g_c) != KILN_OK) {
      fprintf(stderr, "update/swap failed: %s\n", api.last_error());
      return (void *)1;
    }
    ++swaps;
    if (swaps % 3 == 0 && api.free_inactive(g_c) != KILN_OK) {
      fprintf(stderr, "free_inactive failed: %s\n", api.last_error());
      return (void *)1;
    }
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Creates, runs once and destroys containers until the workers finish; counts failures. */
static void *churn(void *p) {
  worker *w = (worker *)p;
  tensor_list out;
  make_tensors(&out, g_nout, 0, g_ref[0].shapes);
  while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
    kiln_container_options o;
    kiln_container *c = NULL;
    int32_t i;
    api.options_init(&o);
    o.num_runners = 1 + w->id % 2;
    o.threads_per_run = 1;
    if (api.create(&o, &c) != KILN_OK) {
      if (w->failed++ == 0) fprintf(stderr, "churn create: %s\n", api.last_error());
      continue;
    }
    if (api.run(c, g_in.t, g_in.n, out.t, g_nout) != KILN_OK) {
      if (w->failed++ == 0) fprintf(stderr, "churn run: %s\n", api.last_error());
    } else {
      for (i = 0; i < g_nout; ++i)
        if (memcmp(out.t[i].data, g_ref[0].t[i].data, out.bytes[i]) != 0) break;
      if (i == g_nout)
        ++w->matched[0];
      else
        ++w->torn; /* a fresh container has the compiled weights (set A) */
    }
    api.destroy(c);
  }
  free_tensors(&out);
  return NULL;
}

#define LOAD(field, name)                                                                          \
  do {                                                                                             \
    *(void **)&api.field = dlsym(h, name);                                                         \
    if (!api.field) {                                                                              \
      fprintf(stderr, "%s: missing %s\n", argv[1], name);                                          \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  void *h;
  kiln_container_options o;
  int32_t n_in, i, s;
  int threads = argc > 2 ? atoi(argv[2]) : 8, total_torn = 0, total_failed = 0, matched[2] = {0, 0};
  int64_t **out_dims;
  pthread_t tid[MAXT], up;
  worker w[MAXT];
  void *up_rc = NULL;
  int churners = 0, churned = 0;
  double t0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s <model.so> [threads] [runs] [runners]\n", argv[0]);
    return 2;
  }
  g_runs = argc > 3 ? atoi(argv[3]) : 2000;
  if (threads > MAXT) threads = MAXT;
  churners = argc > 5 ? atoi(argv[5]) : 0;
  if (churners < 0 || threads + churners > MAXT) churners = 0;
  h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
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
  LOAD(output_dims, "kiln_output_dims");
  LOAD(run, "kiln_run");
  LOAD(run_minimal, "kiln_run_minimal");
  LOAD(num_constants, "kiln_num_constants");
  LOAD(constant_info, "kiln_constant_info");
  LOAD(update, "kiln_update_constants");
  LOAD(swap, "kiln_swap_constants");
  LOAD(read_constant, "kiln_read_constant");
  LOAD(free_inactive, "kiln_free_inactive_constants");

  api.options_init(&o);
  o.num_runners = argc > 4 ? atoi(argv[4]) : 4;
  o.threads_per_run = 1;
  if (api.create(&o, &g_c) != KILN_OK) {
    fprintf(stderr, "create: %s\n", api.last_error());
    return 1;
  }
  api.num_inputs(g_c, &n_in);
  api.num_outputs(g_c, &g_nout);
  make_tensors(&g_in, n_in, 1, NULL);
  g_static = 1;
  for (i = 0; i < n_in; ++i) {
    kiln_tensor_info info;
    int32_t d;
    size_t e, count;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    api.input_info(g_c, i, &info);
    for (d = 0; d < info.ndim; ++d)
      if (info.dims[d] < 0) g_static = 0;
    if (info.dtype.code == kDLFloat && info.dtype.bits == 32) {
      count = g_in.bytes[i] / 4;
      for (e = 0; e < count; ++e)
        ((float *)g_in.t[i].data)[e] = (float)((e * 7919u) % 1000u) / 500.0f - 1.0f;
    }
  }
  out_dims = calloc((size_t)g_nout + 1, sizeof(int64_t *));
  for (i = 0; i < g_nout; ++i)
    out_dims[i] = calloc(16, sizeof(int64_t));
  if (api.output_dims(g_c, g_in.t, n_in, out_dims) != KILN_OK) {
    fprintf(stderr, "output_dims: %s\n", api.last_error());
    return 1;
  }

  /* Weight sets A (as loaded) and B (float32 constants * 0.5 + 0.25). */
  api.num_constants(g_c, &g_ncon);
  if (g_ncon == 0) {
    fprintf(stderr, "model has no constants; nothing to swap\n");
    return 1;
  }
  g_cnames = calloc((size_t)g_ncon, sizeof(char *));
  for (s = 0; s < 2; ++s)
    g_sets[s] = calloc((size_t)g_ncon, sizeof(DLTensor));
  for (i = 0; i < g_ncon; ++i) {
    kiln_tensor_info info;
    size_t b, e;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    api.constant_info(g_c, i, &info);
    g_cnames[i] = info.name;
    b = nbytes(info.dtype, info.ndim, info.dims);
    for (s = 0; s < 2; ++s) {
      DLTensor *t = &g_sets[s][i];
      t->device.device_type = kDLCPU;
      t->ndim = info.ndim;
      t->dtype = info.dtype;
      t->shape = (int64_t *)info.dims;
      t->data = malloc(b + 1);
      if (api.read_constant(g_c, KILN_CONSTANTS_ACTIVE, info.name, t) != KILN_OK) {
        fprintf(stderr, "read_constant: %s\n", api.last_error());
        return 1;
      }
      if (s == 1 && info.dtype.code == kDLFloat && info.dtype.bits == 32)
        for (e = 0; e < b / 4; ++e)
          ((float *)t->data)[e] = ((float *)t->data)[e] * 0.5f + 0.25f;
    }
  }
  /* References: run with A, then with B (via inactive + swap), then back to A. */
  for (s = 1; s >= 0; --s) {
    make_tensors(&g_ref[s], g_nout, 0, out_dims);
    if (s == 1 && (api.update(g_c, KILN_CONSTANTS_INACTIVE, g_cnames, g_sets[1], g_ncon,
                              KILN_UPDATE_REQUIRE_ALL) != KILN_OK ||
                   api.swap(g_c) != KILN_OK)) {
      fprintf(stderr, "update: %s\n", api.last_error());
      return 1;
    }
    if (s == 0 && api.swap(g_c) != KILN_OK) return 1;
    if (api.run(g_c, g_in.t, n_in, g_ref[s].t, g_nout) != KILN_OK) {
      fprintf(stderr, "run: %s\n", api.last_error());
      return 1;
    }
  }
  for (i = 0; i < g_nout; ++i)
    if (memcmp(g_ref[0].t[i].data, g_ref[1].t[i].data, g_ref[0].bytes[i]) != 0) break;
  if (i == g_nout) {
    fprintf(stderr, "sets A and B give the same outputs; the test cannot tell them apart\n");
    return 1;
  }

  t0 = now_ms();
  pthread_create(&up, NULL, updater, NULL);
  for (i = 0; i < threads + churners; ++i) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].id = i;
    pthread_create(&tid[i], NULL, i < threads ? work : churn, &w[i]);
  }
  for (i = 0; i < threads; ++i)
    pthread_join(tid[i], NULL);
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  for (i = threads; i < threads + churners; ++i)
    pthread_join(tid[i], NULL);
  for (i = 0; i < threads + churners; ++i) {
    total_torn += w[i].torn;
    total_failed += w[i].failed;
    if (i >= threads) churned += w[i].matched[0];
    matched[0] += w[i].matched[0];
    matched[1] += w[i].matched[1];
  }
  pthread_join(up, &up_rc);
  if (churners)
    printf("churn: %d threads created, ran and destroyed %d containers\n", churners, churned);
  printf("concurrency: %s: %d threads x %d runs (%s), %d swaps in %.0f ms: %d set A, %d set B, "
         "%d torn, %d failed\n",
         argv[1], threads, g_runs, g_static ? "kiln_run + kiln_run_minimal" : "kiln_run", swaps,
         now_ms() - t0, matched[0], matched[1], total_torn, total_failed);
  api.destroy(g_c);
  for (i = 0; i < g_nout; ++i)
    free(out_dims[i]);
  free(out_dims);
  return total_torn != 0 || total_failed != 0 || up_rc != NULL || swaps < 10 || !matched[0] ||
         !matched[1] || (churners && !churned);
}
