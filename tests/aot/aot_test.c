/* AOT test: a plain C99 host that loads a kiln-compiled model.so with dlopen and calls
 * the include/kiln/model.h API through dlsym only (links nothing but libdl).
 *
 *   aot_test mlp <model.so> <datadir>       dynamic batch: runs B = 1, 5, 16 from one .so,
 *                                           B = 17 must fail with KILN_ERR_SHAPE_MISMATCH;
 *                                           wrong dtype / rank / inner dim / count
 *   aot_test static2 <model.so> <datadir>   two inputs: values, wrong input/output count
 *   aot_test chain <model.so> <datadir>     dynamic batch through Shape/Reshape/Softmax/
 *                                           Transpose, B = 1, 3, 7, with kiln_run_alloc
 *   aot_test pair <model.so> <datadir>      two inputs sharing 'batch': z = a - c, and a
 *                                           run where they disagree must fail naming 'c'
 */
#include "aot_host.h"

static int test_mlp(const char *dir) {
  const int64_t K = 8, N = 5;
  const int64_t sizes[] = {1, 5, 16};
  kiln_container *c = make_container();
  kiln_tensor_info info;
  int32_t n = -1;
  int st;
  size_t s;

  CHECK(api.abi_version() == KILN_ABI_VERSION, "abi %u", api.abi_version());
  CHECK(api.num_inputs(c, &n) == KILN_OK && n == 1, "num_inputs %d", n);
  CHECK(api.num_outputs(c, &n) == KILN_OK && n == 1, "num_outputs %d", n);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  st = api.input_info(c, 0, &info);
  CHECK(st == KILN_OK, "input_info: %s", api.last_error());
  if (st == KILN_OK) {
    CHECK(strcmp(info.name, "x") == 0, "input name %s", info.name);
    CHECK(info.ndim == 2, "input ndim %d", info.ndim);
    CHECK(info.dtype.code == kDLFloat && info.dtype.bits == 32, "input dtype");
    CHECK(info.dims[0] == -1, "dim 0 should be symbolic, got %lld", (long long)info.dims[0]);
    CHECK(info.dims[1] == K, "dim 1 %lld", (long long)info.dims[1]);
    CHECK(info.dim_names[0] && strcmp(info.dim_names[0], "batch") == 0, "dim 0 name");
    CHECK(info.dim_names[1] == NULL, "dim 1 should be static");
    CHECK(info.dim_min[0] == 1 && info.dim_max[0] == 16, "batch range [%lld, %lld]",
          (long long)info.dim_min[0], (long long)info.dim_max[0]);
  }
  CHECK(api.input_info(c, 1, &info) == KILN_ERR_INVALID_ARGUMENT, "input_info(1) must fail");

  for (s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    int64_t B = sizes[s];
    char name[64];
    float *x, *want, *y;
    int64_t xs[2], ys[2], od[2] = {0, 0};
    int64_t *odp[1];
    DLTensor in, out;
    snprintf(name, sizeof name, "x_%lld.bin", (long long)B);
    x = read_floats(dir, name, (size_t)(B * K));
    snprintf(name, sizeof name, "y_%lld.bin", (long long)B);
    want = read_floats(dir, name, (size_t)(B * N));
    y = (float *)calloc((size_t)(B * N), sizeof(float));
    xs[0] = B;
    xs[1] = K;
    ys[0] = B;
    ys[1] = N;
    in = tensor(x, 2, xs, kDLFloat, 32);
    out = tensor(y, 2, ys, kDLFloat, 32);
    odp[0] = od;
    st = api.output_dims(c, &in, 1, odp);
    CHECK(st == KILN_OK && od[0] == B && od[1] == N, "output_dims B=%lld: %d [%lld, %lld] %s",
          (long long)B, st, (long long)od[0], (long long)od[1], api.last_error());
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_OK, "run B=%lld: %d %s", (long long)B, st, api.last_error());
    snprintf(name, sizeof name, "y(B=%lld)", (long long)B);
    if (st == KILN_OK) compare(name, y, want, (size_t)(B * N));
    free(x);
    free(want);
    free(y);
  }

  { /* B = 17 is outside the compiled range [1, 16]. */
    float *x = read_floats(dir, "x_17.bin", 17 * 8);
    float *y = (float *)calloc(17 * 5, sizeof(float));
    int64_t xs[2] = {17, 8}, ys[2] = {17, 5};
    DLTensor in = tensor(x, 2, xs, kDLFloat, 32), out = tensor(y, 2, ys, kDLFloat, 32);
    const char *msg;
    st = api.run(c, &in, 1, &out, 1);
    msg = api.last_error();
    CHECK(st == KILN_ERR_SHAPE_MISMATCH, "B=17: status %d (%s)", st, msg);
    CHECK(strstr(msg, "'x'") != NULL, "B=17 message must name input x: %s", msg);
    CHECK(strstr(msg, "batch") != NULL, "B=17 message must name dim batch: %s", msg);
    CHECK(strstr(msg, "17") != NULL, "B=17 message must give the value: %s", msg);
    free(x);
    free(y);
  }

  { /* Wrong dtype, rank, inner dim and counts. */
    double xd[2 * 8];
    float xf[3 * 8], y[3 * 5];
    int64_t xs[2] = {2, 8}, ys[2] = {2, 5}, xs3[3] = {1, 2, 8}, bad[2] = {2, 7};
    DLTensor in, out, two[2];
    memset(xd, 0, sizeof xd);
    memset(xf, 0, sizeof xf);
    out = tensor(y, 2, ys, kDLFloat, 32);

    in = tensor(xd, 2, xs, kDLFloat, 64);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_ERR_DTYPE_MISMATCH, "float64 input: status %d (%s)", st, api.last_error());
    CHECK(strstr(api.last_error(), "'x'") != NULL, "dtype message: %s", api.last_error());

    in = tensor(xf, 3, xs3, kDLFloat, 32);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_ERR_SHAPE_MISMATCH, "rank 3 input: status %d (%s)", st, api.last_error());
    CHECK(strstr(api.last_error(), "rank") != NULL, "rank message: %s", api.last_error());

    in = tensor(xf, 2, bad, kDLFloat, 32);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_ERR_SHAPE_MISMATCH, "inner dim 7: status %d (%s)", st, api.last_error());
    CHECK(strstr(api.last_error(), "dim 1") != NULL, "inner-dim message: %s", api.last_error());

    in = tensor(xf, 2, xs, kDLFloat, 32);
    st = api.run(c, &in, 0, &out, 1);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT, "0 inputs: status %d (%s)", st, api.last_error());
    two[0] = in;
    two[1] = in;
    st = api.run(c, two, 2, &out, 1);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT, "2 inputs: status %d (%s)", st, api.last_error());

    /* Output of the wrong shape for these inputs. */
    ys[0] = 3;
    out = tensor(y, 2, ys, kDLFloat, 32);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_ERR_SHAPE_MISMATCH, "wrong output shape: status %d (%s)", st,
          api.last_error());
    /* Null container. */
    st = api.run(NULL, &in, 1, &out, 1);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT, "null container: status %d", st);
    /* A good run still works after all the failures. */
    ys[0] = 2;
    out = tensor(y, 2, ys, kDLFloat, 32);
    st = api.run(c, &in, 1, &out, 1);
    CHECK(st == KILN_OK, "run after errors: %d (%s)", st, api.last_error());
  }
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

static int test_static2(const char *dir) {
  kiln_container *c = make_container();
  float *a = read_floats(dir, "a.bin", 21), *b = read_floats(dir, "c.bin", 21);
  float *want = read_floats(dir, "z.bin", 21);
  float z[21], z2[21];
  int64_t s[2] = {3, 7};
  DLTensor in[2], out[2];
  int32_t n = -1;
  int st;
  CHECK(api.num_inputs(c, &n) == KILN_OK && n == 2, "num_inputs %d", n);
  in[0] = tensor(a, 2, s, kDLFloat, 32);
  in[1] = tensor(b, 2, s, kDLFloat, 32);
  out[0] = tensor(z, 2, s, kDLFloat, 32);
  out[1] = tensor(z2, 2, s, kDLFloat, 32);
  st = api.run(c, in, 2, out, 1);
  CHECK(st == KILN_OK, "run: %d %s", st, api.last_error());
  if (st == KILN_OK) compare("z", z, want, 21);
  st = api.run(c, in, 1, out, 1);
  CHECK(st == KILN_ERR_INVALID_ARGUMENT, "1 of 2 inputs: status %d (%s)", st, api.last_error());
  st = api.run(c, in, 2, out, 2);
  CHECK(st == KILN_ERR_INVALID_ARGUMENT, "2 outputs: status %d (%s)", st, api.last_error());
  st = api.run(c, in, 2, out, 0);
  CHECK(st == KILN_ERR_INVALID_ARGUMENT, "0 outputs: status %d (%s)", st, api.last_error());
  /* Second input with the wrong dtype: the message names it. */
  in[1] = tensor(b, 2, s, kDLInt, 32);
  st = api.run(c, in, 2, out, 1);
  CHECK(st == KILN_ERR_DTYPE_MISMATCH, "int32 input: status %d (%s)", st, api.last_error());
  CHECK(strstr(api.last_error(), "'c'") != NULL, "dtype message: %s", api.last_error());
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  free(a);
  free(b);
  free(want);
  return failures;
}

static int test_chain(const char *dir) {
  const int64_t sizes[] = {1, 3, 7};
  kiln_container *c = make_container();
  size_t s;
  for (s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    int64_t B = sizes[s];
    char name[64];
    float *x, *want;
    int64_t xs[3];
    DLTensor in;
    DLManagedTensor *out = NULL;
    int st;
    snprintf(name, sizeof name, "cx_%lld.bin", (long long)B);
    x = read_floats(dir, name, (size_t)(B * 24));
    snprintf(name, sizeof name, "cy_%lld.bin", (long long)B);
    want = read_floats(dir, name, (size_t)(B * 24));
    xs[0] = B;
    xs[1] = 4;
    xs[2] = 6;
    in = tensor(x, 3, xs, kDLFloat, 32);
    st = api.run_alloc(c, &in, 1, &out, 1);
    CHECK(st == KILN_OK && out != NULL, "run_alloc B=%lld: %d %s", (long long)B, st,
          api.last_error());
    if (st == KILN_OK && out) {
      const DLTensor *t = &out->dl_tensor;
      CHECK(t->ndim == 3 && t->shape[0] == B && t->shape[1] == 6 && t->shape[2] == 4,
            "B=%lld: output shape", (long long)B);
      CHECK(t->dtype.code == kDLFloat && t->dtype.bits == 32, "output dtype");
      CHECK(t->strides == NULL || (t->strides[2] == 1 && t->strides[1] == 4),
            "output must be contiguous");
      snprintf(name, sizeof name, "chain y(B=%lld)", (long long)B);
      if (t->ndim == 3 && t->shape[0] == B)
        compare(name, (const float *)((const char *)t->data + t->byte_offset), want,
                (size_t)(B * 24));
      if (out->deleter) out->deleter(out);
    }
    free(x);
    free(want);
  }
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

static int test_pair(const char *dir) {
  kiln_container *c = make_container();
  float a[5 * 4], b[5 * 4], z[5 * 4];
  int64_t s3[2] = {3, 4}, s5[2] = {5, 4};
  DLTensor in[2], out;
  int i, st;
  const char *msg;
  (void)dir;
  for (i = 0; i < 20; ++i) {
    a[i] = (float)i;
    b[i] = (float)(3 * i) - 1.0f;
    z[i] = -1000.0f;
  }
  in[0] = tensor(a, 2, s5, kDLFloat, 32);
  in[1] = tensor(b, 2, s5, kDLFloat, 32);
  out = tensor(z, 2, s5, kDLFloat, 32);
  st = api.run(c, in, 2, &out, 1);
  CHECK(st == KILN_OK, "pair run: %d %s", st, api.last_error());
  for (i = 0; i < 20 && st == KILN_OK; ++i)
    CHECK(z[i] == a[i] - b[i], "z[%d] = %g, want %g", i, z[i], a[i] - b[i]);
  /* a has batch 5, c has batch 3: the shared symbol disagrees. */
  in[1] = tensor(b, 2, s3, kDLFloat, 32);
  st = api.run(c, in, 2, &out, 1);
  msg = api.last_error();
  CHECK(st == KILN_ERR_SHAPE_MISMATCH, "disagreeing batch: status %d (%s)", st, msg);
  CHECK(strstr(msg, "'c'") != NULL, "message must name input c: %s", msg);
  CHECK(strstr(msg, "batch") != NULL, "message must name dim batch: %s", msg);
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

int main(int argc, char **argv) {
  int f;
  if (argc != 4) {
    fprintf(stderr, "usage: %s mlp|static2 model.so datadir\n", argv[0]);
    return 2;
  }
  load_api(argv[2]);
  if (strcmp(argv[1], "mlp") == 0)
    f = test_mlp(argv[3]);
  else if (strcmp(argv[1], "static2") == 0)
    f = test_static2(argv[3]);
  else if (strcmp(argv[1], "chain") == 0)
    f = test_chain(argv[3]);
  else if (strcmp(argv[1], "pair") == 0)
    f = test_pair(argv[3]);
  else
    return 2;
  if (f)
    fprintf(stderr, "%d check(s) failed\n", f);
  else
    printf("ok\n");
  return f ? 1 : 0;
}
