/* AOT test of shapes that depend on input values, through the C API only:
 *
 *   values_test select <so>    NonZero: kiln_output_dims gives the bound [2, 12]; kiln_run
 *                              writes the actual count into the output's shape; run_alloc
 *                              returns it; the count changes from run to run
 *   values_test reshape <so>   Reshape to a target read from an input (0 copies, -1 infers);
 *                              two -1s and a wrong element count are shape errors
 *   values_test reduce <so>    ReduceSum over axes read from an input (also negative)
 *   values_test strings <so>   Cast to/from string: kiln_run refuses string outputs,
 *                              kiln_run_alloc returns runtime-owned text
 */
#include "aot_host.h"

static int test_select(void) {
  kiln_container *c = make_container();
  float x[12];
  int64_t xs[2] = {3, 4}, bound[2] = {0, 0}, ys[2];
  int64_t *dims[1] = {bound};
  int64_t y[24];
  DLTensor in = tensor(x, 2, xs, kDLFloat, 32), out;
  int round, i, st;
  for (round = 0; round < 3; ++round) {
    int64_t want[24], n = 0;
    for (i = 0; i < 12; ++i) /* a different set of nonzeros each round */
      x[i] = (i * (round + 2)) % 3 == 0 ? 0.0f : (float)(i + 1) * (round == 2 ? -1.0f : 1.0f);
    for (i = 0; i < 12; ++i)
      if (x[i] != 0.0f) ++n;
    {
      int64_t k = 0;
      for (i = 0; i < 12; ++i)
        if (x[i] != 0.0f) {
          want[k] = i / 4;
          want[n + k] = i % 4;
          ++k;
        }
    }
    st = api.output_dims(c, &in, 1, dims);
    CHECK(st == KILN_OK && bound[0] == 2 && bound[1] == 12, "bound dims: %d [%lld, %lld] %s", st,
          (long long)bound[0], (long long)bound[1], api.last_error());
    ys[0] = bound[0];
    ys[1] = bound[1];
    out = tensor(y, 2, ys, kDLInt, 64);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_OK, "run: %d %s", st, api.last_error());
    CHECK(ys[0] == 2 && ys[1] == n, "round %d: shape [%lld, %lld], want [2, %lld]", round,
          (long long)ys[0], (long long)ys[1], (long long)n);
    for (i = 0; i < 2 * n && st == KILN_OK; ++i)
      CHECK(y[i] == want[i], "round %d: idx[%d] = %lld, want %lld", round, i, (long long)y[i],
            (long long)want[i]);
    {
      DLManagedTensor *m = NULL;
      st = api.run_alloc(c, &in, 1, &m, 1);
      CHECK(st == KILN_OK && m, "run_alloc: %d %s", st, api.last_error());
      if (m) {
        CHECK(m->dl_tensor.shape[1] == n, "run_alloc shape[1] = %lld, want %lld",
              (long long)m->dl_tensor.shape[1], (long long)n);
        CHECK(memcmp(m->dl_tensor.data, want, sizeof(int64_t) * 2 * (size_t)n) == 0,
              "run_alloc values");
        m->deleter(m);
      }
    }
  }
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

/* Runs reshape with `target` and returns the status; on success checks dims and data. */
static int reshape_case(kiln_container *c, const int64_t *target, const int64_t *want) {
  float x[24], y[24];
  int64_t xs[3] = {2, 3, 4}, ts[1] = {3}, ys[3] = {0, 0, 0};
  int64_t *dims[1] = {ys};
  DLTensor in[2], out;
  int i, st;
  for (i = 0; i < 24; ++i)
    x[i] = (float)i;
  in[0] = tensor(x, 3, xs, kDLFloat, 32);
  in[1] = tensor((void *)target, 1, ts, kDLInt, 64);
  st = api.output_dims(c, in, 2, dims);
  if (st != KILN_OK) return st;
  CHECK(ys[0] == want[0] && ys[1] == want[1] && ys[2] == want[2], "dims [%lld, %lld, %lld]",
        (long long)ys[0], (long long)ys[1], (long long)ys[2]);
  out = tensor(y, 3, ys, kDLFloat, 32);
  st = api.run(c, in, 2, &out, 1);
  CHECK(st == KILN_OK, "reshape run: %d %s", st, api.last_error());
  for (i = 0; i < 24 && st == KILN_OK; ++i)
    CHECK(y[i] == x[i], "reshape keeps row-major order: y[%d] = %g", i, y[i]);
  return st;
}

static int test_reshape(void) {
  kiln_container *c = make_container();
  const int64_t t1[3] = {0, -1, 2}, w1[3] = {2, 6, 2};
  const int64_t t2[3] = {4, 3, 2}, w2[3] = {4, 3, 2};
  const int64_t bad1[3] = {-1, -1, 2}, bad2[3] = {5, 1, 5};
  int st;
  CHECK(reshape_case(c, t1, w1) == KILN_OK, "0 and -1: %s", api.last_error());
  CHECK(reshape_case(c, t2, w2) == KILN_OK, "plain target: %s", api.last_error());
  st = reshape_case(c, bad1, w1);
  CHECK(st == KILN_ERR_SHAPE_MISMATCH, "two -1s: status %d (%s)", st, api.last_error());
  st = reshape_case(c, bad2, w1);
  CHECK(st == KILN_ERR_SHAPE_MISMATCH, "25 elements: status %d (%s)", st, api.last_error());
  CHECK(strstr(api.last_error(), "element count") != NULL, "message: %s", api.last_error());
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

static int test_reduce(void) {
  kiln_container *c = make_container();
  const int64_t cases[3] = {1, -1, 0};
  float x[24];
  int k, i, j, l;
  for (i = 0; i < 24; ++i)
    x[i] = (float)(i % 7) - 2.5f;
  for (k = 0; k < 3; ++k) {
    int64_t axis = cases[k] < 0 ? cases[k] + 3 : cases[k];
    int64_t xs[3] = {2, 3, 4}, as[1] = {1}, ys[2] = {0, 0};
    int64_t *dims[1] = {ys};
    float y[12], want[12];
    DLTensor in[2], out;
    int st;
    in[0] = tensor(x, 3, xs, kDLFloat, 32);
    in[1] = tensor((void *)&cases[k], 1, as, kDLInt, 64);
    memset(want, 0, sizeof want);
    for (i = 0; i < 2; ++i)
      for (j = 0; j < 3; ++j)
        for (l = 0; l < 4; ++l) {
          int o = axis == 0 ? j * 4 + l : axis == 1 ? i * 4 + l : i * 3 + j;
          want[o] += x[(i * 3 + j) * 4 + l];
        }
    st = api.output_dims(c, in, 2, dims);
    CHECK(st == KILN_OK, "dims: %s", api.last_error());
    CHECK(ys[0] * ys[1] == 24 / xs[axis] && ys[0] == (axis == 0 ? 3 : 2),
          "axis %lld: dims [%lld, %lld]", (long long)cases[k], (long long)ys[0], (long long)ys[1]);
    out = tensor(y, 2, ys, kDLFloat, 32);
    st = api.run(c, in, 2, &out, 1);
    CHECK(st == KILN_OK, "run: %s", api.last_error());
    if (st == KILN_OK) compare("reduce", y, want, (size_t)(24 / xs[axis]));
  }
  {
    const int64_t bad = 3;
    int64_t xs[3] = {2, 3, 4}, as[1] = {1}, ys[2];
    int64_t *dims[1] = {ys};
    DLTensor in[2];
    in[0] = tensor(x, 3, xs, kDLFloat, 32);
    in[1] = tensor((void *)&bad, 1, as, kDLInt, 64);
    CHECK(api.output_dims(c, in, 2, dims) == KILN_ERR_SHAPE_MISMATCH, "axis 3 must fail: %s",
          api.last_error());
  }
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

static int test_strings(void) {
  kiln_container *c = make_container();
  float x[4] = {1.5f, -2.0f, 0.1f, 0.0f};
  const char *t[3] = {"2.5", "-inf", "1e3"};
  const char *wantS[4] = {"1.5", "-2", "0.1", "0"};
  const float wantF[3] = {2.5f, -INFINITY, 1000.0f};
  int64_t xs[1] = {4}, ts[1] = {3}, ss[1] = {4}, fs[1] = {3};
  const char *s[4];
  float f[3];
  DLTensor in[2], out[2];
  DLManagedTensor *m[2] = {NULL, NULL};
  int i, st;
  in[0] = tensor(x, 1, xs, kDLFloat, 32);
  in[1] = tensor((void *)t, 1, ts, kDLOpaqueHandle, 64);
  out[0] = tensor((void *)s, 1, ss, kDLOpaqueHandle, 64);
  out[1] = tensor(f, 1, fs, kDLFloat, 32);
  st = api.run(c, in, 2, out, 2);
  CHECK(st == KILN_ERR_UNSUPPORTED, "kiln_run with a string output: %d (%s)", st, api.last_error());
  CHECK(strstr(api.last_error(), "kiln_run_alloc") != NULL, "message: %s", api.last_error());
  st = api.run_alloc(c, in, 2, m, 2);
  CHECK(st == KILN_OK, "run_alloc: %d %s", st, api.last_error());
  if (st == KILN_OK) {
    const char **got = (const char **)m[0]->dl_tensor.data;
    const float *gf = (const float *)m[1]->dl_tensor.data;
    CHECK(m[0]->dl_tensor.dtype.code == kDLOpaqueHandle, "string dtype");
    for (i = 0; i < 4; ++i)
      CHECK(strcmp(got[i], wantS[i]) == 0, "s[%d] = '%s', want '%s'", i, got[i], wantS[i]);
    for (i = 0; i < 3; ++i)
      CHECK(gf[i] == wantF[i], "f[%d] = %g, want %g", i, gf[i], wantF[i]);
    m[0]->deleter(m[0]);
    m[1]->deleter(m[1]);
  }
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

int main(int argc, char **argv) {
  int f;
  if (argc != 3) {
    fprintf(stderr, "usage: %s select|reshape|reduce|strings model.so\n", argv[0]);
    return 2;
  }
  load_api(argv[2]);
  if (strcmp(argv[1], "select") == 0)
    f = test_select();
  else if (strcmp(argv[1], "reshape") == 0)
    f = test_reshape();
  else if (strcmp(argv[1], "reduce") == 0)
    f = test_reduce();
  else if (strcmp(argv[1], "strings") == 0)
    f = test_strings();
  else
    return 2;
  if (f)
    fprintf(stderr, "%d check(s) failed\n", f);
  else
    printf("ok\n");
  return f ? 1 : 0;
}
