/* model.h ABI v2 from C99: constants (introspection, update into the active or inactive
 * buffer, REQUIRE_ALL, swap, free, read back, all-or-nothing errors), kiln_run_minimal,
 * external weights past 4 GiB offsets (sparse file), and a check that every kiln_status
 * code is produced by some call. Links the dynamic fake model; the static and big variants
 * are dlopen'ed. Usage: constants_test <static_model.so> <big_model.so> */
#define _POSIX_C_SOURCE 200809L

#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const kiln_model_desc_v1 *kiln_model_descriptor(void);

static int failures = 0;
static int seen_status[KILN_ERR_INVALID_STATE + 1];

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: '%s'\n", __FILE__, __LINE__, #cond,    \
              kiln_last_error());                                                                  \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

/* Expects status st and a last-error message containing needle; records st as seen. */
#define CHECK_ERR(expr, st, needle)                                                                \
  do {                                                                                             \
    int got_ = (expr);                                                                             \
    if (got_ >= 0 && got_ <= KILN_ERR_INVALID_STATE && got_ == (st)) seen_status[got_] = 1;        \
    if (got_ != (st) || !strstr(kiln_last_error(), (needle))) {                                    \
      fprintf(stderr, "%s:%d: %s returned %d (want %d), message '%s' (want '%s')\n", __FILE__,     \
              __LINE__, #expr, got_, (int)(st), kiln_last_error(), (needle));                      \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

static const DLDataType kF32 = {kDLFloat, 32, 1};
static int64_t k4[1] = {4};

static DLTensor tensor(void *data, int64_t *shape, int32_t ndim) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.ndim = ndim;
  t.dtype = kF32;
  t.shape = shape;
  return t;
}

/* y = x + c + d for x = 0 at batch 1: returns y[j] (all four must match want). */
static int run_expect(kiln_container *c, const float want[4]) {
  float x[4] = {0, 0, 0, 0}, y[4] = {-1, -1, -1, -1};
  int64_t s[2] = {1, 4};
  DLTensor in = tensor(x, s, 2), out = tensor(y, s, 2);
  int j;
  if (kiln_run(c, &in, 1, &out, 1) != KILN_OK) return 0;
  for (j = 0; j < 4; ++j)
    if (y[j] != want[j]) {
      fprintf(stderr, "y[%d] = %g, want %g\n", j, y[j], want[j]);
      return 0;
    }
  return 1;
}

static int read_expect(kiln_container *c, int32_t buffer, const char *name, const float want[4]) {
  float v[4];
  DLTensor t = tensor(v, k4, 1);
  if (kiln_read_constant(c, buffer, name, &t) != KILN_OK) return 0;
  return memcmp(v, want, sizeof v) == 0;
}

static void test_constants(void) {
  kiln_container *c = NULL;
  kiln_tensor_info info;
  int32_t n = -1;
  float c1[4] = {1, 2, 3, 4}, d1[4] = {100, 200, 300, 400}, c2[4] = {5, 6, 7, 8};
  float orig_c[4] = {10, 20, 30, 40}, zero[4] = {0, 0, 0, 0};
  float want[4];
  const char *names[2] = {"c", "d"};
  DLTensor vals[2];
  int j;

  CHECK(kiln_abi_version() == KILN_ABI_VERSION);
  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  CHECK(kiln_num_constants(c, &n) == KILN_OK && n == 2);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(kiln_constant_info(c, 0, &info) == KILN_OK);
  CHECK(strcmp(info.name, "c") == 0 && info.ndim == 1 && info.dims[0] == 4);
  CHECK(info.dtype.code == kDLFloat && info.dtype.bits == 32 && info.dim_names[0] == NULL);
  CHECK(info.dim_min[0] == 4 && info.dim_max[0] == 4);
  CHECK(kiln_constant_info(c, 1, &info) == KILN_OK && strcmp(info.name, "d") == 0);
  CHECK_ERR(kiln_constant_info(c, 2, &info), KILN_ERR_INVALID_ARGUMENT, "out of range");
  CHECK_ERR(kiln_constant_info(NULL, 0, &info), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_num_constants(c, NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");
  info.struct_size = 4;
  CHECK_ERR(kiln_constant_info(c, 0, &info), KILN_ERR_INVALID_ARGUMENT, "struct_size");

  /* Read back the embedded values; no inactive buffer yet. */
  CHECK(read_expect(c, KILN_CONSTANTS_ACTIVE, "c", orig_c));
  CHECK(read_expect(c, KILN_CONSTANTS_ACTIVE, "d", zero));
  vals[0] = tensor(c2, k4, 1);
  CHECK_ERR(kiln_read_constant(c, KILN_CONSTANTS_INACTIVE, "c", &vals[0]), KILN_ERR_INVALID_STATE,
            "no inactive");
  CHECK_ERR(kiln_swap_constants(c), KILN_ERR_INVALID_STATE, "no inactive");
  CHECK(kiln_free_inactive_constants(c) == KILN_OK); /* none: no-op */

  /* Errors change nothing. */
  vals[0] = tensor(c1, k4, 1);
  vals[1] = tensor(d1, k4, 1);
  {
    const char *bad_names[2] = {"c", "nope"};
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, bad_names, vals, 2, 0),
              KILN_ERR_NOT_FOUND, "'nope'");
  }
  {
    const char *dup[2] = {"c", "c"};
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, dup, vals, 2, 0),
              KILN_ERR_INVALID_ARGUMENT, "twice");
  }
  {
    DLTensor bad[2];
    int64_t k5[1] = {5}, k22[2] = {2, 2};
    bad[0] = vals[0];
    bad[1] = tensor(d1, k5, 1);
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, bad, 2, 0),
              KILN_ERR_SHAPE_MISMATCH, "constant 'd' dim 0: expected 4, got 5");
    bad[1] = tensor(d1, k22, 2);
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, bad, 2, 0),
              KILN_ERR_SHAPE_MISMATCH, "rank");
    bad[1] = vals[1];
    bad[1].dtype.bits = 64;
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, bad, 2, 0),
              KILN_ERR_DTYPE_MISMATCH, "expected dtype float32, got float64");
    bad[1] = vals[1];
    bad[1].device.device_type = kDLCUDA;
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, bad, 2, 0), KILN_ERR_DEVICE,
              "CPU");
    bad[1] = vals[1];
    bad[1].data = NULL;
    CHECK_ERR(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, bad, 2, 0),
              KILN_ERR_INVALID_ARGUMENT, "data is NULL");
  }
  CHECK_ERR(
      kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, names, vals, 1, KILN_UPDATE_REQUIRE_ALL),
      KILN_ERR_INVALID_ARGUMENT, "'d' is missing");
  CHECK_ERR(kiln_update_constants(c, 2, names, vals, 2, 0), KILN_ERR_INVALID_ARGUMENT, "buffer");
  CHECK_ERR(kiln_update_constants(c, 0, names, vals, 2, 0x80), KILN_ERR_INVALID_ARGUMENT, "flag");
  CHECK_ERR(kiln_update_constants(c, 0, NULL, vals, 2, 0), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_update_constants(NULL, 0, names, vals, 2, 0), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK(read_expect(c, KILN_CONSTANTS_ACTIVE, "c", orig_c));
  CHECK(read_expect(c, KILN_CONSTANTS_ACTIVE, "d", zero));
  CHECK_ERR(kiln_read_constant(c, KILN_CONSTANTS_INACTIVE, "c", &vals[0]), KILN_ERR_INVALID_STATE,
            "no inactive");
  CHECK(run_expect(c, orig_c));

  /* Inactive update (full), runs still see the active one; swap; runs see the new one. */
  CHECK(kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, names, vals, 2,
                              KILN_UPDATE_REQUIRE_ALL) == KILN_OK);
  CHECK(run_expect(c, orig_c));
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "c", c1));
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "d", d1));
  CHECK(kiln_swap_constants(c) == KILN_OK);
  for (j = 0; j < 4; ++j)
    want[j] = c1[j] + d1[j];
  CHECK(run_expect(c, want));
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "c", orig_c)); /* old active is inactive */

  /* Partial inactive update of the (read-only, embedded) old set: d keeps its old value. */
  vals[0] = tensor(c2, k4, 1);
  CHECK(kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, names, vals, 1, 0) == KILN_OK);
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "c", c2));
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "d", zero));
  CHECK(run_expect(c, want));
  CHECK(kiln_swap_constants(c) == KILN_OK);
  CHECK(run_expect(c, c2));

  /* Active update publishes a copy; the inactive one is untouched. */
  vals[0] = tensor(orig_c, k4, 1);
  CHECK(kiln_update_constants(c, KILN_CONSTANTS_ACTIVE, names, vals, 1, 0) == KILN_OK);
  CHECK(run_expect(c, orig_c));
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "c", c1));
  CHECK(kiln_free_inactive_constants(c) == KILN_OK);
  CHECK_ERR(kiln_swap_constants(c), KILN_ERR_INVALID_STATE, "no inactive");
  CHECK(run_expect(c, orig_c));
  /* A partial inactive update after a free starts from a copy of the active buffer. */
  vals[1] = tensor(d1, k4, 1);
  CHECK(kiln_update_constants(c, KILN_CONSTANTS_INACTIVE, names + 1, vals + 1, 1, 0) == KILN_OK);
  CHECK(read_expect(c, KILN_CONSTANTS_INACTIVE, "c", orig_c));
  CHECK(kiln_swap_constants(c) == KILN_OK);
  for (j = 0; j < 4; ++j)
    want[j] = orig_c[j] + d1[j];
  CHECK(run_expect(c, want));

  /* read_constant errors. */
  {
    int64_t k3[1] = {3};
    DLTensor t = tensor(c2, k3, 1);
    CHECK_ERR(kiln_read_constant(c, 0, "c", &t), KILN_ERR_SHAPE_MISMATCH, "expected 4, got 3");
    CHECK_ERR(kiln_read_constant(c, 0, "zz", &vals[0]), KILN_ERR_NOT_FOUND, "'zz'");
    CHECK_ERR(kiln_read_constant(c, 5, "c", &vals[0]), KILN_ERR_INVALID_ARGUMENT, "buffer");
    CHECK_ERR(kiln_read_constant(c, 0, NULL, &vals[0]), KILN_ERR_INVALID_ARGUMENT, "NULL");
  }
  CHECK_ERR(kiln_swap_constants(NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_free_inactive_constants(NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");

  /* Minimal run needs static shapes. */
  {
    float x[8], y[8];
    void *in[1] = {x}, *out[1] = {y};
    CHECK_ERR(kiln_run_minimal(c, in, out), KILN_ERR_UNSUPPORTED, "'batch'");
    CHECK_ERR(kiln_run_minimal(c, NULL, out), KILN_ERR_INVALID_ARGUMENT, "inputs is NULL");
    CHECK_ERR(kiln_run_minimal(NULL, in, out), KILN_ERR_INVALID_ARGUMENT, "NULL");
  }
  kiln_container_destroy(c);
}

static int bad_status_run(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *syms,
                          void *const *consts) {
  (void)ctx, (void)in, (void)out, (void)syms, (void)consts;
  return 42; /* not a kiln_status: the runtime reports an internal error */
}

static void test_other_statuses(void) {
  kiln_model_desc_v1 d = *kiln_model_descriptor();
  kiln_symbol_desc_v1 sym = {"batch", 1, INT64_MAX / 64};
  kiln_container *c = NULL;
  kiln_container_options o;
  float x[4] = {0}, y[4];
  int64_t s[2] = {1, 4};
  DLTensor in = tensor(x, s, 2), out = tensor(y, s, 2);
  DLManagedTensor *m = NULL;

  d.shim_version = KILN_SHIM_VERSION + 1;
  CHECK_ERR(kiln_rt_container_create_v1(&d, NULL, &c), KILN_ERR_VERSION_MISMATCH, "kiln shim v");
  d = *kiln_model_descriptor();
  d.run = bad_status_run;
  CHECK(kiln_rt_container_create_v1(&d, NULL, &c) == KILN_OK);
  CHECK_ERR(kiln_run(c, &in, 1, &out, 1), KILN_ERR_INTERNAL, "status 42");
  kiln_container_destroy(c);

  /* A huge symbolic range lets run_alloc ask for more memory than exists. */
  d = *kiln_model_descriptor();
  d.symbols = &sym;
  CHECK(kiln_rt_container_create_v1(&d, NULL, &c) == KILN_OK);
  s[0] = INT64_MAX / 64;
  CHECK_ERR(kiln_run_alloc(c, &in, 1, &m, 1), KILN_ERR_OUT_OF_MEMORY, "cannot allocate");
  CHECK(m == NULL);
  kiln_container_destroy(c);
  s[0] = 1;

  kiln_container_options_init(&o);
  o.weights_path = "/nonexistent/kiln.weights";
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_NOT_FOUND, "cannot open weights file");
  o.weights_path = NULL;
  o.device = "cuda:1"; /* a CPU model: refused before any CUDA plugin or driver is looked for */
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_DEVICE, "compiled for cpu only");
  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  in.dtype.code = kDLInt;
  CHECK_ERR(kiln_run(c, &in, 1, &out, 1), KILN_ERR_DTYPE_MISMATCH, "input 'x'");
  in.dtype = kF32;
  s[1] = 5;
  CHECK_ERR(kiln_run(c, &in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH, "input 'x'");
  kiln_container_destroy(c);
  seen_status[KILN_OK] = 1;
}

typedef const kiln_model_desc_v1 *(*desc_fn)(void);

static const kiln_model_desc_v1 *load_desc(const char *lib) {
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  desc_fn f;
  if (!h) {
    fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
    return NULL;
  }
  *(void **)&f = dlsym(h, "kiln_model_descriptor");
  return f ? f() : NULL;
}

static void test_minimal(const char *lib) {
  const kiln_model_desc_v1 *d = load_desc(lib);
  kiln_container *c = NULL;
  float x[8], y[8];
  void *in[1] = {x}, *out[1] = {y};
  int i;
  CHECK(d != NULL);
  if (!d) return;
  CHECK(kiln_rt_container_create_v1(d, NULL, &c) == KILN_OK);
  for (i = 0; i < 8; ++i)
    x[i] = (float)i;
  CHECK(kiln_run_minimal(c, in, out) == KILN_OK);
  for (i = 0; i < 8; ++i)
    CHECK(y[i] == x[i] + (float)(10 * (i % 4 + 1)));
  x[3] = 0.f / 0.f; /* the fake model's error path */
  CHECK_ERR(kiln_run_minimal(c, in, out), KILN_ERR_INVALID_ARGUMENT, "NaN in input 'x' at 3");
  kiln_container_destroy(c);
}

/* Constants at offsets past 3 GiB in a sparse external weights file. */
static void test_big_weights(const char *lib) {
  const kiln_model_desc_v1 *d = load_desc(lib);
  kiln_container *c = NULL;
  kiln_container_options o;
  char path[] = "/tmp/kiln_big_weights_XXXXXX";
  const uint64_t base = 3221225472ull;
  float cv[4] = {1, 2, 3, 4}, dv[4] = {0.5f, 0.5f, 0.5f, 0.5f}, want[4];
  int fd, j;
  CHECK(d != NULL);
  if (!d) return;
  CHECK_ERR(kiln_rt_container_create_v1(d, NULL, &c), KILN_ERR_INVALID_ARGUMENT, "weights_path");
  fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(pwrite(fd, dv, sizeof dv, (off_t)base) == (ssize_t)sizeof dv);
  CHECK(pwrite(fd, cv, sizeof cv, (off_t)(base + 64)) == (ssize_t)sizeof cv);
  close(fd);
  kiln_container_options_init(&o);
  o.weights_path = path;
  o.num_runners = 1;
  CHECK(kiln_rt_container_create_v1(d, &o, &c) == KILN_OK);
  for (j = 0; j < 4; ++j)
    want[j] = cv[j] + dv[j];
  if (c) {
    CHECK(run_expect(c, want));
    CHECK(read_expect(c, KILN_CONSTANTS_ACTIVE, "c", cv));
    kiln_container_destroy(c);
  }
  unlink(path);
}

int main(int argc, char **argv) {
  int st;
  if (argc < 3) {
    fprintf(stderr, "usage: %s <static_model.so> <big_model.so>\n", argv[0]);
    return 2;
  }
  test_constants();
  test_other_statuses();
  test_minimal(argv[1]);
  test_big_weights(argv[2]);
  for (st = 0; st <= KILN_ERR_INVALID_STATE; ++st)
    if (!seen_status[st]) {
      fprintf(stderr, "status %d was never produced\n", st);
      ++failures;
    }
  printf("constants: %d failures\n", failures);
  return failures != 0;
}
