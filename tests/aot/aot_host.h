/* Shared by the AOT test hosts: the model.h API looked up with dlsym only, a CHECK macro
 * that counts failures, and small helpers for tensors and data files. C99. */
#ifndef KILN_AOT_HOST_H
#define KILN_AOT_HOST_H

#include <kiln/model.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*options_init_fn)(kiln_container_options *);
typedef const char *(*last_error_fn)(void);
typedef uint32_t (*abi_version_fn)(void);
typedef int (*create_fn)(const kiln_container_options *, kiln_container **);
typedef int (*destroy_fn)(kiln_container *);
typedef int (*count_fn)(const kiln_container *, int32_t *);
typedef int (*info_fn)(const kiln_container *, int32_t, kiln_tensor_info *);
typedef int (*run_fn)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
typedef int (*run_alloc_fn)(kiln_container *, const DLTensor *, int32_t, DLManagedTensor **,
                            int32_t);
typedef int (*output_dims_fn)(kiln_container *, const DLTensor *, int32_t, int64_t *const *);

static struct {
  options_init_fn options_init;
  last_error_fn last_error;
  abi_version_fn abi_version;
  create_fn create;
  destroy_fn destroy;
  count_fn num_inputs, num_outputs;
  info_fn input_info, output_info;
  run_fn run;
  run_alloc_fn run_alloc;
  output_dims_fn output_dims;
} api;

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)

static inline void *sym_or_die(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) {
    fprintf(stderr, "dlsym(%s) failed: %s\n", name, dlerror());
    exit(2);
  }
  return p;
}

static inline void load_api(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen(%s) failed: %s\n", path, dlerror());
    exit(2);
  }
  /* Function pointers from void*: POSIX guarantees this works; go through memcpy to stay
   * within ISO C under -Wall -Werror. */
#define LOAD(field, name)                                                                          \
  do {                                                                                             \
    void *p_ = sym_or_die(lib, name);                                                              \
    memcpy(&api.field, &p_, sizeof p_);                                                            \
  } while (0)
  LOAD(options_init, "kiln_container_options_init");
  LOAD(last_error, "kiln_last_error");
  LOAD(abi_version, "kiln_abi_version");
  LOAD(create, "kiln_container_create");
  LOAD(destroy, "kiln_container_destroy");
  LOAD(num_inputs, "kiln_num_inputs");
  LOAD(num_outputs, "kiln_num_outputs");
  LOAD(input_info, "kiln_input_info");
  LOAD(output_info, "kiln_output_info");
  LOAD(run, "kiln_run");
  LOAD(run_alloc, "kiln_run_alloc");
  LOAD(output_dims, "kiln_output_dims");
#undef LOAD
}

static inline float *read_floats(const char *dir, const char *name, size_t n) {
  char path[4096];
  FILE *f;
  float *buf = (float *)malloc(n * sizeof(float) + 1);
  size_t got;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "rb");
  if (!f || !buf) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  got = fread(buf, sizeof(float), n + 1, f);
  fclose(f);
  if (got != n) {
    fprintf(stderr, "%s: expected %zu floats, got %zu\n", path, n, got);
    exit(2);
  }
  return buf;
}

static inline DLTensor tensor(void *data, int32_t ndim, int64_t *shape, uint8_t code,
                              uint8_t bits) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.device.device_id = 0;
  t.ndim = ndim;
  t.dtype.code = code;
  t.dtype.bits = bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  t.strides = NULL;
  t.byte_offset = 0;
  return t;
}

static inline void compare(const char *what, const float *got, const float *want, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    double tol = 1e-5 + 1e-4 * fabs(want[i]);
    if (!(fabs((double)got[i] - (double)want[i]) <= tol)) {
      CHECK(0, "%s[%zu]: got %.8g, want %.8g", what, i, got[i], want[i]);
      return;
    }
  }
}

static inline kiln_container *make_container(void) {
  kiln_container_options opt;
  kiln_container *c = NULL;
  int st;
  api.options_init(&opt);
  CHECK(opt.struct_size == sizeof opt, "options_init did not set struct_size");
  opt.num_runners = 2;
  st = api.create(&opt, &c);
  if (st != KILN_OK || !c) {
    fprintf(stderr, "kiln_container_create: %d %s\n", st, api.last_error());
    exit(2);
  }
  return c;
}

#endif /* KILN_AOT_HOST_H */
