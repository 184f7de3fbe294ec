// The CUDA kernel backend: each fused group becomes one `extern "C" __global__` function
// launched by the wrapper through cuLaunchKernel. The thread mapping comes from the group's
// CudaSchedule (sched/device_schedule.cpp): elementwise grid-stride loops, a thread or a
// block per reduction output (warp shuffles, then one shared-memory step), or a block per
// outer point for fused softmax/layer-norm groups. All kernels go into one fatbin.
#include "codegen/backend.h"
#include "codegen/cuda/cuda_attention.h"

#include "sched/target.h"
#include "support/error.h"

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

using loop::CudaStrategy;

class GroupPrinter {
public:
  GroupPrinter(std::ostringstream &os, const loop::KernelGroup &g, const SymbolNamer &model,
               sym::Context &ctx)
      : os_(os), g_(g), model_(model), ctx_(ctx), idx_(g.cuda.index32 ? "int32_t" : "int64_t") {}

  LaunchSpec print() {
    LaunchSpec spec;
    spec.block[0] = g_.cuda.block;
    const loop::Kernel &k = *g_.kernels.front();
    switch (g_.cuda.strategy) {
    case CudaStrategy::Elementwise:
      printElementwise(k);
      if (g_.cuda.tileDim >= 0) {
        spec.block[0] = 32;
        spec.block[1] = g_.cuda.block / 32;
        spec.grid = {capBlocks(tiledBlocks(k))};
        break;
      }
      spec.grid = {blocksFor(
          sym::floorDiv(loop::product(ctx_, k.scatterIndex ? k.scatterShape : k.out->shape),
                        ctx_.constant(g_.cuda.vector)),
          g_.cuda.block)};
      break;
    case CudaStrategy::ThreadPerOutput:
      printThreadPerOutput(k);
      spec.grid = {blocksFor(loop::product(ctx_, k.out->shape, 0), g_.cuda.block)};
      break;
    case CudaStrategy::BlockPerOutput:
      printBlockPerOutput(k);
      spec.grid = {capBlocks(loop::product(ctx_, k.out->shape, 0))};
      break;
    case CudaStrategy::FusedAttention:
      return printCudaAttention(os_, g_, model_, ctx_);
    case CudaStrategy::BlockPerOuter:
      printBlockPerOuter();
      spec.grid = {capBlocks(loop::product(ctx_, k.out->shape, 0, g_.outerRank))};
      break;
    }
    spec.grid.push_back(ctx_.constant(1));
    spec.grid.push_back(ctx_.constant(1));
    return spec;
  }

private:
  sym::Expr capBlocks(sym::Expr n) { return sym::min(n, ctx_.constant(g_.cuda.maxBlocks)); }
  sym::Expr blocksFor(sym::Expr n, int block) {
    return capBlocks(sym::floorDiv(n + ctx_.constant(block - 1), ctx_.constant(block)));
  }
  std::string cpp(sym::Expr e) { return sym::toCpp(e, model_); }
  /// Tiles of the tiled permute: 32x32 over (tileDim, innermost) times the other dims.
  sym::Expr tiledBlocks(const loop::Kernel &k) {
    sym::Expr n = ctx_.constant(1);
    for (size_t d = 0; d < k.vars.size(); ++d) {
      bool tiled = d + 1 == k.vars.size() || static_cast<int>(d) == g_.cuda.tileDim;
      n = n * (tiled ? sym::floorDiv(k.out->shape[d] + ctx_.constant(31), ctx_.constant(32))
                     : k.out->shape[d]);
    }
    return n;
  }
  std::string idx(sym::Expr e) { return fmt::format("(({})({}))", idx_, cpp(e)); }

  /// Declares the loop variables `prefix{from..to-1}` (row-major over sizes) from `lin`.
  void decompose(const std::string &indent, const std::string &lin,
                 const std::vector<sym::Expr> &sizes, size_t from, size_t to, const char *prefix,
                 const std::vector<sym::Expr> &vars,
                 std::map<const sym::Node *, std::string> &loc) {
    if (from >= to) return;
    os_ << indent << idx_ << " rem_" << prefix << " = " << lin << ";\n";
    for (size_t d = to; d-- > from;) {
      std::string name = fmt::format("{}{}", prefix, d);
      loc[vars[d].node()] = name;
      if (d == from) {
        os_ << indent << "const " << idx_ << " " << name << " = rem_" << prefix << ";\n";
        continue;
      }
      std::string size = idx(sizes[d]);
      os_ << indent << "const " << idx_ << " " << name << " = rem_" << prefix << " % " << size
          << ";\n";
      os_ << indent << "rem_" << prefix << " /= " << size << ";\n";
    }
    os_ << indent << "(void)rem_" << prefix << ";\n";
  }

  std::string outIndex(const loop::Kernel &k, std::map<const sym::Node *, std::string> &loc) {
    return sym::toCpp(loop::linearIndex(ctx_, k.vars, k.out->shape), [&](sym::Expr s) {
      auto it = loc.find(s.node());
      return it != loc.end() ? it->second : model_(s);
    });
  }

  std::string gridStride(const std::string &var, const std::string &start, const std::string &n,
                         const std::string &step) {
    return fmt::format("for ({0} {1} = {2}; {1} < {3}; {1} += {4}) {{\n", idx_, var, start, n,
                       step);
  }
  std::string globalThread() const {
    return fmt::format("({})blockIdx.x * blockDim.x + threadIdx.x", idx_);
  }
  std::string allThreads() const { return fmt::format("({})gridDim.x * blockDim.x", idx_); }

  void store(const std::string &indent, const loop::Kernel &k, const std::string &index,
             const std::string &v) {
    os_ << indent << k.out->name << "[" << index << "] = " << storeExpr(k.out, v) << ";\n";
  }

  /// A scatter kernel: threads over the updates, each stored at its computed position.
  void printScatter(const loop::Kernel &k) {
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

  static const char *vectorType(DType t) {
    return t == DType::Float32 ? "float4" : t == DType::UInt32 ? "uint4" : "int4";
  }

  /// Four consecutive elements per thread: 16-byte loads and one 16-byte store when this
  /// thread's addresses are aligned (checked at run time: a view or a caller's tensor may
  /// be offset), else the same lanes with scalar accesses.
  void printVectorized(const loop::Kernel &k) {
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

  /// A permute through 32x32 shared-memory tiles (rows padded to 33 against bank
  /// conflicts): the block reads its tile with threads along dim `tileDim`, where the tiled
  /// loads are contiguous, then writes the output with threads along the innermost dim.
  void printTiled(const loop::Kernel &k) {
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

  void printElementwise(const loop::Kernel &k) {
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
        << gridStride("lin", globalThread(), idx(loop::product(ctx_, k.out->shape, 0)),
                      allThreads());
    decompose("    ", "lin", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
    ValuePrinter vp(os_, "    ", model_, loc);
    std::string v = vp.emit(k.body);
    store("    ", k, outIndex(k, loc), v);
    os_ << "  }\n";
  }

  std::string accType(const loop::Kernel &k) { return computeType(k.accDtype); }
  std::string init(const loop::Kernel &k) {
    std::string s = reduceInit(k.rop, k.accDtype);
    if (auto pos = s.find("ACC"); pos != std::string::npos) s.replace(pos, 3, accType(k));
    return s;
  }
  bool isArg(const loop::Kernel &k) const {
    return k.rop == loop::ReduceOp::ArgMax || k.rop == loop::ReduceOp::ArgMin;
  }

  /// Serial loops over the reduction vars, folding each value into acc/best.
  void serialReduction(std::string indent, const loop::Kernel &k,
                       std::map<const sym::Node *, std::string> &loc) {
    size_t nr = k.rvars.size();
    for (size_t d = 0; d < nr; ++d) {
      loc[k.rvars[d].node()] = fmt::format("r{}", d);
      os_ << indent
          << fmt::format("for ({0} r{1} = 0; r{1} < {2}; ++r{1}) {{\n", idx_, d, idx(k.rsizes[d]));
      indent += "  ";
    }
    ValuePrinter vp(os_, indent, model_, loc);
    std::string v = vp.emit(k.body);
    std::string flat = "0";
    for (size_t d = 0; d < nr && isArg(k); ++d)
      flat = fmt::format("({}) * ({}) + r{}", flat, cpp(k.rsizes[d]), d);
    os_ << indent << accumulateStmt(k, v, flat) << "\n";
    for (size_t d = 0; d < nr; ++d) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
  }

  void printThreadPerOutput(const loop::Kernel &k) {
    std::map<const sym::Node *, std::string> loc;
    os_ << "  "
        << gridStride("lin", globalThread(), idx(loop::product(ctx_, k.out->shape, 0)),
                      allThreads());
    decompose("    ", "lin", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
    os_ << "    " << accType(k) << " acc = " << init(k) << ";\n";
    if (isArg(k)) os_ << "    int64_t best = 0;\n";
    serialReduction("    ", k, loc);
    store("    ", k, outIndex(k, loc), isArg(k) ? "best" : "acc");
    os_ << "  }\n";
  }

  /// The block's threads stride over the reduction; partials combine by warp shuffles, then
  /// across warps through shared memory. Thread 0 stores. Every thread of the block must
  /// reach this code (it synchronises).
  void blockReduction(const std::string &in, const loop::Kernel &k,
                      std::map<const sym::Node *, std::string> &loc, const std::string &outIdx,
                      int tag) {
    std::string acc = accType(k);
    bool arg = isArg(k);
    // Shuffles move 32- or 64-bit words: narrower accumulators travel as int.
    std::string wire = dtypeSize(k.accDtype) < 4 ? "int" : acc;
    os_ << in << "{\n";
    std::string i2 = in + "  ";
    os_ << i2 << acc << " acc = " << init(k) << ";\n";
    if (arg) os_ << i2 << "int64_t best = 0;\n";
    os_ << i2
        << gridStride("rl", "threadIdx.x", idx(loop::product(ctx_, k.rsizes, 0)), "blockDim.x");
    decompose(i2 + "  ", "rl", k.rsizes, 0, k.rvars.size(), "r", k.rvars, loc);
    ValuePrinter vp(os_, i2 + "  ", model_, loc);
    std::string v = vp.emit(k.body);
    os_ << i2 << "  " << accumulateStmt(k, v, "rl") << "\n" << i2 << "}\n";
    auto warpStep = [&](const std::string &ind) {
      os_ << ind << "for (int off = 16; off > 0; off >>= 1) {\n";
      os_ << ind << "  const " << acc << " ov = (" << acc << ")__shfl_down_sync(0xffffffffu, ("
          << wire << ")acc, off);\n";
      if (arg) os_ << ind << "  const int64_t ob = __shfl_down_sync(0xffffffffu, best, off);\n";
      os_ << ind << "  " << combineStmt(k, "ov", arg ? "ob" : "") << "\n" << ind << "}\n";
    };
    warpStep(i2);
    os_ << i2 << fmt::format("__shared__ {} part_v{}[32];\n", acc, tag);
    if (arg) os_ << i2 << fmt::format("__shared__ int64_t part_i{}[32];\n", tag);
    os_ << i2 << "if ((threadIdx.x & 31) == 0) { "
        << fmt::format("part_v{}[threadIdx.x >> 5] = acc;", tag)
        << (arg ? fmt::format(" part_i{}[threadIdx.x >> 5] = best;", tag) : "") << " }\n";
    os_ << i2 << "__syncthreads();\n";
    os_ << i2 << "if (threadIdx.x < 32) {\n";
    os_ << i2 << "  const bool live = threadIdx.x < (blockDim.x >> 5);\n";
    os_ << i2 << fmt::format("  acc = live ? part_v{}[threadIdx.x] : ({}){};\n", tag, acc, init(k));
    if (arg) os_ << i2 << fmt::format("  best = live ? part_i{}[threadIdx.x] : 0;\n", tag);
    warpStep(i2 + "  ");
    os_ << i2 << "  if (threadIdx.x == 0) " << k.out->name << "[" << outIdx
        << "] = " << storeExpr(k.out, arg ? "best" : "acc") << ";\n";
    os_ << i2 << "}\n" << i2 << "__syncthreads();\n" << in << "}\n";
  }

  void printBlockPerOutput(const loop::Kernel &k) {
    std::map<const sym::Node *, std::string> loc;
    os_ << "  "
        << gridStride("o", "blockIdx.x", idx(loop::product(ctx_, k.out->shape, 0)), "gridDim.x");
    decompose("    ", "o", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
    blockReduction("    ", k, loc, outIndex(k, loc), 0);
    os_ << "  }\n";
  }

  void printBlockPerOuter() {
    size_t shared = g_.outerRank;
    const loop::Kernel &first = *g_.kernels.front();
    os_ << "  "
        << gridStride("o", "blockIdx.x", idx(loop::product(ctx_, first.out->shape, 0, shared)),
                      "gridDim.x");
    int tag = 0;
    for (const loop::Kernel *k : g_.kernels) {
      std::map<const sym::Node *, std::string> loc;
      os_ << "    { // " << commentText(k->origin) << "\n";
      decompose("      ", "o", k->out->shape, 0, shared, "i", k->vars, loc);
      sym::Expr inner = loop::product(ctx_, k->out->shape, shared);
      if (k->kind == loop::KernelKind::Pointwise) {
        os_ << "      " << gridStride("l", "threadIdx.x", idx(inner), "blockDim.x");
        decompose("        ", "l", k->out->shape, shared, k->vars.size(), "i", k->vars, loc);
        ValuePrinter vp(os_, "        ", model_, loc);
        std::string v = vp.emit(k->body);
        store("        ", *k, outIndex(*k, loc), v);
        os_ << "      }\n";
      } else {
        // Usually one output per outer point (a row's max or sum); all threads walk the
        // same outputs so the block-wide combine stays uniform.
        os_ << "      " << gridStride("l", "0", idx(inner), "1");
        decompose("        ", "l", k->out->shape, shared, k->vars.size(), "i", k->vars, loc);
        blockReduction("        ", *k, loc, outIndex(*k, loc), tag++);
        os_ << "      }\n";
      }
      os_ << "      __syncthreads();\n    }\n";
    }
    os_ << "  }\n";
  }

  std::ostringstream &os_;
  const loop::KernelGroup &g_;
  const SymbolNamer &model_;
  sym::Context &ctx_;
  std::string idx_;
};

/// kiln_kernel_<id>, or kiln_kernel_<id>_v<n> for a tuned variant's further function.
std::string functionName(const loop::KernelGroup &g) {
  std::string name = fmt::format("kiln_kernel_{}", g.kernels.front()->id);
  return g.cuda.function ? fmt::format("{}_v{}", name, g.cuda.function) : name;
}

KernelSource printFunction(const loop::KernelGroup &g, const KernelSignature &sig,
                           const SymbolNamer &modelSymbol, sym::Context &ctx) {
  std::ostringstream os;
  os << "// kernel " << g.kernels.front()->id << " from";
  for (const loop::Kernel *k : g.kernels)
    os << " " << commentText(k->origin);
  if (!g.cuda.tuneKey.empty()) os << " (tuning key " << g.cuda.tuneKey << ")";
  int bound = g.cuda.launchBound ? g.cuda.launchBound : g.cuda.block;
  os << "\nextern \"C\" __global__ void __launch_bounds__(" << bound << ") " << functionName(g)
     << "(";
  for (size_t i = 0; i < sig.buffers.size(); ++i) {
    const loop::Buffer *b = sig.buffers[i];
    os << (i ? ", " : "") << bufferPointerType(b->dtype, sig.written[i]) << "__restrict__ "
       << b->name;
  }
  for (const sym::Expr &s : sig.symbols)
    os << (sig.buffers.empty() && &s == &sig.symbols.front() ? "" : ", ") << "const int64_t "
       << modelSymbol(s);
  os << ") {\n";
  LaunchSpec spec = GroupPrinter(os, g, modelSymbol, ctx).print();
  os << "}\n\n";
  KernelSource ks;
  ks.text = os.str();
  ks.launch = spec;
  return ks;
}

class CudaBackend final : public KernelBackend {
public:
  explicit CudaBackend(const sched::Target &t) : archs_(t.cudaArchs) {
    KILN_ASSERT(!archs_.empty(), "a CUDA target needs at least one architecture");
  }
  const char *name() const override { return "cuda"; }

  KernelSource printGroup(const loop::KernelGroup &g, const KernelSignature &sig,
                          const SymbolNamer &modelSymbol, sym::Context &ctx) const override {
    if (g.cudaVariants.empty()) return printFunction(g, sig, modelSymbol, ctx);
    // Tuned run-time variants (sched/tuning_select.cpp): one function per distinct code, each
    // variant with its own launch; variants sharing a function must print it identically.
    KernelSource out;
    out.measure = g.cudaMeasure;
    std::vector<std::string> texts;
    for (const loop::CudaVariant &v : g.cudaVariants) {
      loop::KernelGroup one = g;
      one.cuda = v.schedule;
      one.cudaVariants.clear();
      KernelSource ks = printFunction(one, sig, modelSymbol, ctx);
      size_t f = static_cast<size_t>(v.schedule.function);
      KILN_ASSERT(f <= texts.size(), "variant functions must be numbered in order");
      if (f == texts.size()) {
        texts.push_back(ks.text);
        out.functions.push_back(functionName(one));
      }
      KILN_ASSERT(texts[f] == ks.text, "variants sharing {} print different code",
                  out.functions[f]);
      out.variants.push_back({static_cast<int>(f), ks.launch, v.ranges});
    }
    for (const std::string &t : texts)
      out.text += t;
    return out;
  }

  std::vector<SourceFile> sourceFiles(const std::vector<std::string> &kernels,
                                      size_t) const override {
    // One fatbin, loaded by one cuModuleLoadData per container.
    SourceFile f;
    f.name = "kernels.cu";
    f.tool = SourceTool::CudaFatbin;
    f.text = "#include \"kiln/prelude.h\"\n#include <limits>\n\n";
    for (const std::string &k : kernels)
      f.text += k;
    f.flags = {"-O3", "-std=c++17", "--expt-relaxed-constexpr"};
    for (const std::string &a : archs_) {
      std::string num = a.substr(a.find('_') + 1);
      f.flags.push_back(fmt::format("-gencode=arch=compute_{0},code=sm_{0}", num));
    }
    // PTX of the newest arch, so newer GPUs JIT-compile it.
    std::string newest = archs_.back().substr(archs_.back().find('_') + 1);
    f.flags.push_back(fmt::format("-gencode=arch=compute_{0},code=compute_{0}", newest));
    return {f};
  }

private:
  std::vector<std::string> archs_;
};

} // namespace

std::unique_ptr<KernelBackend> makeCudaBackend(const sched::Target &target) {
  return std::make_unique<CudaBackend>(target);
}

} // namespace kiln::codegen
