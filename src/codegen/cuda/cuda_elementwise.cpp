// The elementwise kernels of the CUDA backend (CudaStrategy::Elementwise): grid-stride loops,
// scatters, four-wide vectorized lanes and permutes through shared-memory tiles.
#include "codegen/cuda/cuda_group_printer.h"

#include <fmt/format.h>

namespace kiln::codegen {

void GroupPrinter::printScatter(const loop::Kernel &k) {
  std::map<const sym::Node *, std::string> loc;
  os_ << "  "
      << gridStride("lin", globalThread(), idx(loop::product(ctx_, k.scatterShape, 0)),
                    allThreads());
  decompose("    ", "lin", k.scatterShape, 0, k.vars.size(), "i", k.vars, loc);
  ValuePrinter vp(os_, "    ", model_, loc);
  std::string v = vp.emit(k.body), at = vp.emit(k.scatterIndex);
  os_ << "    if (" << at << " >= 0) ";
  using C = loop::Kernel::Combine;
  if (k.scatterOp == C::None) {
    os_ << k.out->name << "[" << at << "] = " << storeExpr(k.out, v) << ";\n  }\n";
    return;
  }
  int op = k.scatterOp == C::Add ? 1 : k.scatterOp == C::Mul ? 2 : k.scatterOp == C::Max ? 3 : 4;
  os_ << fmt::format("kiln_atomic_combine(&{}[{}], ({}){}, {});\n  }}\n", k.out->name, at,
                     dtypeCType(k.out->dtype), v, op);
}

const char *GroupPrinter::vectorType(DType t) {
  return t == DType::Float32 ? "float4" : t == DType::UInt32 ? "uint4" : "int4";
}

void GroupPrinter::printVectorized(const loop::Kernel &k) {
  const int width = g_.cuda.vector;
  std::map<const sym::Node *, std::string> loc;
  sym::Expr total = loop::product(ctx_, k.out->shape, 0);
  os_ << "  "
      << gridStride("vl", globalThread(), idx(sym::floorDiv(total, ctx_.constant(width))),
                    allThreads());
  os_ << "    const " << idx_ << " lin = vl * " << width << ";\n";
  decompose("    ", "lin", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
  ValuePrinter at(os_, "    ", model_, loc);
  std::string outAt = outIndex(k, loc);
  std::vector<std::string> loadAt;
  os_ << "    const bool aligned = ((reinterpret_cast<uintptr_t>(&" << k.out->name << "[" << outAt
      << "])";
  for (const loop::VNode *l : g_.cuda.vectorLoads) {
    loadAt.push_back(at.symCpp(l->sym));
    os_ << " | reinterpret_cast<uintptr_t>(&" << l->buf->name << "[" << loadAt.back() << "])";
  }
  os_ << ") & 15) == 0;\n";
  std::string value = computeType(k.body->dtype);
  os_ << "    " << value << " r[" << width << "];\n";
  const sym::Node *inner = k.vars.back().node();
  std::string innerName = loc[inner];
  auto lanes = [&](bool vectorLoads) {
    for (int lane = 0; lane < width; ++lane) {
      std::map<const sym::Node *, std::string> laneLoc = loc;
      laneLoc[inner] = fmt::format("({} + {})", innerName, lane);
      os_ << "      {\n";
      ValuePrinter vp(os_, "        ", model_, laneLoc);
      for (size_t j = 0; vectorLoads && j < g_.cuda.vectorLoads.size(); ++j)
        vp.bind(g_.cuda.vectorLoads[j], fmt::format("v{}.{}", j, "xyzw"[lane]));
      std::string v = vp.emit(k.body); // emits its lines first
      os_ << "        r[" << lane << "] = " << v << ";\n      }\n";
    }
  };
  os_ << "    if (aligned) {\n";
  for (size_t j = 0; j < g_.cuda.vectorLoads.size(); ++j) {
    const loop::Buffer *b = g_.cuda.vectorLoads[j]->buf;
    os_ << fmt::format("      const {0} v{1} = *reinterpret_cast<const {0} *>(&{2}[{3}]);\n",
                       vectorType(b->dtype), j, b->name, loadAt[j]);
  }
  lanes(true);
  os_ << fmt::format("      *reinterpret_cast<{0} *>(&{1}[{2}]) = make_{0}(",
                     vectorType(k.out->dtype), k.out->name, outAt);
  for (int lane = 0; lane < width; ++lane)
    os_ << (lane ? ", " : "") << storeExpr(k.out, fmt::format("r[{}]", lane));
  os_ << ");\n    } else {\n";
  lanes(false);
  for (int lane = 0; lane < width; ++lane)
    os_ << "      " << k.out->name << "[" << outAt << " + " << lane
        << "] = " << storeExpr(k.out, fmt::format("r[{}]", lane)) << ";\n";
  os_ << "    }\n  }\n";
}

void GroupPrinter::printTiled(const loop::Kernel &k) {
  const size_t a = static_cast<size_t>(g_.cuda.tileDim), inner = k.vars.size() - 1;
  std::vector<sym::Expr> otherSizes, otherVars;
  for (size_t d = 0; d < inner; ++d)
    if (d != a) {
      otherSizes.push_back(k.out->shape[d]);
      otherVars.push_back(k.vars[d]);
    }
  sym::Expr tile = ctx_.constant(32);
  auto tiles = [&](sym::Expr n) { return sym::floorDiv(n + ctx_.constant(31), tile); };
  sym::Expr tilesA = tiles(k.out->shape[a]), tilesI = tiles(k.out->shape[inner]);
  std::string extentA = idx(k.out->shape[a]), extentI = idx(k.out->shape[inner]);
  const auto &loads = g_.cuda.tileLoads;
  for (size_t j = 0; j < loads.size(); ++j)
    os_ << "  __shared__ " << computeType(loads[j]->dtype) << " tile" << j << "[32][33];\n";
  os_ << "  "
      << gridStride("t", "blockIdx.x", idx(loop::product(ctx_, otherSizes) * tilesA * tilesI),
                    "gridDim.x");
  os_ << "    const " << idx_ << " ti = t % " << idx(tilesI) << ", ta = (t / " << idx(tilesI)
      << ") % " << idx(tilesA) << ";\n";
  std::map<const sym::Node *, std::string> loc;
  decompose("    ", fmt::format("t / {} / {}", idx(tilesI), idx(tilesA)), otherSizes, 0,
            otherSizes.size(), "o", otherVars, loc);
  loc[k.vars[a].node()] = "ia";
  loc[k.vars[inner].node()] = "ii";
  auto phase = [&](const char *alongA, const char *alongI) {
    os_ << "    for (int j = threadIdx.y; j < 32; j += blockDim.y) {\n";
    os_ << "      const " << idx_ << " ia = ta * 32 + " << alongA << ", ii = ti * 32 + " << alongI
        << ";\n";
    os_ << "      if (ia < " << extentA << " && ii < " << extentI << ") {\n";
  };
  phase("threadIdx.x", "j");
  {
    ValuePrinter vp(os_, "        ", model_, loc);
    for (size_t j = 0; j < loads.size(); ++j) {
      std::string ref = fmt::format("{}[{}]", loads[j]->buf->name, vp.symCpp(loads[j]->sym));
      if (loads[j]->buf->dtype == DType::Float16) ref = "kiln_h2f(" + ref + ")";
      if (loads[j]->buf->dtype == DType::BFloat16) ref = "kiln_bf2f(" + ref + ")";
      os_ << "        tile" << j << "[j][threadIdx.x] = " << ref << ";\n";
    }
  }
  os_ << "      }\n    }\n    __syncthreads();\n";
  phase("j", "threadIdx.x");
  {
    ValuePrinter vp(os_, "        ", model_, loc);
    for (size_t j = 0; j < loads.size(); ++j)
      vp.bind(loads[j], fmt::format("tile{}[threadIdx.x][j]", j));
    std::string v = vp.emit(k.body);
    store("        ", k, outIndex(k, loc), v);
  }
  os_ << "      }\n    }\n    __syncthreads();\n  }\n";
}

void GroupPrinter::printElementwise(const loop::Kernel &k) {
  if (k.scatterIndex) {
    printScatter(k);
    return;
  }
  if (g_.cuda.vector > 1) {
    printVectorized(k);
    return;
  }
  if (g_.cuda.tileDim >= 0) {
    printTiled(k);
    return;
  }
  std::map<const sym::Node *, std::string> loc;
  os_ << "  "
      << gridStride("lin", globalThread(), idx(loop::product(ctx_, k.out->shape, 0)), allThreads());
  decompose("    ", "lin", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
  ValuePrinter vp(os_, "    ", model_, loc);
  std::string v = vp.emit(k.body);
  store("    ", k, outIndex(k, loc), v);
  os_ << "  }\n";
}

} // namespace kiln::codegen
