/* Loads the level-1 model (old_model.c) with dlopen and runs it on the current libkiln_rt.
 * The old forwarders export only ABI-1 functions: the ABI-2 ones must be absent, not
 * crash. Usage: old_model_test <old_model.so> */
#define _POSIX_C_SOURCE 200809L
#include <kiln/model.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  void *h;
  int (*create)(const kiln_container_options *, kiln_container **);
  int (*destroy)(kiln_container *);
  int (*run)(kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t);
  const char *(*last_error)(void);
  kiln_container *c = NULL;
  float x[6] = {1, 0, -1, 2, 1, 0.5f}, y[8];
  const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, b[4] = {0.5f, 0.25f, -1, 2};
  int64_t xs[2] = {2, 3}, ys[2] = {2, 4};
  DLTensor in, out;
  int i, j, k, bad = 0;
  if (argc < 2) return 2;
  h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  *(void **)&create = dlsym(h, "kiln_container_create");
  *(void **)&destroy = dlsym(h, "kiln_container_destroy");
  *(void **)&run = dlsym(h, "kiln_run");
  *(void **)&last_error = dlsym(h, "kiln_last_error");
  if (!create || !destroy || !run || !last_error) {
    fprintf(stderr, "old model lacks ABI-1 functions\n");
    return 1;
  }
  if (dlsym(h, "kiln_run_minimal") || dlsym(h, "kiln_swap_constants")) {
    fprintf(stderr, "old model unexpectedly exports ABI-2 functions\n");
    return 1;
  }
  if (create(NULL, &c) != KILN_OK) {
    fprintf(stderr, "create: %s\n", last_error());
    return 1;
  }
  memset(&in, 0, sizeof in);
  in.data = x;
  in.device.device_type = kDLCPU;
  in.ndim = 2;
  in.dtype.code = kDLFloat;
  in.dtype.bits = 32;
  in.dtype.lanes = 1;
  in.shape = xs;
  out = in;
  out.data = y;
  out.shape = ys;
  if (run(c, &in, 1, &out, 1) != KILN_OK) {
    fprintf(stderr, "run: %s\n", last_error());
    return 1;
  }
  for (i = 0; i < 2; ++i)
    for (j = 0; j < 4; ++j) {
      float want = b[j];
      for (k = 0; k < 3; ++k)
        want += x[i * 3 + k] * w[k * 4 + j];
      if (y[i * 4 + j] < want - 1e-5f || y[i * 4 + j] > want + 1e-5f) {
        fprintf(stderr, "y[%d,%d] = %g, want %g\n", i, j, y[i * 4 + j], want);
        bad = 1;
      }
    }
  destroy(c);
  printf("old model (shim level 1, ABI 1): %s\n", bad ? "WRONG" : "loads and runs");
  return bad;
}
