/* Sibling MatMuls fused into one GEMM (kiln_shim_matmul_multi_v1) keep weight updates by
 * name working: the runtime packs [query | key | value] from the three constants and must
 * drop that copy when one of them changes. Each step updates one weight through the public C
 * API (active buffer in place, or inactive buffer + swap), runs again, and compares every
 * output with a float64 reference built from the constants read back through the API.
 * Usage: qkv_swap_test <qkv.so> (gen_qkv.py's model). C99. */
#include "aot_host.h"

enum { S = 13, K = 32, NQ = 24, NK = 24, NV = 16 };

typedef int (*update_fn)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                         uint32_t);
typedef int (*swap_fn)(kiln_container *);
typedef int (*read_fn)(kiln_container *, int32_t, const char *, DLTensor *);
static update_fn update_constants;
static swap_fn swap_constants;
static read_fn read_constant;

static const char *const kNames[3] = {"query", "key", "value"};
static const int64_t kWidths[3] = {NQ, NK, NV};

static void read_named(kiln_container *c, const char *name, const char *suffix, float *out,
                       int64_t rows, int64_t cols) {
  char full[64];
  int64_t shape[2] = {rows, cols};
  DLTensor t = tensor(out, rows > 0 ? 2 : 1, rows > 0 ? shape : shape + 1, kDLFloat, 32);
  snprintf(full, sizeof full, "%s.%s", name, suffix);
  CHECK(read_constant(c, KILN_CONSTANTS_ACTIVE, full, &t) == KILN_OK, "read %s: %s", full,
        api.last_error());
}

/* Runs the model on x and checks -Q, -K and Vᵀ against x W + b from the active constants. */
static void run_and_check(kiln_container *c, const float *x, const char *step) {
  float q[S * NQ], k[S * NK], vt[NV * S], w[K * NQ], b[NQ];
  float *outs[3] = {q, k, vt};
  int64_t xs[2] = {S, K}, qs[2] = {S, NQ}, ks[2] = {S, NK}, vs[2] = {NV, S};
  DLTensor in = tensor((void *)x, 2, xs, kDLFloat, 32);
  DLTensor out[3];
  int g, i, j, p;
  out[0] = tensor(q, 2, qs, kDLFloat, 32);
  out[1] = tensor(k, 2, ks, kDLFloat, 32);
  out[2] = tensor(vt, 2, vs, kDLFloat, 32);
  CHECK(api.run(c, &in, 1, out, 3) == KILN_OK, "%s: run: %s", step, api.last_error());
  for (g = 0; g < 3; ++g) {
    int64_t n = kWidths[g];
    int bad = 0;
    read_named(c, kNames[g], "weight", w, K, n);
    read_named(c, kNames[g], "bias", b, 0, n);
    for (i = 0; i < S && !bad; ++i)
      for (j = 0; j < n && !bad; ++j) {
        double want = b[j], mag = fabs(b[j]), got;
        for (p = 0; p < K; ++p) {
          want += (double)x[i * K + p] * w[p * n + j];
          mag += fabs((double)x[i * K + p] * w[p * n + j]);
        }
        got = g == 2 ? outs[g][j * S + i] : -outs[g][i * n + j];
        /* float32 accumulation over K terms: |error| <= (K + 1) u sum|terms| (u = 2^-24). */
        if (fabs(got - want) > (K + 1) * 0x1p-24 * mag + 1e-30) {
          CHECK(0, "%s: %s[%d, %d] = %.8g, want %.8g (stale packed weights?)", step, kNames[g], i,
                j, got, want);
          bad = 1;
        }
      }
  }
}

static void set_weight(kiln_container *c, int32_t buffer, int g, float scale, float shift) {
  float w[K * NQ];
  char name[64];
  const char *names[1];
  int64_t shape[2] = {K, kWidths[g]};
  DLTensor t = tensor(w, 2, shape, kDLFloat, 32);
  int i;
  for (i = 0; i < K * kWidths[g]; ++i)
    w[i] = scale * (float)((i * 37) % 19 - 9) / 9.0f + shift;
  snprintf(name, sizeof name, "%s.weight", kNames[g]);
  names[0] = name;
  CHECK(update_constants(c, buffer, names, &t, 1, KILN_UPDATE_NONE) == KILN_OK, "update %s: %s",
        name, api.last_error());
}

int main(int argc, char **argv) {
  kiln_container_options opt;
  kiln_container *c = NULL;
  float x[S * K];
  void *lib;
  int i;
  if (argc != 2) {
    fprintf(stderr, "usage: %s <qkv.so>\n", argv[0]);
    return 2;
  }
  load_api(argv[1]);
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return 2;
  {
    void *p = sym_or_die(lib, "kiln_update_constants");
    memcpy(&update_constants, &p, sizeof p);
    p = sym_or_die(lib, "kiln_swap_constants");
    memcpy(&swap_constants, &p, sizeof p);
    p = sym_or_die(lib, "kiln_read_constant");
    memcpy(&read_constant, &p, sizeof p);
  }
  for (i = 0; i < S * K; ++i)
    x[i] = (float)((i * 13) % 23 - 11) / 11.0f;
  api.options_init(&opt);
  opt.num_runners = 1; /* every run meets the same runner's cache */
  CHECK(api.create(&opt, &c) == KILN_OK, "create: %s", api.last_error());
  if (!c) return 1;
  run_and_check(c, x, "initial weights");
  run_and_check(c, x, "second run (cached packing)");
  set_weight(c, KILN_CONSTANTS_ACTIVE, 1, 0.5f, 0.25f);
  run_and_check(c, x, "key.weight updated in the active buffer");
  set_weight(c, KILN_CONSTANTS_INACTIVE, 2, -1.5f, 0.0f);
  CHECK(swap_constants(c) == KILN_OK, "swap: %s", api.last_error());
  run_and_check(c, x, "value.weight updated in the inactive buffer, then swapped");
  CHECK(swap_constants(c) == KILN_OK, "swap back: %s", api.last_error());
  run_and_check(c, x, "swapped back to the set with the original value.weight");
  /* The inactive buffer is now rewritten in place: same addresses, new values. Only the
   * runtime's invalidation on a constant update tells the packed copy from before is stale. */
  set_weight(c, KILN_CONSTANTS_INACTIVE, 2, 0.75f, 1.0f);
  CHECK(swap_constants(c) == KILN_OK, "second swap: %s", api.last_error());
  run_and_check(c, x, "value.weight rewritten in place in the inactive buffer, then swapped");
  set_weight(c, KILN_CONSTANTS_ACTIVE, 0, 2.0f, -0.5f);
  run_and_check(c, x, "query.weight updated in the active buffer");
  api.destroy(c);
  printf("qkv swap: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
