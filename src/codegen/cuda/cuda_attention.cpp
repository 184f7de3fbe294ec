// Fused scaled-dot-product attention as one CUDA kernel, in one pass over the keys (online
// softmax): a block takes WARPS x ROWS query rows of one (batch, head) and walks the keys in
// tiles of 32 held in shared memory with the matching V rows. Lane j scores key j of the tile
// for each of its warp's rows; the tile's maximum and sum come from warp shuffles, and each
// lane keeps the accumulators of output features lane, lane + 32, ... in registers, rescaled
// when the running maximum grows. Scores, mask and softmax stay in float32 as in the CPU shim;
// a row whose scores are all -inf gives zeros. Nothing is materialised in global memory
// between Q.K^T and P.V.
#include "codegen/cuda/cuda_attention.h"

#include "support/error.h"

#include <cmath>

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

constexpr const char *kBody = R"(  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qTiles = (SQ + QT - 1) / QT, tiles = B * H * qTiles;
  __shared__ float ks[KT][D + 1];
  __shared__ float vs[KT][DV + 1];
  __shared__ float qs[QT][D + 1];
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t bh = tile / qTiles, q0 = (tile % qTiles) * QT;
    const float *qh = @Q@ + bh * SQ * D, *kh = @K@ + bh * SKV * D, *vh = @V@ + bh * SKV * DV;
    (void)H;
    __syncthreads(); // the previous tile's rows are no longer read
    for (int e = threadIdx.x; e < QT * D; e += blockDim.x) {
      const int r = e / D, d = e % D;
      qs[r][d] = q0 + r < SQ ? qh[(q0 + r) * D + d] : 0.f;
    }
    float m[ROWS], l[ROWS], acc[ROWS][DVT];
    for (int r = 0; r < ROWS; ++r) {
      m[r] = -INFINITY;
      l[r] = 0.f;
      for (int t = 0; t < DVT; ++t)
        acc[r][t] = 0.f;
    }
    for (int64_t j0 = 0; j0 < SKV; j0 += KT) {
      __syncthreads(); // every warp is done with the previous key tile
      for (int e = threadIdx.x; e < KT * D; e += blockDim.x) {
        const int j = e / D, d = e % D;
        ks[j][d] = j0 + j < SKV ? kh[(j0 + j) * D + d] : 0.f;
      }
      for (int e = threadIdx.x; e < KT * DV; e += blockDim.x) {
        const int j = e / DV, d = e % DV;
        vs[j][d] = j0 + j < SKV ? vh[(j0 + j) * DV + d] : 0.f;
      }
      __syncthreads();
      const bool valid = j0 + lane < SKV;
      for (int r = 0; r < ROWS; ++r) {
        const int qr = warp * ROWS + r;
        const int64_t row = q0 + qr;
        (void)row; // read by the mask only
        float s = 0.f;
        for (int d = 0; d < D; ++d)
          s = fmaf(qs[qr][d], ks[lane][d], s);
        s *= @SCALE@;
@MASK@        if (!valid) s = -INFINITY;
        float tmax = s;
        for (int o = 16; o > 0; o >>= 1)
          tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
        const float mNew = fmaxf(m[r], tmax);
        const float p = mNew == -INFINITY ? 0.f : expf(s - mNew);
        const float corr = mNew == -INFINITY ? 1.f : expf(m[r] - mNew);
        float psum = p;
        for (int o = 16; o > 0; o >>= 1)
          psum += __shfl_xor_sync(0xffffffffu, psum, o);
        l[r] = l[r] * corr + psum;
        m[r] = mNew;
        for (int t = 0; t < DVT; ++t)
          acc[r][t] *= corr;
        for (int j = 0; j < KT; ++j) {
          const float pj = __shfl_sync(0xffffffffu, p, j);
          for (int t = 0; t < DVT; ++t)
            if (DV % 32 == 0 || lane + 32 * t < DV)
              acc[r][t] = fmaf(pj, vs[j][lane + 32 * t], acc[r][t]);
        }
      }
    }
    for (int r = 0; r < ROWS; ++r) {
      const int64_t row = q0 + warp * ROWS + r;
      if (row >= SQ) continue;
      for (int t = 0; t < DVT; ++t)
        if (DV % 32 == 0 || lane + 32 * t < DV)
          @OUT@[(bh * SQ + row) * DV + lane + 32 * t] = l[r] > 0.f ? acc[r][t] / l[r] : 0.f;
    }
  }
)";

constexpr const char *kMaskAdd = "        if (valid && row < SQ)\n"
                                 "          s += @M@[(bh / H) * @MSB@ + (bh % H) * @MSH@ + row * "
                                 "@MSI@ + (j0 + lane) * @MSJ@];\n";

void fillPlaceholder(std::string &s, const std::string &from, const std::string &to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

} // namespace

LaunchSpec printCudaAttention(std::ostringstream &os, const loop::KernelGroup &g,
                              const SymbolNamer &modelSymbol, sym::Context &ctx) {
  const loop::Kernel &k = *g.kernels.front();
  const loop::AttentionCall &a = k.attn;
  const loop::CudaSchedule &s = g.cuda;
  KILN_ASSERT(s.keyTile == 32 && s.block % 32 == 0, "attention: key tile must be a warp");
  int64_t d = a.dims[4]->value, dv = a.dims[5]->value; // static: checked by legalisation
  int qt = s.block / 32 * s.rowsPerWarp;
  auto cpp = [&](sym::Expr e) { return sym::toCpp(e, modelSymbol); };
  double scale = a.scale ? *a.scale : 1.0 / std::sqrt(static_cast<double>(d));
  os << fmt::format("  constexpr int D = {}, DV = {}, DVT = (DV + 31) / 32, KT = {}, ROWS = {}, "
                    "QT = {};\n",
                    d, dv, s.keyTile, s.rowsPerWarp, qt);
  os << fmt::format("  const int64_t B = {}, H = {}, SQ = {}, SKV = {};\n", cpp(a.dims[0]),
                    cpp(a.dims[1]), cpp(a.dims[2]), cpp(a.dims[3]));
  std::string body = kBody;
  std::string mask;
  if (a.mask) {
    mask = kMaskAdd;
    fillPlaceholder(mask, "@M@", a.mask->name);
    const char *names[] = {"@MSB@", "@MSH@", "@MSI@", "@MSJ@"};
    for (int i = 0; i < 4; ++i)
      fillPlaceholder(mask, names[i], "(" + cpp(a.maskStrides[i]) + ")");
  }
  fillPlaceholder(body, "@MASK@", mask);
  fillPlaceholder(body, "@SCALE@", fmt::format("(float)({:.17g})", scale));
  fillPlaceholder(body, "@Q@", a.q->name);
  fillPlaceholder(body, "@K@", a.k->name);
  fillPlaceholder(body, "@V@", a.v->name);
  fillPlaceholder(body, "@OUT@", k.out->name);
  os << body;
  LaunchSpec spec;
  spec.block[0] = s.block;
  sym::Expr tiles =
      a.dims[0] * a.dims[1] * sym::floorDiv(a.dims[2] + ctx.constant(qt - 1), ctx.constant(qt));
  spec.grid = {sym::min(tiles, ctx.constant(s.maxBlocks)), ctx.constant(1), ctx.constant(1)};
  return spec;
}

} // namespace kiln::codegen
