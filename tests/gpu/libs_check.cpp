// GPU check of kiln::rt::cuda::CudaLibraries (cuBLASLt matmul, cuDNN conv) against float64
// CPU references. Run on a machine with a GPU (libs_check.sh); prints a JSON report and
// exits non-zero if any case fails.
//
// Error measure: |got - ref| / (sum of |terms| that make up the element + 1e-30), i.e. the
// error relative to the magnitude the dot product was accumulated over. An fp32 dot product
// of length K has a worst-case bound of about K * 2^-24 on this measure and a typical one of
// sqrt(K) * 2^-24; with K <= 1152 here, 2e-5 admits any correct fp32 ordering and catches
// TF32 (2^-11) or wrong data. F16/BF16 are dominated by rounding inputs/outputs to 11/8
// significant bits: 2e-3 and 1.6e-2.
#include "cuda_libraries.h"
#include "libs_check_support.h"

#include <kiln/model.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using kiln::rt::cuda::CudaLibraries;
using kiln::rt::cuda::Workspace;

namespace {

CudaLibraries *libs;
cudaStream_t stream;
Workspace ws;

// ---- matmul ------------------------------------------------------------------------------

struct MM {
  std::string name;
  int64_t batch, m, n, k;
  int ta = 0, tb = 0;
  int64_t padA = 0, padB = 0, padC = 0; // extra leading-dimension elements
  bool bcastA = false, bcastB = false;
  int addend = 0;
  float alpha = 1.f, beta = 1.f;
  int post = KILN_POST_NONE;
  int type = KILN_ELEM_F32;
  int wantRc = 0;
  bool residual = false; // level 7: a full residual as cuBLASLt's C (beta 1)
};

void runMatmul(const MM &c) {
  kiln_cuda_matmul_params_v1 p{};
  kiln_matmul_params_v1 &m = p.mm;
  m.batch = c.batch, m.m = c.m, m.n = c.n, m.k = c.k;
  m.trans_a = c.ta, m.trans_b = c.tb;
  m.lda = (c.ta ? c.m : c.k) + c.padA;
  m.ldb = (c.tb ? c.k : c.n) + c.padB;
  m.ldc = c.n + c.padC;
  int64_t aRows = c.ta ? c.k : c.m, bRows = c.tb ? c.n : c.k;
  m.a_batch_stride = c.bcastA ? 0 : aRows * m.lda;
  m.b_batch_stride = c.bcastB ? 0 : bRows * m.ldb;
  m.c_batch_stride = c.m * m.ldc;
  m.alpha = c.alpha, m.beta = c.beta, m.post_op = c.post, m.addend_kind = c.addend;
  p.elem_type = c.type;
  int t = c.type;
  size_t aN = static_cast<size_t>((c.bcastA ? 1 : c.batch) * aRows * m.lda);
  size_t bN = static_cast<size_t>((c.bcastB ? 1 : c.batch) * bRows * m.ldb);
  size_t cN = static_cast<size_t>(c.batch * c.m * m.ldc);
  size_t addN = c.addend == 1 ? static_cast<size_t>(c.n) : c.addend == 2 ? cN : 0;
  size_t resN = c.residual ? cN : 0;
  auto A = randVec(aN), B = randVec(bN), Add = randVec(addN), Res = randVec(resN);
  Dev dA(aN * esz(t)), dB(bN * esz(t)), dC(cN * esz(t)), dAdd(addN * esz(t)), dRes(resN * esz(t));
  upload(dA, encode(A, t));
  upload(dB, encode(B, t));
  if (addN) upload(dAdd, encode(Add, t));
  if (resN) upload(dRes, encode(Res, t));
  char err[512] = "";
  int rc = 0;
  for (int rep = 0; rep < 2 && rc == 0; ++rep) { // the second call reuses the cached plan
    syncAll();
    fillNan(dC);
    syncAll();
    rc = libs->matmul(stream, ws, 1, dA.p, dB.p, addN ? dAdd.p : nullptr, resN ? dRes.p : nullptr,
                      dC.p, p, err, sizeof err);
  }
  syncAll();
  double maxErr = 0;
  if (rc == 0) {
    std::vector<uint8_t> raw(cN * esz(t));
    CK(cudaMemcpy(raw.data(), dC.p, raw.size(), cudaMemcpyDeviceToHost));
    auto C = decode(raw, t);
    for (int64_t bi = 0; bi < c.batch; ++bi)
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          double s = 0, mag = 0;
          for (int64_t kk = 0; kk < c.k; ++kk) {
            int64_t ai = bi * m.a_batch_stride + (c.ta ? kk * m.lda + i : i * m.lda + kk);
            int64_t bj = bi * m.b_batch_stride + (c.tb ? j * m.ldb + kk : kk * m.ldb + j);
            double prod =
                static_cast<double>(A[static_cast<size_t>(ai)]) * B[static_cast<size_t>(bj)];
            s += prod;
            mag += std::fabs(prod);
          }
          s *= c.alpha;
          mag *= std::fabs(c.alpha);
          double add = c.addend == 1 ? Add[static_cast<size_t>(j)]
                       : c.addend == 2
                           ? Add[static_cast<size_t>(bi * m.c_batch_stride + i * m.ldc + j)]
                           : 0.0;
          s += c.beta * add;
          mag += std::fabs(c.beta * add);
          if (c.residual) {
            double r = Res[static_cast<size_t>(bi * m.c_batch_stride + i * m.ldc + j)];
            s += r;
            mag += std::fabs(r);
          }
          if (c.post == KILN_POST_RELU) s = s > 0 ? s : 0;
          if (c.post == KILN_POST_GELU_TANH) // the derivative is <= 1.13: mag still bounds
            s = 0.5 * s * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (s + 0.044715 * s * s * s)));
          double got = C[static_cast<size_t>(bi * m.c_batch_stride + i * m.ldc + j)];
          double e = std::isfinite(got) ? std::fabs(got - s) / (mag + 1e-30) : INFINITY;
          if (!(e <= maxErr)) maxErr = e;
        }
  }
  report(c.name, "matmul", t, rc, c.wantRc, maxErr, err);
}

// ---- conv --------------------------------------------------------------------------------

struct CV {
  std::string name;
  int r;
  int64_t n, c, o, groups;
  int64_t sp[3], k[3];
  int64_t stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1}, pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
  bool bias = false, residual = false, inPlace = false;
  int post = KILN_POST_NONE;
  int type = KILN_ELEM_F32;
  int wantRc = 0;
};

void runConv(const CV &c) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = c.r;
  p.groups = c.groups;
  p.post_op = c.post;
  int64_t xd[5] = {c.n, c.c}, wd[5] = {c.o, c.c / c.groups}, yd[5] = {c.n, c.o};
  int64_t X[3] = {1, 1, 1}, K[3] = {1, 1, 1}, Y[3] = {1, 1, 1}, S[3] = {1, 1, 1}, D[3] = {1, 1, 1},
          P[3] = {0, 0, 0};
  for (int i = 0; i < c.r; ++i) {
    p.strides[i] = c.stride[i], p.dilations[i] = c.dil[i];
    p.pads_begin[i] = c.pb[i], p.pads_end[i] = c.pe[i];
    xd[2 + i] = c.sp[i], wd[2 + i] = c.k[i];
    yd[2 + i] = (c.sp[i] + c.pb[i] + c.pe[i] - c.dil[i] * (c.k[i] - 1) - 1) / c.stride[i] + 1;
    X[i] = c.sp[i], K[i] = c.k[i], Y[i] = yd[2 + i], S[i] = c.stride[i], D[i] = c.dil[i],
    P[i] = c.pb[i];
  }
  int t = c.type;
  int64_t cg = c.c / c.groups, og = c.o / c.groups;
  size_t xN = static_cast<size_t>(c.n * c.c * X[0] * X[1] * X[2]);
  size_t wN = static_cast<size_t>(c.o * cg * K[0] * K[1] * K[2]);
  size_t yN = static_cast<size_t>(c.n * c.o * Y[0] * Y[1] * Y[2]);
  auto x = randVec(xN), w = randVec(wN), b = randVec(static_cast<size_t>(c.o)), res = randVec(yN);
  Dev dx(xN * esz(t)), dw(wN * esz(t)), db(static_cast<size_t>(c.o) * esz(t)), dy(yN * esz(t)),
      dres(yN * esz(t));
  upload(dx, encode(x, t));
  upload(dw, encode(w, t));
  upload(db, encode(b, t));
  auto resBytes = encode(res, t);
  char err[512] = "";
  int rc = 0;
  for (int rep = 0; rep < 2 && rc == 0; ++rep) {
    syncAll();
    if (c.inPlace)
      upload(dy, resBytes);
    else
      fillNan(dy);
    if (c.residual && !c.inPlace) upload(dres, resBytes);
    const void *resPtr = c.inPlace ? dy.p : c.residual ? dres.p : nullptr;
    syncAll();
    rc = libs->conv(stream, ws, 2, dx.p, xd, dw.p, wd, c.bias ? db.p : nullptr, resPtr, dy.p, yd, p,
                    t, 0, err, sizeof err);
  }
  syncAll();
  double maxErr = 0;
  if (rc == 0) {
    std::vector<uint8_t> raw(yN * esz(t));
    CK(cudaMemcpy(raw.data(), dy.p, raw.size(), cudaMemcpyDeviceToHost));
    auto y = decode(raw, t);
    size_t yi = 0;
    for (int64_t ni = 0; ni < c.n; ++ni)
      for (int64_t oi = 0; oi < c.o; ++oi)
        for (int64_t y0 = 0; y0 < Y[0]; ++y0)
          for (int64_t y1 = 0; y1 < Y[1]; ++y1)
            for (int64_t y2 = 0; y2 < Y[2]; ++y2, ++yi) {
              double s = 0, mag = 0;
              int64_t g = oi / og;
              for (int64_t ci = 0; ci < cg; ++ci)
                for (int64_t k0 = 0; k0 < K[0]; ++k0)
                  for (int64_t k1 = 0; k1 < K[1]; ++k1)
                    for (int64_t k2 = 0; k2 < K[2]; ++k2) {
                      int64_t i0 = y0 * S[0] - P[0] + k0 * D[0], i1 = y1 * S[1] - P[1] + k1 * D[1],
                              i2 = y2 * S[2] - P[2] + k2 * D[2];
                      if (i0 < 0 || i0 >= X[0] || i1 < 0 || i1 >= X[1] || i2 < 0 || i2 >= X[2])
                        continue;
                      size_t xi = static_cast<size_t>(
                          (((ni * c.c + g * cg + ci) * X[0] + i0) * X[1] + i1) * X[2] + i2);
                      size_t wi = static_cast<size_t>(
                          (((oi * cg + ci) * K[0] + k0) * K[1] + k1) * K[2] + k2);
                      double prod = static_cast<double>(x[xi]) * w[wi];
                      s += prod;
                      mag += std::fabs(prod);
                    }
              if (c.bias)
                s += b[static_cast<size_t>(oi)], mag += std::fabs(b[static_cast<size_t>(oi)]);
              if (c.residual) s += res[yi], mag += std::fabs(res[yi]);
              if (c.post == KILN_POST_RELU) s = s > 0 ? s : 0;
              double e = std::isfinite(y[yi]) ? std::fabs(y[yi] - s) / (mag + 1e-30) : INFINITY;
              if (!(e <= maxErr)) maxErr = e;
            }
  }
  report(c.name, "conv", t, rc, c.wantRc, maxErr, err);
}

} // namespace

int main() {
  int dev = 0;
  CK(cudaSetDevice(dev));
  CK(cudaFree(nullptr)); // create the primary context before the libraries
  CK(cudaStreamCreate(&stream));
  Dev wsMem(CudaLibraries::kWorkspaceBytes);
  ws = {wsMem.p, wsMem.bytes};
  char err[512] = "";
  auto created = CudaLibraries::create(err, sizeof err);
  if (!created) {
    std::printf("{\"error\": \"create: %s\"}\n", err);
    return 2;
  }
  libs = created.get();
  const int F32 = KILN_ELEM_F32, F16 = KILN_ELEM_F16, BF16 = KILN_ELEM_BF16, RELU = KILN_POST_RELU,
            GELU_TANH = KILN_POST_GELU_TANH;

  std::vector<MM> mms = {
      {"plain 64x48x32", 1, 64, 48, 32},
      {"trans_a", 1, 33, 40, 17, 1, 0},
      {"trans_b", 1, 33, 40, 17, 0, 1},
      {"trans_a+b", 1, 65, 31, 129, 1, 1},
      {"odd 7x5x3", 1, 7, 5, 3},
      {"padded ld", 1, 20, 24, 36, 0, 0, 3, 5, 7},
      {"batch 3", 3, 16, 24, 40},
      {"batch 4 bcast A", 4, 16, 24, 40, 0, 0, 0, 0, 0, true, false},
      {"batch 4 bcast B", 4, 16, 24, 40, 0, 1, 0, 0, 0, false, true},
      {"batch 2 bcast B odd ld", 2, 9, 13, 11, 1, 0, 1, 2, 3, false, true},
      {"bias", 1, 64, 96, 128, 0, 0, 0, 0, 0, false, false, 1, 1.f, 1.f},
      {"bias relu", 2, 64, 96, 128, 0, 1, 0, 0, 0, false, true, 1, 1.f, 1.f, RELU},
      {"bias beta 0.5 relu", 1, 50, 70, 90, 0, 0, 0, 0, 0, false, false, 1, 1.f, 0.5f, RELU},
      {"relu no addend", 1, 50, 70, 90, 0, 0, 0, 0, 0, false, false, 0, 1.f, 1.f, RELU},
      {"full addend a1.5 b0.7", 2, 30, 40, 50, 0, 0, 0, 0, 0, false, false, 2, 1.5f, 0.7f},
      {"full addend relu", 1, 30, 40, 50, 1, 1, 0, 0, 2, false, false, 2, 1.f, 1.f, RELU},
      {"large 512x1024x1152", 1, 512, 1024, 1152},
      {"f16 plain", 1, 64, 48, 32, 0, 0, 0, 0, 0, false, false, 0, 1.f, 1.f, 0, F16},
      {"f16 bias relu batch", 3, 64, 64, 64, 0, 1, 0, 0, 0, false, false, 1, 1.f, 1.f, RELU, F16},
      {"f16 full addend", 1, 40, 24, 72, 1, 0, 0, 0, 0, false, false, 2, 1.f, 0.5f, 0, F16},
      {"bf16 plain", 1, 64, 48, 32, 0, 0, 0, 0, 0, false, false, 0, 1.f, 1.f, 0, BF16},
      {"bf16 bias", 2, 32, 48, 64, 0, 0, 0, 0, 0, false, false, 1, 1.f, 1.f, 0, BF16},
      {"clip refused", 1, 8, 8, 8, 0, 0, 0, 0, 0, false, false, 0, 1.f, 1.f, KILN_POST_CLIP, F32,
       KILN_ERR_UNSUPPORTED},
      // Level 7 (kiln_shim_cuda_matmul_v2): GELU_TANH as the GELU(_BIAS) epilogue, residuals.
      {"bias gelu_tanh", 1, 128, 256, 128, 0, 1, 0, 0, 0, false, false, 1, 1.f, 1.f, GELU_TANH},
      {"gelu_tanh no addend", 2, 40, 72, 64, 0, 0, 0, 0, 0, false, true, 0, 1.f, 1.f, GELU_TANH},
      {"bias residual", 1, 128, 128, 256, 0, 1, 0, 0, 0, false, false, 1, 1.f, 1.f, 0, F32, 0,
       true},
      {"residual batch 3 bcast B", 3, 17, 40, 24, 0, 0, 0, 0, 0, false, true, 0, 1.f, 1.f, 0, F32,
       0, true},
      {"bias beta 0.5 residual gelu_tanh", 1, 50, 70, 90, 0, 0, 0, 0, 0, false, false, 1, 1.f, 0.5f,
       GELU_TANH, F32, 0, true},
      {"f16 bias gelu_tanh residual", 1, 64, 64, 64, 0, 1, 0, 0, 0, false, false, 1, 1.f, 1.f,
       GELU_TANH, F16, 0, true},
      {"gelu_erf refused", 1, 8, 8, 8, 0, 0, 0, 0, 0, false, false, 0, 1.f, 1.f, KILN_POST_GELU_ERF,
       F32, KILN_ERR_UNSUPPORTED},
      {"residual with full addend refused", 1, 8, 8, 8, 0, 0, 0, 0, 0, false, false, 2, 1.f, 1.f, 0,
       F32, KILN_ERR_INVALID_ARGUMENT, true},
  };
  for (const MM &c : mms)
    runMatmul(c);

  auto cv = [](std::string name, int r, int64_t n, int64_t ch, int64_t o, int64_t g,
               std::initializer_list<int64_t> sp, std::initializer_list<int64_t> k) {
    CV c{};
    c.name = std::move(name), c.r = r, c.n = n, c.c = ch, c.o = o, c.groups = g;
    int i = 0;
    for (int64_t v : sp)
      c.sp[i++] = v;
    i = 0;
    for (int64_t v : k)
      c.k[i++] = v;
    return c;
  };
  auto pads = [](CV c, int64_t b, int64_t e) {
    for (int i = 0; i < c.r; ++i)
      c.pb[i] = b, c.pe[i] = e;
    return c;
  };
  std::vector<CV> convs;
  {
    CV c = pads(cv("2d 3x3 bias relu", 2, 2, 3, 8, 1, {16, 16}, {3, 3}), 1, 1);
    c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d plain", 2, 1, 8, 16, 1, {12, 10}, {3, 3}), 0, 0);
    convs.push_back(c);
    c = pads(cv("2d stride2 dil2", 2, 2, 4, 6, 1, {17, 19}, {3, 3}), 2, 2);
    c.stride[0] = c.stride[1] = 2, c.dil[0] = c.dil[1] = 2, c.bias = true;
    convs.push_back(c);
    c = pads(cv("2d groups 2", 2, 1, 8, 12, 2, {9, 9}, {3, 3}), 1, 1);
    c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d depthwise", 2, 2, 16, 16, 16, {14, 14}, {3, 3}), 1, 1);
    c.stride[0] = c.stride[1] = 2, c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d 1x1 bias residual relu", 2, 2, 32, 64, 1, {7, 7}, {1, 1}), 0, 0);
    c.bias = true, c.residual = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d residual no bias", 2, 1, 8, 8, 1, {10, 10}, {3, 3}), 1, 1);
    c.residual = true;
    convs.push_back(c);
    c = pads(cv("2d residual in place bias relu", 2, 1, 8, 8, 1, {10, 10}, {3, 3}), 1, 1);
    c.residual = c.inPlace = true, c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d residual in place", 2, 1, 8, 8, 1, {10, 10}, {3, 3}), 1, 1);
    c.residual = c.inPlace = true;
    convs.push_back(c);
    c = pads(cv("2d bias no relu", 2, 1, 8, 8, 1, {10, 10}, {3, 3}), 1, 1);
    c.bias = true;
    convs.push_back(c);
    c = pads(cv("2d relu no bias", 2, 1, 8, 8, 1, {10, 10}, {3, 3}), 1, 1);
    c.post = RELU;
    convs.push_back(c);
    c = pads(cv("2d asym pads stride2", 2, 1, 4, 8, 1, {16, 16}, {3, 3}), 0, 1);
    c.stride[0] = c.stride[1] = 2, c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = cv("2d asym pads mixed", 2, 2, 3, 5, 1, {11, 12}, {4, 2});
    c.pb[0] = 1, c.pe[0] = 2, c.pb[1] = 0, c.pe[1] = 1, c.residual = true;
    convs.push_back(c);
    c = pads(cv("1d k5 s2", 1, 2, 4, 6, 1, {33}, {5}), 2, 2);
    c.stride[0] = 2, c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("1d groups dil", 1, 1, 6, 6, 3, {40}, {3}), 2, 2);
    c.dil[0] = 2;
    convs.push_back(c);
    c = pads(cv("3d k3 bias", 3, 1, 2, 4, 1, {6, 7, 8}, {3, 3, 3}), 1, 1);
    c.bias = true;
    convs.push_back(c);
    c = pads(cv("3d stride relu residual", 3, 2, 4, 4, 2, {5, 6, 7}, {3, 1, 3}), 1, 1);
    c.stride[0] = 2, c.post = RELU, c.residual = true, c.bias = true;
    convs.push_back(c);
    c = pads(cv("2d 3x3 64ch", 2, 1, 64, 64, 1, {28, 28}, {3, 3}), 1, 1);
    c.bias = true, c.post = RELU;
    convs.push_back(c);
    c = pads(cv("f16 2d bias relu", 2, 2, 16, 32, 1, {14, 14}, {3, 3}), 1, 1);
    c.bias = true, c.post = RELU, c.type = F16;
    convs.push_back(c);
    c = pads(cv("f16 2d residual", 2, 1, 8, 16, 1, {9, 9}, {3, 3}), 1, 1);
    c.residual = true, c.bias = true, c.type = F16;
    convs.push_back(c);
    c = pads(cv("bf16 2d plain", 2, 1, 16, 16, 1, {10, 10}, {3, 3}), 1, 1);
    c.type = BF16;
    convs.push_back(c);
    c = pads(cv("clip refused", 2, 1, 4, 4, 1, {8, 8}, {3, 3}), 1, 1);
    c.post = KILN_POST_CLIP, c.wantRc = KILN_ERR_UNSUPPORTED;
    convs.push_back(c);
  }
  for (const CV &c : convs)
    runConv(c);

  std::printf("{\n  \"cases\": [%s\n  ],\n  \"total\": %d,\n  \"failed\": %d\n}\n", json.c_str(),
              cases, failures);
  created.reset();
  cudaStreamDestroy(stream);
  return failures ? 1 : 0;
}
