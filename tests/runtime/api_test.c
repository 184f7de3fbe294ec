/* The model.h API end to end, from C99, through a hand-written model library (fake_model.c
 * + model_entry.c) on top of libkiln_rt. Usage: api_test api | threads | version <lib>. */
#define _POSIX_C_SOURCE 200809L

#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIM_LEVEL_STR(x) #x
#define SHIM_LEVEL_TEXT_OF(x) SHIM_LEVEL_STR(x)
#define SHIM_LEVEL_TEXT SHIM_LEVEL_TEXT_OF(KILN_SHIM_VERSION)

/* Exported by model_entry.c (model_desc.h names it but does not declare it). */
const kiln_model_desc_v1 *kiln_model_descriptor(void);

static int failures = 0;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: '%s'\n", __FILE__, __LINE__, #cond,    \
              kiln_last_error());                                                                  \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

/* Expects status st and a last-error message containing needle. */
#define CHECK_ERR(expr, st, needle)                                                                \
  do {                                                                                             \
    int got_ = (expr);                                                                             \
    if (got_ != (st) || !strstr(kiln_last_error(), (needle))) {                                    \
      fprintf(stderr, "%s:%d: %s returned %d (want %d), message '%s' (want '%s')\n", __FILE__,     \
              __LINE__, #expr, got_, (int)(st), kiln_last_error(), (needle));                      \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

static const DLDataType kF32 = {kDLFloat, 32, 1};
static const float kC[4] = {10, 20, 30, 40};

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

/* Runs y = x + c at this batch and checks every value. */
static int run_batch(kiln_container *c, int64_t batch, float seed) {
  float x[32], y[32];
  int64_t xs[2] = {batch, 4}, ys[2] = {batch, 4};
  DLTensor in, out;
  int64_t i;
  int st;
  for (i = 0; i < batch * 4; ++i) {
    x[i] = seed + (float)i;
    y[i] = -1;
  }
  in = tensor(x, xs, 2);
  out = tensor(y, ys, 2);
  st = kiln_run(c, &in, 1, &out, 1);
  if (st != KILN_OK) return st;
  for (i = 0; i < batch * 4; ++i)
    if (y[i] != x[i] + kC[i % 4]) return -1;
  return KILN_OK;
}

static void test_create_and_introspect(void) {
  kiln_container *c = NULL;
  kiln_container_options o;
  kiln_tensor_info info;
  int32_t n = -1;

  CHECK(kiln_abi_version() == KILN_ABI_VERSION);
  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  CHECK(c != NULL);
  CHECK(kiln_container_destroy(c) == KILN_OK);

  kiln_container_options_init(&o);
  CHECK(o.struct_size == sizeof o);
  o.num_runners = 2;
  o.threads_per_run = 1;
  o.device = "cpu";
  CHECK(kiln_container_create(&o, &c) == KILN_OK);

  CHECK(kiln_num_inputs(c, &n) == KILN_OK && n == 1);
  CHECK(kiln_num_outputs(c, &n) == KILN_OK && n == 1);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(kiln_input_info(c, 0, &info) == KILN_OK);
  CHECK(strcmp(info.name, "x") == 0);
  CHECK(info.ndim == 2 && info.dtype.code == kDLFloat && info.dtype.bits == 32);
  CHECK(info.dims[0] == -1 && info.dims[1] == 4);
  CHECK(info.dim_names[0] && strcmp(info.dim_names[0], "batch") == 0);
  CHECK(info.dim_names[1] == NULL);
  CHECK(info.dim_min[0] == 1 && info.dim_max[0] == 8);
  CHECK(info.dim_min[1] == 4 && info.dim_max[1] == 4);
  CHECK(kiln_output_info(c, 0, &info) == KILN_OK);
  CHECK(strcmp(info.name, "y") == 0 && info.dim_max[0] == 8);

  CHECK_ERR(kiln_input_info(c, 1, &info), KILN_ERR_INVALID_ARGUMENT, "out of range");
  CHECK_ERR(kiln_output_info(c, -1, &info), KILN_ERR_INVALID_ARGUMENT, "out of range");
  CHECK_ERR(kiln_input_info(c, 0, NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_input_info(NULL, 0, &info), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_num_inputs(NULL, &n), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_num_outputs(c, NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");
  info.struct_size = 8;
  CHECK_ERR(kiln_input_info(c, 0, &info), KILN_ERR_INVALID_ARGUMENT, "struct_size");
  CHECK(kiln_container_destroy(c) == KILN_OK);
  CHECK(kiln_container_destroy(NULL) == KILN_OK);
}

static void test_runs(void) {
  kiln_container *c = NULL;
  float x[32], y[32];
  int64_t dims[2], *dim_ptrs[1] = {dims};
  int64_t xs[2] = {3, 4};
  DLTensor in;
  DLManagedTensor *out = NULL;
  int64_t i;

  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  CHECK(run_batch(c, 1, 0.5f) == KILN_OK);
  CHECK(run_batch(c, 3, 1.5f) == KILN_OK);
  CHECK(run_batch(c, 8, -7.f) == KILN_OK);
  CHECK(run_batch(c, 3, 2.5f) == KILN_OK); /* again, smaller, after a bigger run */

  for (i = 0; i < 32; ++i)
    x[i] = (float)i;
  in = tensor(x, xs, 2);
  CHECK(kiln_output_dims(c, &in, 1, dim_ptrs) == KILN_OK);
  CHECK(dims[0] == 3 && dims[1] == 4);

  xs[0] = 5;
  CHECK(kiln_run_alloc(c, &in, 1, &out, 1) == KILN_OK);
  CHECK(out != NULL);
  if (out) {
    const float *yv = (const float *)out->dl_tensor.data;
    CHECK(out->dl_tensor.ndim == 2 && out->dl_tensor.shape[0] == 5 && out->dl_tensor.shape[1] == 4);
    CHECK(out->dl_tensor.device.device_type == kDLCPU);
    CHECK(out->dl_tensor.strides == NULL && out->dl_tensor.byte_offset == 0);
    CHECK(((uintptr_t)out->dl_tensor.data & 63) == 0);
    for (i = 0; i < 20; ++i)
      CHECK(yv[i] == x[i] + kC[i % 4]);
    CHECK(out->deleter != NULL);
    out->deleter(out);
  }

  /* byte_offset and explicit compact strides are honoured. */
  {
    int64_t s2[2] = {2, 4}, strides[2] = {4, 1};
    DLTensor a = tensor(x, s2, 2), b = tensor(y, s2, 2);
    a.byte_offset = 4 * sizeof(float); /* x rows start at 4.0 */
    a.strides = strides;
    CHECK(kiln_run(c, &a, 1, &b, 1) == KILN_OK);
    CHECK(y[0] == 4.f + 10.f && y[7] == 11.f + 40.f);
  }
  CHECK(kiln_container_destroy(c) == KILN_OK);
}

static void test_run_errors(void) {
  kiln_container *c = NULL;
  float x[64], y[64];
  int64_t xs[3] = {3, 4, 1}, ys[2] = {3, 4}, dims[2], *dim_ptrs[1] = {dims};
  DLTensor in[2], out;
  DLManagedTensor *managed = (DLManagedTensor *)&out; /* poison: must become NULL */

  memset(x, 0, sizeof x);
  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  in[0] = tensor(x, xs, 2);
  in[1] = in[0];
  out = tensor(y, ys, 2);

  CHECK_ERR(kiln_run(NULL, in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "container is NULL");
  CHECK_ERR(kiln_run(c, NULL, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "inputs is NULL");
  CHECK_ERR(kiln_run(c, in, 1, NULL, 1), KILN_ERR_INVALID_ARGUMENT, "outputs is NULL");
  CHECK_ERR(kiln_run(c, in, 2, &out, 1), KILN_ERR_INVALID_ARGUMENT, "1 inputs, got 2");
  CHECK_ERR(kiln_run(c, in, 1, &out, 0), KILN_ERR_INVALID_ARGUMENT, "1 outputs, got 0");
  CHECK_ERR(kiln_output_dims(c, in, 1, NULL), KILN_ERR_INVALID_ARGUMENT, "NULL");
  CHECK_ERR(kiln_run_alloc(c, in, 1, NULL, 1), KILN_ERR_INVALID_ARGUMENT, "NULL");

  in[0].dtype.code = kDLInt;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_DTYPE_MISMATCH,
            "input 'x': expected dtype float32, got int32");
  in[0].dtype = kF32;

  in[0].ndim = 3;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH,
            "input 'x': expected rank 2, got 3");
  in[0].ndim = 2;

  xs[0] = 9;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH,
            "input 'x' dim 0 (batch): expected 1..8, got 9");
  CHECK_ERR(kiln_output_dims(c, in, 1, dim_ptrs), KILN_ERR_SHAPE_MISMATCH, "input 'x' dim 0");
  CHECK_ERR(kiln_run_alloc(c, in, 1, &managed, 1), KILN_ERR_SHAPE_MISMATCH, "input 'x' dim 0");
  CHECK(managed == NULL);
  xs[0] = 0;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH, "input 'x' dim 0");
  xs[0] = 3;

  xs[1] = 5;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH,
            "input 'x' dim 1: expected 4, got 5");
  xs[1] = 4;

  ys[0] = 2;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_SHAPE_MISMATCH,
            "output 'y' dim 0: expected 3, got 2");
  ys[0] = 3;
  out.dtype.bits = 64;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_DTYPE_MISMATCH, "output 'y'");
  out.dtype = kF32;

  {
    int64_t strides[2] = {1, 3}; /* column-major */
    in[0].strides = strides;
    CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "not contiguous");
    in[0].strides = NULL;
  }
  in[0].device.device_type = kDLCUDA;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_DEVICE, "input 'x'");
  in[0].device.device_type = kDLCPU;
  in[0].data = NULL;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "data is NULL");
  in[0].data = x;

  /* An error inside the model's run comes back with the model's message. */
  x[5] = NAN;
  CHECK_ERR(kiln_run(c, in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "NaN in input 'x' at 5");
  CHECK_ERR(kiln_run_alloc(c, in, 1, &managed, 1), KILN_ERR_INVALID_ARGUMENT, "NaN");
  CHECK(managed == NULL);
  x[5] = 0;
  CHECK(kiln_run(c, in, 1, &out, 1) == KILN_OK);
  CHECK(kiln_last_error()[0] == '\0');
  CHECK(kiln_container_destroy(c) == KILN_OK);
}

static void test_create_errors(void) {
  kiln_container *c = (kiln_container *)&failures; /* poison: must become NULL */
  kiln_container_options o;

  CHECK_ERR(kiln_container_create(NULL, NULL), KILN_ERR_INVALID_ARGUMENT, "out is NULL");

  kiln_container_options_init(&o);
  o.struct_size = sizeof o - 8;
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_INVALID_ARGUMENT, "struct_size");
  CHECK(c == NULL);
  kiln_container_options_init(&o);
  o.reserved[3] = 1;
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_INVALID_ARGUMENT, "reserved");
  kiln_container_options_init(&o);
  o.num_runners = -1;
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_INVALID_ARGUMENT, "num_runners");
  kiln_container_options_init(&o);
  o.device = "cuda";
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_DEVICE, "compiled for cpu");
  o.device = "cuda:1";
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_DEVICE, "'cuda:1'");
  o.device = "tpu";
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_INVALID_ARGUMENT, "unknown device 'tpu'");
  kiln_container_options_init(&o);
  o.weights_path = "/nonexistent/kiln/weights.bin";
  CHECK_ERR(kiln_container_create(&o, &c), KILN_ERR_NOT_FOUND, "/nonexistent/kiln/weights.bin");
}

static void test_descriptor_variants(void) {
  kiln_model_desc_v1 d = *kiln_model_descriptor();
  kiln_container *c = NULL;
  kiln_container_options o;
  char path[] = "/tmp/kiln_weights_XXXXXX";
  int fd;
  float blob[32];

  d.shim_version = 99; /* the message names this runtime's level, KILN_SHIM_VERSION */
  CHECK_ERR(kiln_rt_container_create_v1(&d, NULL, &c), KILN_ERR_VERSION_MISMATCH,
            "model needs kiln shim v99 but this libkiln_rt provides v" SHIM_LEVEL_TEXT "; upgrade libkiln_rt");
  d = *kiln_model_descriptor();
  d.abi_version = 7;
  CHECK_ERR(kiln_rt_container_create_v1(&d, NULL, &c), KILN_ERR_VERSION_MISMATCH,
            "model needs kiln ABI v7 but this libkiln_rt provides v4; upgrade libkiln_rt");
  d = *kiln_model_descriptor();
  d.device = "tpu";
  CHECK_ERR(kiln_rt_container_create_v1(&d, NULL, &c), KILN_ERR_UNSUPPORTED, "'tpu'");
  /* A CUDA descriptor (here without kernels) needs the CUDA plugin and a driver: this build
   * machine has no driver, so KILN_ERR_DEVICE; with a GPU the container is created. */
  d.device = "cuda";
  {
    int st = kiln_rt_container_create_v1(&d, NULL, &c);
    CHECK(st == KILN_ERR_DEVICE || st == KILN_OK);
    if (st == KILN_ERR_DEVICE) CHECK(strstr(kiln_last_error(), "cuda") != NULL);
    if (st == KILN_OK) kiln_container_destroy(c);
    c = NULL;
  }
  /* ... and refuses to run on the CPU, which it has no code for. */
  kiln_container_options_init(&o);
  o.device = "cpu";
  CHECK_ERR(kiln_rt_container_create_v1(&d, &o, &c), KILN_ERR_DEVICE, "compiled for cuda");
  CHECK_ERR(kiln_rt_container_create_v1(NULL, NULL, &c), KILN_ERR_INVALID_ARGUMENT, "NULL");

  /* External weights: an embedded-less model needs weights_path, of sufficient size. */
  d = *kiln_model_descriptor();
  d.weights = NULL;
  CHECK_ERR(kiln_rt_container_create_v1(&d, NULL, &c), KILN_ERR_INVALID_ARGUMENT, "weights_path");
  memset(blob, 0, sizeof blob);
  blob[16] = 1;
  blob[17] = 2;
  blob[18] = 3;
  blob[19] = 4;
  fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, blob, 70) == 70); /* too small: the constant ends at byte 80 */
  kiln_container_options_init(&o);
  o.weights_path = path;
  CHECK_ERR(kiln_rt_container_create_v1(&d, &o, &c), KILN_ERR_INVALID_ARGUMENT, "80");
  CHECK(pwrite(fd, blob, sizeof blob, 0) == (ssize_t)sizeof blob);
  close(fd);
  CHECK(kiln_rt_container_create_v1(&d, &o, &c) == KILN_OK);
  if (c) {
    float x[4] = {0, 0, 0, 0}, y[4];
    int64_t s[2] = {1, 4};
    DLTensor in = tensor(x, s, 2), out = tensor(y, s, 2);
    CHECK(kiln_run(c, &in, 1, &out, 1) == KILN_OK);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 3 && y[3] == 4);
    kiln_container_destroy(c);
  }
  unlink(path);
}

static int test_version(const char *lib) {
  typedef int (*create_fn)(const kiln_container_options *, kiln_container **);
  typedef const char *(*error_fn)(void);
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  create_fn create;
  error_fn last_error;
  kiln_container *c = NULL;
  int st;
  if (!h) {
    fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
    return 1;
  }
  *(void **)&create = dlsym(h, "kiln_container_create");
  *(void **)&last_error = dlsym(h, "kiln_last_error");
  if (!create || !last_error) {
    fprintf(stderr, "missing symbols in %s\n", lib);
    return 1;
  }
  st = create(NULL, &c);
  if (st != KILN_ERR_VERSION_MISMATCH || c != NULL ||
      !strstr(last_error(), "needs kiln shim v99") || !strstr(last_error(), "upgrade")) {
    fprintf(stderr, "v99 model: status %d, message '%s'\n", st, last_error());
    return 1;
  }
  dlclose(h);
  printf("version: ok\n");
  return 0;
}

typedef struct {
  kiln_container *c;
  int id;
  int bad;
} thread_arg;

static void *thread_main(void *p) {
  thread_arg *a = (thread_arg *)p;
  int i;
  for (i = 0; i < 500; ++i)
    if (run_batch(a->c, 1 + (a->id + i) % 8, (float)(a->id * 1000 + i)) != KILN_OK) ++a->bad;
  return NULL;
}

static int test_threads(void) {
  kiln_container_options o;
  kiln_container *c = NULL;
  pthread_t t[8];
  thread_arg args[8];
  int i, bad = 0;
  kiln_container_options_init(&o);
  o.num_runners = 2;
  o.threads_per_run = 1;
  if (kiln_container_create(&o, &c) != KILN_OK) {
    fprintf(stderr, "create: %s\n", kiln_last_error());
    return 1;
  }
  for (i = 0; i < 8; ++i) {
    args[i].c = c;
    args[i].id = i;
    args[i].bad = 0;
    pthread_create(&t[i], NULL, thread_main, &args[i]);
  }
  for (i = 0; i < 8; ++i) {
    pthread_join(t[i], NULL);
    bad += args[i].bad;
  }
  kiln_container_destroy(c);
  printf("threads: %d bad runs of 4000\n", bad);
  return bad != 0;
}

/* ABI 4 on a CPU container: kiln_run_v2 is kiln_run (the stream is ignored), tensors and
 * copies live on the host, and device tensors are refused. */
static void test_abi4_on_cpu(void) {
  kiln_container *c = NULL;
  kiln_run_options ro;
  DLManagedTensor *x = NULL, *y = NULL;
  int64_t dims[2] = {2, 4};
  float hx[8] = {1, 2, 3, 4, 5, 6, 7, 8}, hy[8];
  DLTensor tx = tensor(hx, dims, 2), ty = tensor(hy, dims, 2), bad;
  int i;

  CHECK(kiln_container_create(NULL, &c) == KILN_OK);
  CHECK(kiln_alloc_tensor(c, kF32, 2, dims, &x) == KILN_OK);
  CHECK(kiln_alloc_tensor(c, kF32, 2, dims, &y) == KILN_OK);
  if (!x || !y) return;
  CHECK(x->dl_tensor.device.device_type == kDLCPU);
  CHECK(kiln_copy_tensor(c, &x->dl_tensor, &tx) == KILN_OK);
  kiln_run_options_init(&ro);
  ro.stream = (void *)0x1; /* ignored on the CPU */
  CHECK(kiln_run_v2(c, &ro, &x->dl_tensor, 1, &y->dl_tensor, 1) == KILN_OK);
  CHECK(kiln_copy_tensor(c, &ty, &y->dl_tensor) == KILN_OK);
  for (i = 0; i < 8; ++i)
    CHECK(hy[i] == hx[i] + kC[i % 4]);
  ro.reserved[0] = 1;
  CHECK_ERR(kiln_run_v2(c, &ro, &tx, 1, &ty, 1), KILN_ERR_INVALID_ARGUMENT, "reserved");
  bad = tx;
  bad.device.device_type = kDLCUDA;
  CHECK_ERR(kiln_copy_tensor(c, &ty, &bad), KILN_ERR_DEVICE, "src is on cuda:0");
  CHECK_ERR(kiln_run_v2(c, NULL, &bad, 1, &ty, 1), KILN_ERR_DEVICE, "input 'x'");
  x->deleter(x);
  y->deleter(y);
  kiln_container_destroy(c);
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "threads") == 0) return test_threads();
  if (argc >= 3 && strcmp(argv[1], "version") == 0) return test_version(argv[2]);
  test_create_and_introspect();
  test_runs();
  test_run_errors();
  test_create_errors();
  test_descriptor_variants();
  test_abi4_on_cpu();
  printf("api: %d failures\n", failures);
  return failures != 0;
}
