/* AOT test of the element types numpy lacks, through the C API only (types_test <so>):
 * float8 codes (DLPack 1.1 codes 10 = e4m3fn, 12 = e5m2, 8 bits) and int4 (kDLInt, 4 bits,
 * ONE ELEMENT PER BYTE, sign-extended) as inputs and outputs; Cast's rounding (nearest even)
 * and saturation; a float32 → bfloat16 → float32 round trip that must round; a dtype that
 * differs from the model's is refused; BitCast of float16 to int16 and on to bfloat16 keeps
 * the bits. Expected values are worked out by hand from the
 * formats (see gen_types.py). */
#include "aot_host.h"

#define F8E4M3FN 10
#define F8E5M2 12

static void check_info(kiln_container *c, int input, int32_t index, const char *name, uint8_t code,
                       uint8_t bits) {
  kiln_tensor_info info;
  int st;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  st = input ? api.input_info(c, index, &info) : api.output_info(c, index, &info);
  CHECK(st == KILN_OK && strcmp(info.name, name) == 0, "info %d: %d %s", index, st,
        api.last_error());
  CHECK(info.dtype.code == code && info.dtype.bits == bits && info.dtype.lanes == 1,
        "'%s' dtype (code %u, bits %u), want (%u, %u)", name, info.dtype.code, info.dtype.bits,
        code, bits);
}

static int test_types(void) {
  kiln_container *c = make_container();
  /* bf16 ties: 1 + 2^-8 -> 1 (even), 1 + 3 * 2^-8 -> 1 + 2^-6; 464 is e4m3fn's tie between
   * 448 (even) and 480; 1e6 overflows both float8s; -9.5 ties in both; 2^-9 is e4m3fn's
   * smallest subnormal and an e5m2 normal. */
  float x[8] = {1.00390625f, 1.01171875f, 464.0f, 1e6f, -9.5f, NAN, -INFINITY, 0.001953125f};
  const float want_rt[8] = {1.0f,  1.015625f, 464.0f,    999424.0f,
                            -9.5f, NAN,       -INFINITY, 0.001953125f};
  const uint8_t want_q8[8] = {0x38, 0x38, 0x7E, 0x7E, 0xD2, 0x7F, 0xFE, 0x01};
  const uint8_t want_q8ns[8] = {0x3C, 0x3C, 0x5F, 0x7C, 0xC9, 0x7E, 0xFC, 0x18};
  const int8_t want_i4[8] = {1, 1, 0, 0, 7, 0, 0, 0}; /* NaN/inf (5, 6): not checked */
  uint8_t e[4] = {0x3C, 0x7C, 0x01, 0xFF};            /* 1, inf, 2^-16, NaN */
  int8_t u[5] = {-8, 7, -1, 0, 3};
  uint16_t hx[3] = {0x3C00, 0xC000, 0x7BFF}, hbf[3]; /* float16 1, -2, 65504 */
  int16_t hb[3];
  float rt[8], ef[4], uf[5];
  uint8_t q8[8], q8ns[8];
  int8_t i4[8];
  int64_t s8[1] = {8}, s4[1] = {4}, s5[1] = {5}, s3[1] = {3};
  DLTensor in[4], out[8];
  int i, st;
  check_info(c, 1, 1, "e", F8E5M2, 8);
  check_info(c, 1, 2, "u", kDLInt, 4);
  check_info(c, 0, 1, "q8", F8E4M3FN, 8);
  check_info(c, 0, 3, "i4", kDLInt, 4);
  in[0] = tensor(x, 1, s8, kDLFloat, 32);
  in[1] = tensor(e, 1, s4, F8E5M2, 8);
  in[2] = tensor(u, 1, s5, kDLInt, 4);
  in[3] = tensor(hx, 1, s3, kDLFloat, 16);
  out[0] = tensor(rt, 1, s8, kDLFloat, 32);
  out[1] = tensor(q8, 1, s8, F8E4M3FN, 8);
  out[2] = tensor(q8ns, 1, s8, F8E5M2, 8);
  out[3] = tensor(i4, 1, s8, kDLInt, 4);
  out[4] = tensor(ef, 1, s4, kDLFloat, 32);
  out[5] = tensor(uf, 1, s5, kDLFloat, 32);
  out[6] = tensor(hb, 1, s3, kDLInt, 16);
  out[7] = tensor(hbf, 1, s3, kDLBfloat, 16);
  st = api.run(c, in, 4, out, 8);
  CHECK(st == KILN_OK, "run: %d %s", st, api.last_error());
  for (i = 0; i < 8 && st == KILN_OK; ++i) {
    CHECK(isnan(want_rt[i]) ? isnan(rt[i]) : rt[i] == want_rt[i], "rt[%d] = %.9g, want %.9g", i,
          rt[i], want_rt[i]);
    CHECK(q8[i] == want_q8[i], "q8[%d] = 0x%02X, want 0x%02X", i, q8[i], want_q8[i]);
    CHECK(q8ns[i] == want_q8ns[i], "q8ns[%d] = 0x%02X, want 0x%02X", i, q8ns[i], want_q8ns[i]);
    CHECK(i == 5 || i == 6 || i4[i] == want_i4[i], "i4[%d] = %d, want %d", i, i4[i], want_i4[i]);
  }
  if (st == KILN_OK) {
    CHECK(ef[0] == 1.0f && isinf(ef[1]) && ef[1] > 0 && ef[2] == ldexpf(1.0f, -16) && isnan(ef[3]),
          "ef = %g %g %g %g", ef[0], ef[1], ef[2], ef[3]);
    for (i = 0; i < 5; ++i)
      CHECK(uf[i] == (float)u[i], "uf[%d] = %g, want %d", i, uf[i], u[i]);
    for (i = 0; i < 3; ++i) {
      CHECK((uint16_t)hb[i] == hx[i], "hb[%d] = 0x%04X, want 0x%04X", i, (uint16_t)hb[i], hx[i]);
      CHECK(hbf[i] == hx[i], "hbf[%d] = 0x%04X, want 0x%04X", i, hbf[i], hx[i]);
    }
  }
  /* The same bytes declared uint8 are not a float8 tensor. */
  in[1] = tensor(e, 1, s4, kDLUInt, 8);
  st = api.run(c, in, 4, out, 8);
  CHECK(st == KILN_ERR_DTYPE_MISMATCH, "uint8 for a float8e5m2 input: status %d", st);
  CHECK(api.destroy(c) == KILN_OK, "destroy");
  return failures;
}

int main(int argc, char **argv) {
  int f;
  if (argc != 2) {
    fprintf(stderr, "usage: %s types.so\n", argv[0]);
    return 2;
  }
  load_api(argv[1]);
  f = test_types();
  if (f)
    fprintf(stderr, "%d check(s) failed\n", f);
  else
    printf("ok\n");
  return f ? 1 : 0;
}
