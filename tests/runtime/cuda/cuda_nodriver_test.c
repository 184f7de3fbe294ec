/* A CUDA model on a machine without the NVIDIA driver (this build machine: libcuda.so.1 is
 * absent): creating its container fails with KILN_ERR_DEVICE and says why. */
#include <kiln/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  kiln_container *c = NULL;
  kiln_container_options o;
  const char *mock = getenv("KILN_CUDA_DRIVER_MOCK");
  if (mock && *mock) {
    fprintf(stderr, "unset KILN_CUDA_DRIVER_MOCK for this test\n");
    return 1;
  }
  kiln_container_options_init(&o);
  o.device = "cuda";
  int st = kiln_container_create(&o, &c);
  const char *msg = kiln_last_error();
  printf("status %d: %s\n", st, msg);
  if (st == KILN_OK) {
    /* A machine with a GPU: nothing to test here. */
    kiln_container_destroy(c);
    printf("a CUDA driver is present; skipped\n");
    return 0;
  }
  if (st != KILN_ERR_DEVICE || !strstr(msg, "libcuda.so.1") || !strstr(msg, "cuda:0")) {
    fprintf(stderr, "expected KILN_ERR_DEVICE naming libcuda.so.1 and cuda:0\n");
    return 1;
  }
  /* The failure is remembered, and a second container says the same. */
  if (kiln_container_create(NULL, &c) != KILN_ERR_DEVICE || !strstr(kiln_last_error(), "driver")) {
    fprintf(stderr, "second create: '%s'\n", kiln_last_error());
    return 1;
  }
  return 0;
}
