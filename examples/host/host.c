/* A C host linked against a compiled model.so (one float32 input, one float32 output).
 *
 *   host_c INPUT.f32      reads the input as raw little-endian float32 values, runs the
 *                         model and prints each output value on its own line.
 *
 * Build (see docs/deploying.md):
 *   gcc -std=c99 host.c $(pkg-config --cflags --libs kiln) model.so -Wl,-rpath,'$ORIGIN' -o host_c
 */
#include <kiln/model.h>

#include <stdio.h>
#include <stdlib.h>

static int check(int status, const char *what) {
  if (status != KILN_OK)
    fprintf(stderr, "host_c: %s failed (status %d): %s\n", what, status, kiln_last_error());
  return status;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s INPUT.f32\n", argv[0]);
    return 2;
  }
  kiln_container_options options;
  kiln_container_options_init(&options);
  options.num_runners = 1;
  kiln_container *model = NULL;
  if (check(kiln_container_create(&options, &model), "kiln_container_create")) return 1;

  kiln_tensor_info in_info = {sizeof in_info}, out_info = {sizeof out_info};
  if (check(kiln_input_info(model, 0, &in_info), "kiln_input_info") ||
      check(kiln_output_info(model, 0, &out_info), "kiln_output_info"))
    return 1;
  int64_t in_count = 1, out_count = 1;
  for (int32_t d = 0; d < in_info.ndim; ++d)
    in_count *= in_info.dims[d]; /* a static-shape model: every dim is known */
  for (int32_t d = 0; d < out_info.ndim; ++d)
    out_count *= out_info.dims[d];

  float *x = malloc(sizeof(float) * (size_t)in_count);
  float *y = malloc(sizeof(float) * (size_t)out_count);
  FILE *f = fopen(argv[1], "rb");
  if (!x || !y || !f || fread(x, sizeof(float), (size_t)in_count, f) != (size_t)in_count) {
    fprintf(stderr, "host_c: cannot read %lld float32 values from %s\n", (long long)in_count,
            argv[1]);
    return 1;
  }
  fclose(f);

  DLTensor input = {x, {kDLCPU, 0}, in_info.ndim, in_info.dtype, (int64_t *)in_info.dims, NULL, 0};
  DLTensor output = {y, {kDLCPU, 0}, out_info.ndim, out_info.dtype, (int64_t *)out_info.dims, NULL,
                     0};
  if (check(kiln_run(model, &input, 1, &output, 1), "kiln_run")) return 1;
  for (int64_t i = 0; i < out_count; ++i)
    printf("%.9g\n", y[i]);
  kiln_container_destroy(model);
  free(x);
  free(y);
  return 0;
}
