// The CUDA kernel backend: each fused group becomes one `extern "C" __global__` function
// launched by the wrapper through cuLaunchKernel. The thread mapping comes from the group's
// CudaSchedule (sched/device_schedule.cpp): elementwise grid-stride loops, a thread or a
// block per reduction output (warp shuffles, then one shared-memory step), or a block per
// outer point for fused softmax/layer-norm groups. All kernels go into one fatbin.
// Elementwise groups are printed by cuda_elementwise.cpp.
#include "codegen/backend.h"
#include "codegen/cuda/cuda_attention.h"
#include "codegen/cuda/cuda_group_printer.h"

#include "sched/target.h"
#include "support/error.h"

#include <fmt/format.h>

namespace kiln::codegen {

namespace {

using loop::CudaStrategy;

} // namespace

LaunchSpec GroupPrinter::print() {
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
    spec.grid = {
        blocksFor(sym::floorDiv(loop::product(ctx_, k.scatterIndex ? k.scatterShape : k.out->shape),
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

sym::Expr GroupPrinter::tiledBlocks(const loop::Kernel &k) {
  sym::Expr n = ctx_.constant(1);
  for (size_t d = 0; d < k.vars.size(); ++d) {
    bool tiled = d + 1 == k.vars.size() || static_cast<int>(d) == g_.cuda.tileDim;
    n = n * (tiled ? sym::floorDiv(k.out->shape[d] + ctx_.constant(31), ctx_.constant(32))
                   : k.out->shape[d]);
  }
  return n;
}

void GroupPrinter::decompose(const std::string &indent, const std::string &lin,
                             const std::vector<sym::Expr> &sizes, size_t from, size_t to,
                             const char *prefix, const std::vector<sym::Expr> &vars,
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

std::string GroupPrinter::outIndex(const loop::Kernel &k,
                                   std::map<const sym::Node *, std::string> &loc) {
  return sym::toCpp(loop::linearIndex(ctx_, k.vars, k.out->shape), [&](sym::Expr s) {
    auto it = loc.find(s.node());
    return it != loc.end() ? it->second : model_(s);
  });
}

void GroupPrinter::serialReduction(std::string indent, const loop::Kernel &k,
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

void GroupPrinter::printThreadPerOutput(const loop::Kernel &k) {
  std::map<const sym::Node *, std::string> loc;
  os_ << "  "
      << gridStride("lin", globalThread(), idx(loop::product(ctx_, k.out->shape, 0)), allThreads());
  decompose("    ", "lin", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
  os_ << "    " << accType(k) << " acc = " << init(k) << ";\n";
  if (isArg(k)) os_ << "    int64_t best = 0;\n";
  serialReduction("    ", k, loc);
  store("    ", k, outIndex(k, loc), isArg(k) ? "best" : "acc");
  os_ << "  }\n";
}

void GroupPrinter::blockReduction(const std::string &in, const loop::Kernel &k,
                                  std::map<const sym::Node *, std::string> &loc,
                                  const std::string &outIdx, int tag) {
  std::string acc = accType(k);
  bool arg = isArg(k);
  // Shuffles move 32- or 64-bit words: narrower accumulators travel as int.
  std::string wire = dtypeSize(k.accDtype) < 4 ? "int" : acc;
  os_ << in << "{\n";
  std::string i2 = in + "  ";
  os_ << i2 << acc << " acc = " << init(k) << ";\n";
  if (arg) os_ << i2 << "int64_t best = 0;\n";
  os_ << i2 << gridStride("rl", "threadIdx.x", idx(loop::product(ctx_, k.rsizes, 0)), "blockDim.x");
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

void GroupPrinter::printBlockPerOutput(const loop::Kernel &k) {
  std::map<const sym::Node *, std::string> loc;
  os_ << "  "
      << gridStride("o", "blockIdx.x", idx(loop::product(ctx_, k.out->shape, 0)), "gridDim.x");
  decompose("    ", "o", k.out->shape, 0, k.vars.size(), "i", k.vars, loc);
  blockReduction("    ", k, loc, outIndex(k, loc), 0);
  os_ << "  }\n";
}

void GroupPrinter::printBlockPerOuter() {
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

namespace {

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
