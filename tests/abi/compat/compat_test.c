/* Replays one compat-corpus manifest (gen_compat.py) on today's libkiln_rt: loads a committed
 * model.so built by an earlier kiln, runs it on the recorded inputs and compares with the
 * expected outputs (computed in numpy float64). A released model.so that stops loading or
 * answers differently fails here.
 * Usage: compat_test <libkiln_rt.so> <corpus dir> <name>   (reads <dir>/<name>.manifest) */
#define _POSIX_C_SOURCE 200809L
#include <kiln/model.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Api {
  void (*options_init)(kiln_container_options *);
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  int (*num_inputs)(const kiln_container *, int32_t *);
  int (*num_outputs)(const kiln_container *, int32_t *);
  int (*input_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*output_info)(const kiln_container *, int32_t, kiln_tensor_info *);
  int (*run_alloc)(kiln_container *, const DLTensor *, int32_t, DLManagedTensor **, int32_t);
  int (*update)(kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t,
                uint32_t);
  int (*swap)(kiln_container *);
  const char *(*last_error)(void);
} Api;

enum { kMaxTensors = 8, kMaxDims = 8 };

typedef struct Tensor {
  char name[128], file[256];
  DLDataType dtype;
  int32_t ndim;
  int64_t dims[kMaxDims];
  double tol;
  void *data;
  size_t bytes;
} Tensor;

static const char *g_dir;
static int g_failed;

static void *readAll(const char *file, size_t want) {
  char path[1024];
  FILE *f;
  void *p = malloc(want ? want : 1);
  snprintf(path, sizeof path, "%s/%s", g_dir, file);
  f = fopen(path, "rb");
  if (!f || fread(p, 1, want, f) != want) {
    fprintf(stderr, "cannot read %zu bytes from %s\n", want, path);
    exit(1);
  }
  fclose(f);
  return p;
}

/* "<name> <file> <f32|i64> <ndim> <dims...> [tol]" after the keyword. */
static void parseTensor(char *rest, Tensor *t, int withTol) {
  char dt[8];
  int used = 0, i;
  size_t n = 1;
  memset(t, 0, sizeof *t);
  if (sscanf(rest, "%127s %255s %7s %d%n", t->name, t->file, dt, &t->ndim, &used) != 4 ||
      t->ndim < 0 || t->ndim > kMaxDims) {
    fprintf(stderr, "bad manifest line: %s\n", rest);
    exit(1);
  }
  rest += used;
  for (i = 0; i < t->ndim; ++i) {
    long long d;
    if (sscanf(rest, "%lld%n", &d, &used) != 1) exit(1);
    t->dims[i] = d;
    n *= (size_t)d;
    rest += used;
  }
  if (withTol && sscanf(rest, "%lf", &t->tol) != 1) exit(1);
  t->dtype.code = strcmp(dt, "i64") == 0 ? kDLInt : kDLFloat;
  t->dtype.bits = strcmp(dt, "i64") == 0 ? 64 : 32;
  t->dtype.lanes = 1;
  t->bytes = n * (t->dtype.bits / 8);
  t->data = readAll(t->file, t->bytes);
}

static DLTensor asDL(const Tensor *t) {
  DLTensor d;
  memset(&d, 0, sizeof d);
  d.data = t->data;
  d.device.device_type = kDLCPU;
  d.ndim = t->ndim;
  d.dtype = t->dtype;
  d.shape = (int64_t *)t->dims;
  return d;
}

static void compare(const Tensor *want, const DLTensor *got) {
  size_t i, n = want->bytes / (want->dtype.bits / 8);
  int d;
  if (got->ndim != want->ndim || got->dtype.code != want->dtype.code ||
      got->dtype.bits != want->dtype.bits) {
    fprintf(stderr, "output %s: rank/dtype differ\n", want->name);
    g_failed = 1;
    return;
  }
  for (d = 0; d < want->ndim; ++d)
    if (got->shape[d] != want->dims[d]) {
      fprintf(stderr, "output %s dim %d: %lld, want %lld\n", want->name, d,
              (long long)got->shape[d], (long long)want->dims[d]);
      g_failed = 1;
      return;
    }
  for (i = 0; i < n; ++i) {
    double a, b;
    if (want->dtype.code == kDLInt) {
      a = (double)((const int64_t *)got->data)[i];
      b = (double)((const int64_t *)want->data)[i];
    } else {
      a = ((const float *)got->data)[i];
      b = ((const float *)want->data)[i];
    }
    if (!(fabs(a - b) <= want->tol * (1.0 + fabs(b)))) {
      fprintf(stderr, "output %s[%zu] = %.9g, want %.9g (tol %g)\n", want->name, i, a, b,
              want->tol);
      g_failed = 1;
      return;
    }
  }
}

static int32_t indexOf(const Api *api, kiln_container *c, int isInput, const char *name) {
  int32_t n = 0, i;
  kiln_tensor_info info;
  (isInput ? api->num_inputs : api->num_outputs)(c, &n);
  for (i = 0; i < n; ++i) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    (isInput ? api->input_info : api->output_info)(c, i, &info);
    if (strcmp(info.name, name) == 0) return i;
  }
  fprintf(stderr, "model has no %s named %s\n", isInput ? "input" : "output", name);
  exit(1);
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != KILN_OK) {                                                                       \
      fprintf(stderr, "%s: %s\n", #call, api.last_error());                                        \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  char path[1024], line[1024], weights[1024] = "";
  Api api;
  void *h = NULL;
  kiln_container *c = NULL;
  kiln_container_options opts;
  Tensor ins[kMaxTensors], outs[kMaxTensors];
  int nin = 0, nout = 0, runs = 0, i;
  FILE *m;
  if (argc != 4) return 2;
  g_dir = argv[2];
  /* Today's runtime first: the model's RUNPATH names the tree it was built in, and its
   * NEEDED libkiln_rt.so then resolves to this already-loaded library (same SONAME). */
  if (!dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) {
    fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
  snprintf(path, sizeof path, "%s/%s.manifest", g_dir, argv[3]);
  m = fopen(path, "r");
  if (!m) {
    fprintf(stderr, "cannot open %s\n", path);
    return 1;
  }
  while (fgets(line, sizeof line, m)) {
    char *rest = strchr(line, ' ');
    line[strcspn(line, "\n")] = 0;
    if (rest) *rest++ = 0;
    if (strcmp(line, "library") == 0) {
      snprintf(path, sizeof path, "%s/%s", g_dir, rest);
      h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 1;
      }
#define SYM(field, name) *(void **)&api.field = dlsym(h, name)
      SYM(options_init, "kiln_container_options_init");
      SYM(create, "kiln_container_create");
      SYM(destroy, "kiln_container_destroy");
      SYM(num_inputs, "kiln_num_inputs");
      SYM(num_outputs, "kiln_num_outputs");
      SYM(input_info, "kiln_input_info");
      SYM(output_info, "kiln_output_info");
      SYM(run_alloc, "kiln_run_alloc");
      SYM(update, "kiln_update_constants");
      SYM(swap, "kiln_swap_constants");
      SYM(last_error, "kiln_last_error");
#undef SYM
      if (!api.create || !api.run_alloc || !api.update || !api.swap || !api.last_error ||
          !api.options_init || !api.input_info || !api.output_info) {
        fprintf(stderr, "%s lacks a released model.h function\n", path);
        return 1;
      }
    } else if (strcmp(line, "weights") == 0) {
      snprintf(weights, sizeof weights, "%s/%s", g_dir, rest);
    } else if (strcmp(line, "update") == 0 || strcmp(line, "swap") == 0 ||
               strcmp(line, "run") == 0) {
      if (!c) {
        api.options_init(&opts);
        opts.num_runners = 2;
        opts.weights_path = weights[0] ? weights : NULL;
        CHECK(api.create(&opts, &c));
      }
      if (strcmp(line, "update") == 0) {
        Tensor t;
        DLTensor v;
        const char *name = t.name;
        parseTensor(rest, &t, 0);
        v = asDL(&t);
        CHECK(api.update(c, KILN_CONSTANTS_INACTIVE, &name, &v, 1, KILN_UPDATE_NONE));
        free(t.data);
      } else if (strcmp(line, "swap") == 0) {
        CHECK(api.swap(c));
      }
      nin = nout = 0;
    } else if (strcmp(line, "input") == 0 && nin < kMaxTensors) {
      parseTensor(rest, &ins[nin++], 0);
    } else if (strcmp(line, "output") == 0 && nout < kMaxTensors) {
      parseTensor(rest, &outs[nout++], 1);
    } else if (strcmp(line, "end") == 0) {
      DLTensor in[kMaxTensors];
      DLManagedTensor *got[kMaxTensors] = {0};
      int32_t total = 0;
      api.num_outputs(c, &total);
      if (total > kMaxTensors) return 1;
      for (i = 0; i < nin; ++i)
        in[indexOf(&api, c, 1, ins[i].name)] = asDL(&ins[i]);
      CHECK(api.run_alloc(c, in, nin, got, total));
      for (i = 0; i < nout; ++i)
        compare(&outs[i], &got[indexOf(&api, c, 0, outs[i].name)]->dl_tensor);
      for (i = 0; i < total; ++i)
        got[i]->deleter(got[i]);
      for (i = 0; i < nin; ++i)
        free(ins[i].data);
      for (i = 0; i < nout; ++i)
        free(outs[i].data);
      ++runs;
    }
  }
  fclose(m);
  if (c) api.destroy(c);
  printf("compat %s: %d run(s), %s\n", argv[3], runs, g_failed ? "WRONG" : "ok");
  return g_failed || runs == 0;
}
