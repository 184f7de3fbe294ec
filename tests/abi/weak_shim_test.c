/* A shim-level-4 model on a level-3 runtime (see CMakeLists.txt for both libraries).
 * Usage: weak_shim_test <model built with KILN_SHIM_WEAK_FROM_LEVEL=4> <same, without>
 *  - without the weak declarations dlopen(RTLD_NOW) fails on the missing level-4 symbol (the
 *    failure this guards against; if it stops failing, the test no longer proves anything);
 *  - with them dlopen succeeds, exactly the level >= 4 shims resolve to NULL, and
 *    kiln_container_create refuses the model with KILN_ERR_VERSION_MISMATCH naming the shim
 *    level the model needs (4) and the one the runtime provides (3). */
#define _POSIX_C_SOURCE 200809L
#include <kiln/model.h>
#include <kiln/shim.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LEVEL(fn, level) level,
static const int kLevels[] = {KILN_SHIM_FUNCTIONS(LEVEL)};
#define NAME(fn, level) #fn,
static const char *const kNames[] = {KILN_SHIM_FUNCTIONS(NAME)};
enum { kNumShims = sizeof kLevels / sizeof kLevels[0] };

static int strong_model_fails(const char *path) {
  const char *err;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h) {
    fprintf(stderr,
            "FAIL: %s (strong level-4 references) loaded on the level-3 runtime; the "
            "negative control no longer shows the failure\n",
            path);
    dlclose(h);
    return 0;
  }
  err = dlerror();
  printf("negative control: dlopen failed as expected: %s\n", err);
  if (!strstr(err, "undefined symbol") || !strstr(err, "kiln_shim_")) {
    fprintf(stderr, "FAIL: expected an undefined kiln_shim_ symbol, got: %s\n", err);
    return 0;
  }
  return 1;
}

static int weak_model_refused(const char *path) {
  int (*create)(const kiln_container_options *, kiln_container **);
  const char *(*last_error)(void);
  int (*missing_of)(uint8_t *, int);
  uint8_t missing[kNumShims];
  kiln_container *c = NULL;
  const char *msg;
  int status, i, ok = 1;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "FAIL: dlopen of the weak-reference model: %s\n", dlerror());
    return 0;
  }
  *(void **)&create = dlsym(h, "kiln_container_create");
  *(void **)&last_error = dlsym(h, "kiln_last_error");
  *(void **)&missing_of = dlsym(h, "weak_shim_model_missing");
  if (!create || !last_error || !missing_of) {
    fprintf(stderr, "FAIL: model lacks kiln_container_create, kiln_last_error or the hook\n");
    return 0;
  }
  if (missing_of(missing, kNumShims) != kNumShims) {
    fprintf(stderr, "FAIL: model and test disagree on KILN_SHIM_FUNCTIONS\n");
    return 0;
  }
  for (i = 0; i < kNumShims; ++i)
    if (missing[i] != (kLevels[i] > 3)) {
      fprintf(stderr, "FAIL: %s (level %d) is %s on the level-3 runtime\n", kNames[i], kLevels[i],
              missing[i] ? "missing" : "present");
      ok = 0;
    }
  status = create(NULL, &c);
  msg = last_error();
  printf("weak model: dlopen ok; create -> %d: %s\n", status, msg);
  if (status != KILN_ERR_VERSION_MISMATCH || c) {
    fprintf(stderr, "FAIL: create returned %d, expected KILN_ERR_VERSION_MISMATCH (%d)\n", status,
            KILN_ERR_VERSION_MISMATCH);
    ok = 0;
  }
  if (!strstr(msg, "shim v4") || !strstr(msg, "provides v3")) {
    fprintf(stderr, "FAIL: message does not name shim v4 (model) and v3 (runtime): %s\n", msg);
    ok = 0;
  }
  dlclose(h);
  return ok;
}

int main(int argc, char **argv) {
  int ok;
  if (argc != 3) {
    fprintf(stderr, "usage: %s <weak_model.so> <strong_model.so>\n", argv[0]);
    return 2;
  }
  ok = strong_model_fails(argv[2]);
  ok = weak_model_refused(argv[1]) && ok;
  printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
