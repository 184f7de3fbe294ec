// The CPU kernel backend: each fused group becomes one C++ function with OpenMP over its
// outer loops (where sched/ said so) and an innermost `omp simd` loop GCC vectorizes. The
// wrapper calls it directly as `kiln_kernel_<id>(buffers..., symbols...)`.
#include "codegen/backend.h"

#include "support/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <vector>

namespace kiln::codegen {

namespace {

/// Prints one kernel's loops below the first `shared` output dims, which an enclosing
/// group loop already iterates (as i0..i{shared-1}). With shared == 0 the kernel
/// parallelises its own outer loops.
class MemberPrinter {
public:
  MemberPrinter(std::ostringstream &os, const loop::Kernel &k, size_t shared, bool parallel,
                int unrollInner, int64_t minWork, bool insideSimd, const SymbolNamer &model,
                sym::Context &ctx)
      : os_(os), k_(k), shared_(shared), model_(model), ctx_(ctx), serial_(!parallel),
        unroll_(unrollInner), minWork_(minWork), insideSimd_(insideSimd) {}

  void print(std::string indent) {
    for (size_t d = 0; d < k_.vars.size(); ++d)
      locals_[k_.vars[d].node()] = fmt::format("i{}", d);
    for (size_t d = 0; d < k_.rvars.size(); ++d)
      locals_[k_.rvars[d].node()] = fmt::format("r{}", d);
    const ir::Shape &oshape = k_.out->shape;
    sym::Expr work = ctx_.constant(1);
    for (auto &d : oshape)
      work = work * d;
    for (auto &d : k_.rsizes)
      work = work * d;
    parallelIf_ = fmt::format("if({} >= {})", sizeCpp(work), minWork_);
    outIdx_ = sym::toCpp(loop::linearIndex(ctx_, k_.vars, oshape), [&](sym::Expr s) {
      auto it = locals_.find(s.node());
      return it != locals_.end() ? it->second : model_(s);
    });
    size_t rank = k_.vars.size();
    bool pointwise = k_.kind == loop::KernelKind::Pointwise;
    // Own outer loops: all but the innermost for pointwise (all but two when sched/ unrolls
    // the innermost inside a simd loop over the next); all output dims for reductions.
    size_t simdLoops = unroll_ ? 2 : 1;
    size_t outerEnd = pointwise ? (rank >= simdLoops ? rank - simdLoops : 0) : rank;
    if (outerEnd < shared_) outerEnd = shared_;
    size_t own = outerEnd - shared_;
    if (own > 0 && shared_ == 0 && !serial_)
      os_ << indent << "#pragma omp parallel for "
          << (own > 1 ? fmt::format("collapse({}) ", own) : "") << parallelIf_ << "\n";
    for (size_t d = shared_; d < outerEnd; ++d) {
      os_ << indent
          << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", d, sizeCpp(oshape[d]));
      indent += "  ";
    }
    if (pointwise)
      printPointwise(indent, rank, outerEnd);
    else
      printReduction(indent, rank);
    for (size_t d = shared_; d < outerEnd; ++d) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
  }

private:
  std::string sizeCpp(sym::Expr e) { return sym::toCpp(e, model_); }

  /// Loads in v whose index does not use the loop variable `var` (and needs no loaded
  /// index), in first-use order.
  static void invariantLoads(const loop::VRef &v, const sym::Node *var,
                             std::set<const loop::VNode *> &seen, std::vector<loop::VRef> &out) {
    if (!seen.insert(v.get()).second) return;
    if (v->kind == loop::VKind::Load) {
      bool uses = false;
      for (const sym::Expr &s : sym::freeSymbols(v->sym))
        uses = uses || s.node() == var;
      if (!uses && v->indirect.empty()) out.push_back(v);
      return;
    }
    for (const loop::VRef &a : v->args)
      invariantLoads(a, var, seen, out);
  }

  /// The symbols gather bindings in v bind (a load's index symbol := a loaded value).
  static void gatherSymbols(const loop::VRef &v, std::set<const sym::Node *> &out,
                            std::set<const loop::VNode *> &seen) {
    if (!seen.insert(v.get()).second) return;
    for (auto &[sym, value] : v->indirect) {
      out.insert(sym.node());
      gatherSymbols(value, out, seen);
    }
    for (const loop::VRef &a : v->args)
      gatherSymbols(a, out, seen);
  }
  static std::set<const sym::Node *> gatherSymbols(const loop::VRef &v) {
    std::set<const sym::Node *> out;
    std::set<const loop::VNode *> seen;
    gatherSymbols(v, out, seen);
    return out;
  }

  /// Gather bindings in v whose value uses neither `var` nor a symbol that another binding of
  /// the body binds (unless that one is bound already or comes first here), in order, one
  /// per symbol.
  void invariantGathers(const loop::VRef &v, const sym::Node *var,
                        const std::set<const sym::Node *> &bodyGathers,
                        std::set<const loop::VNode *> &seen,
                        std::vector<std::pair<sym::Expr, loop::VRef>> &out) {
    if (!seen.insert(v.get()).second) return;
    auto bound = [&](const sym::Node *s) {
      if (locals_.count(s)) return true;
      for (auto &[o, val] : out)
        if (o.node() == s) return true;
      return false;
    };
    for (auto &[sym, value] : v->indirect) {
      if (bound(sym.node())) continue;
      // Bound by the value's own loads when printed.
      const std::set<const sym::Node *> own = gatherSymbols(value);
      bool invariant = true;
      for (const sym::Node *s : valueSymbols(value))
        invariant = invariant && s != var && (!bodyGathers.count(s) || own.count(s) || bound(s));
      if (invariant) out.emplace_back(sym, value);
    }
    for (const loop::VRef &a : v->args)
      invariantGathers(a, var, bodyGathers, seen, out);
  }

  /// Prints the loads of the body that do not depend on the simd loop's variable once, before
  /// the loop, and binds them in `bound` (and invariant gather indices in locals_). GCC 12 left a
  /// simd loop scalar ("latch block not empty") when it reloaded such a value that an earlier group
  /// member stored in the same function (softmax's row max and sum). Returns the text closing the
  /// zero-extent guard.
  std::string hoistInvariantLoads(std::string &indent, const sym::Node *var, sym::Expr extent,
                                  std::vector<std::pair<const loop::VNode *, std::string>> &bound) {
    std::set<const loop::VNode *> seen;
    std::vector<loop::VRef> loads;
    invariantLoads(k_.body, var, seen, loads);
    std::vector<std::pair<sym::Expr, loop::VRef>> gathers;
    seen.clear();
    const std::set<const sym::Node *> bodyGathers = gatherSymbols(k_.body);
    invariantGathers(k_.body, var, bodyGathers, seen, gathers);
    if (loads.empty() && gathers.empty()) return "";
    std::string close;
    // The loads read the element of the loop's first iteration: with no iteration there
    // may be no such element.
    if (!(extent.constValue() && *extent.constValue() > 0)) {
      os_ << indent << "if (" << sizeCpp(extent) << " > 0) {\n";
      close = indent + "}\n";
      indent += "  ";
    }
    ValuePrinter hp(os_, indent, model_, locals_);
    hp.gccVectorForms(true);
    hp.namePrefix("h");
    for (const loop::VRef &l : loads)
      bound.emplace_back(l.get(), hp.emit(l));
    // A gather's row index, bound once: the loads it indexes are then contiguous in var.
    for (auto &[sym, value] : gathers) {
      const std::string text = hp.emit(value), name = fmt::format("hx{}", hoistedGathers_++);
      os_ << indent << "const int64_t " << name << " = (int64_t)" << text << ";\n";
      locals_[sym.node()] = name;
    }
    return close;
  }

  void printPointwise(std::string indent, size_t rank, size_t outerEnd) {
    bool inner = rank > outerEnd;
    const size_t simdDim = unroll_ ? rank - 2 : rank - 1;
    std::vector<std::pair<const loop::VNode *, std::string>> hoisted;
    std::string closeGuard;
    // (Not with an unrolled innermost dim: a load invariant along the simd loop may still
    // depend on the unrolled index, which is only bound inside it.)
    if (inner && !unroll_)
      closeGuard =
          hoistInvariantLoads(indent, k_.vars[simdDim].node(), k_.out->shape[simdDim], hoisted);
    if (inner) {
      if (outerEnd == 0 && shared_ == 0 && !serial_)
        os_ << indent << "#pragma omp parallel for simd " << parallelIf_ << "\n";
      else if (!insideSimd_) // simd loops do not nest
        os_ << indent << "#pragma omp simd\n";
      os_ << indent
          << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", simdDim,
                         sizeCpp(k_.out->shape[simdDim]));
      indent += "  ";
    }
    for (int u = 0; u < std::max(unroll_, 1); ++u) {
      std::string at = indent;
      if (unroll_) {
        os_ << indent << fmt::format("{{ const int64_t i{} = {};\n", rank - 1, u);
        at += "  ";
      }
      // Each unrolled copy binds the names it declares (gathered indices) in its own scope.
      std::map<const sym::Node *, std::string> copyLocals;
      if (unroll_) copyLocals = locals_;
      ValuePrinter bp(os_, at, model_, unroll_ ? copyLocals : locals_);
      bp.gccVectorForms(true);
      for (auto &[node, name] : hoisted)
        bp.bind(node, name);
      std::string v = bp.emit(k_.body);
      os_ << at << k_.out->name << "[" << outIdx_ << "] = " << storeExpr(k_.out, v) << ";\n";
      if (unroll_) os_ << indent << "}\n";
    }
    if (inner) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
    }
    os_ << closeGuard;
  }

  void printReduction(std::string indent, size_t rank) {
    const char *acc = computeType(k_.accDtype);
    bool arg = k_.rop == loop::ReduceOp::ArgMax || k_.rop == loop::ReduceOp::ArgMin;
    std::string init = reduceInit(k_.rop, k_.accDtype);
    if (auto pos = init.find("ACC"); pos != std::string::npos) init.replace(pos, 3, acc);
    os_ << indent << acc << " acc = " << init << ";\n";
    if (arg) os_ << indent << "int64_t best = 0;\n";
    size_t nr = k_.rvars.size();
    bool simple = !arg && (k_.rop == loop::ReduceOp::Sum || k_.rop == loop::ReduceOp::Prod);
    const char *clause = k_.rop == loop::ReduceOp::Sum ? "+" : "*";
    // Float max/min: the prelude's NaN-propagating reductions let the lanes run in SIMD.
    bool floatMinMax =
        isFloat(k_.accDtype) && (k_.rop == loop::ReduceOp::Max || k_.rop == loop::ReduceOp::Min);
    if (floatMinMax) clause = k_.rop == loop::ReduceOp::Max ? "kiln_nanmax" : "kiln_nanmin";
    // Loads invariant along the innermost loop, once before it (before the parallel pragma
    // that owns a single loop): an embedding row's index read inside a simd reduction made
    // GCC gather every element (BERT-base's embedding LayerNorm, 7.7 ms at batch 8).
    std::vector<std::pair<const loop::VNode *, std::string>> hoisted;
    std::string closeGuard;
    size_t guardIndent = 0;
    auto hoist = [&] {
      const size_t before = indent.size();
      closeGuard = hoistInvariantLoads(indent, k_.rvars[nr - 1].node(), k_.rsizes[nr - 1], hoisted);
      guardIndent = indent.size() - before;
    };
    if (nr == 1) hoist();
    if (rank == 0 && shared_ == 0 && simple && nr > 0 && !serial_)
      os_ << indent << "#pragma omp parallel for reduction(" << clause << ":acc) " << parallelIf_
          << "\n";
    for (size_t d = 0; d < nr; ++d) {
      if (d + 1 == nr && nr > 1) hoist();
      if (d + 1 == nr && (simple || floatMinMax) && !insideSimd_ &&
          !(simple && rank == 0 && shared_ == 0 && nr == 1 && !serial_))
        os_ << indent << "#pragma omp simd reduction(" << clause << ":acc)\n";
      os_ << indent
          << fmt::format("for (int64_t r{0} = 0; r{0} < {1}; ++r{0}) {{\n", d,
                         sizeCpp(k_.rsizes[d]));
      indent += "  ";
    }
    ValuePrinter bp(os_, indent, model_, locals_);
    bp.gccVectorForms(true);
    for (auto &[node, name] : hoisted)
      bp.bind(node, name);
    std::string v = bp.emit(k_.body);
    std::string flat = "0";
    for (size_t d = 0; d < nr && arg; ++d)
      flat = fmt::format("({}) * ({}) + r{}", flat, sizeCpp(k_.rsizes[d]), d);
    os_ << indent << accumulateStmt(k_, v, flat) << "\n";
    for (size_t d = 0; d < nr; ++d) {
      indent.resize(indent.size() - 2);
      os_ << indent << "}\n";
      if (d == 0) { // the innermost loop just closed
        os_ << closeGuard;
        indent.resize(indent.size() - guardIndent);
      }
    }
    os_ << indent << k_.out->name << "[" << outIdx_
        << "] = " << storeExpr(k_.out, arg ? "best" : "acc") << ";\n";
  }

  std::ostringstream &os_;
  const loop::Kernel &k_;
  size_t shared_;
  const SymbolNamer &model_;
  sym::Context &ctx_;
  std::map<const sym::Node *, std::string> locals_;
  std::string parallelIf_, outIdx_;
  bool serial_;
  int unroll_;
  int64_t minWork_;
  bool insideSimd_; // within the group's simd loop over its last shared dim
  int hoistedGathers_ = 0;
};

std::string printGroupText(const loop::KernelGroup &g, const KernelSignature &sig,
                           const SymbolNamer &modelSymbol, sym::Context &ctx) {
  const loop::Kernel &first = *g.kernels.front();
  std::ostringstream os;
  os << "// kernel " << first.id << " from";
  for (const loop::Kernel *k : g.kernels)
    os << " " << commentText(k->origin);
  os << "\nextern \"C\" void kiln_kernel_" << first.id << "(";
  for (size_t i = 0; i < sig.buffers.size(); ++i) {
    const loop::Buffer *b = sig.buffers[i];
    os << (i ? ", " : "") << bufferPointerType(b->dtype, sig.written[i]) << "__restrict__ "
       << b->name;
  }
  for (const sym::Expr &s : sig.symbols)
    os << ", const int64_t " << modelSymbol(s);
  os << ") {\n";
  std::string indent = "  ";
  size_t shared = g.kernels.size() > 1 ? g.outerRank : 0;
  // The last shared loop in blocks, each a simd loop around the members (sched/:
  // simdSharedBlock): one loop more to close, and no simd loops of the members' own.
  const int64_t simdBlock = shared > 0 ? g.cpu.simdSharedBlock : 0;
  if (shared > 0) {
    // Fused group: one parallel region over the shared outer loops; each member runs
    // its inner loops per outer point, so intermediates stay hot in cache.
    sym::Expr work = ctx.constant(0);
    for (const loop::Kernel *k : g.kernels) {
      sym::Expr w = ctx.constant(1);
      for (auto &d : k->out->shape)
        w = w * d;
      for (auto &d : k->rsizes)
        w = w * d;
      work = work + w;
    }
    if (g.cpu.groupParallel)
      os << indent << "#pragma omp parallel for"
         << (shared > 1 ? fmt::format(" collapse({})", shared) : "")
         << fmt::format(" if({} >= {})", sym::toCpp(work, modelSymbol), g.cpu.minParallelWork)
         << "\n";
    for (size_t d = 0; d < shared; ++d) {
      const std::string extent = sym::toCpp(first.out->shape[d], modelSymbol);
      if (d + 1 == shared && simdBlock > 0) {
        // The block loop is collapsed with the loops above.
        os << indent
           << fmt::format("for (int64_t i{0}b = 0; i{0}b < {1}; i{0}b += {2}) {{\n", d, extent,
                          simdBlock);
        indent += "  ";
        os << indent << "#pragma omp simd\n"
           << indent
           << fmt::format("for (int64_t i{0} = i{0}b; i{0} < (i{0}b + {2} < {1} ? i{0}b + {2} : "
                          "{1}); ++i{0}) {{\n",
                          d, extent, simdBlock);
      } else {
        os << indent << fmt::format("for (int64_t i{0} = 0; i{0} < {1}; ++i{0}) {{\n", d, extent);
      }
      indent += "  ";
    }
  }
  for (size_t m = 0; m < g.kernels.size(); ++m) {
    const loop::Kernel *k = g.kernels[m];
    os << indent << "{ // " << commentText(k->origin) << "\n";
    bool parallel = m < g.cpu.memberParallel.size() && g.cpu.memberParallel[m];
    int unroll = m < g.cpu.memberUnrollInner.size() ? g.cpu.memberUnrollInner[m] : 0;
    MemberPrinter(os, *k, shared, parallel, unroll, g.cpu.minParallelWork, simdBlock > 0,
                  modelSymbol, ctx)
        .print(indent + "  ");
    os << indent << "}\n";
  }
  for (size_t d = 0; d < shared + (simdBlock > 0 ? 1 : 0); ++d) {
    indent.resize(indent.size() - 2);
    os << indent << "}\n";
  }
  os << "}\n\n";
  return os.str();
}

bool isIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

/// A kernel's text without its comments and name, its buffer parameters renamed by position:
/// equal for two kernels that run the same code on different buffers (a transformer's layers
/// print the same kernels once per layer).
std::string canonicalKernel(const std::string &text) {
  std::string out;
  std::map<std::string, size_t> buffers;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "//") == 0) {
      i = text.find('\n', i);
      if (i == std::string::npos) break;
      continue;
    }
    if (!isIdentChar(text[i])) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && isIdentChar(text[end]))
      ++end;
    std::string word = text.substr(i, end - i);
    if (word.rfind("kiln_kernel_", 0) == 0)
      out += "K";
    else if (word.size() > 3 && word.rfind("buf", 0) == 0 &&
             word.find_first_not_of("0123456789", 3) == std::string::npos)
      out += "p" + std::to_string(buffers.emplace(word, buffers.size()).first->second);
    else
      out += word;
    i = end;
  }
  return out;
}

/// `extern "C" void kiln_kernel_<dup>(...) { kiln_kernel_<same>(...); }`: the duplicate
/// kernel's entry point, forwarding its arguments to the one compiled copy of its code.
std::string forwarder(const std::string &dupText, const std::string &sameName) {
  const std::string head = "extern \"C\" void ";
  size_t at = dupText.find(head);
  size_t open = dupText.find('(', at), close = dupText.find(')', open);
  KILN_ASSERT(at != std::string::npos && open != std::string::npos && close != std::string::npos,
              "a cpu kernel's text has no signature");
  std::string params = dupText.substr(open + 1, close - open - 1), args;
  for (size_t p = 0; p <= params.size();) {
    size_t comma = params.find(',', p);
    if (comma == std::string::npos) comma = params.size();
    size_t e = comma;
    while (e > p && !isIdentChar(params[e - 1]))
      --e;
    size_t b = e;
    while (b > p && isIdentChar(params[b - 1]))
      --b;
    if (e > b) args += (args.empty() ? "" : ", ") + params.substr(b, e - b);
    p = comma + 1;
  }
  return dupText.substr(at, close + 1 - at) + " { " + sameName + "(" + args + "); }\n";
}

std::string kernelName(const std::string &text) {
  size_t at = text.find("kiln_kernel_");
  size_t end = at;
  while (end < text.size() && isIdentChar(text[end]))
    ++end;
  return text.substr(at, end - at);
}

class CpuBackend final : public KernelBackend {
public:
  CpuBackend(std::string arch, std::string gatherFlag)
      : arch_(std::move(arch)), gatherFlag_(std::move(gatherFlag)) {}
  const char *name() const override { return "cpu"; }
  KernelSource printGroup(const loop::KernelGroup &g, const KernelSignature &sig,
                          const SymbolNamer &modelSymbol, sym::Context &ctx) const override {
    for (const loop::Kernel *k : g.kernels)
      KILN_ASSERT(!k->scatterIndex, "kernel {} is a scatter kernel; the cpu uses the scatter shim",
                  k->id);
    return {printGroupText(g, sig, modelSymbol, ctx), {}};
  }
  /// Kernels whose code equals an earlier one's (canonicalKernel) are compiled once: each
  /// duplicate becomes a one-line forwarder in the file of its original. BERT-base's 187
  /// kernels are 20 distinct ones; compiling only those took its cold compile from 8.7 to
  /// ~5 s (docs/perf.md). `perFile` counts distinct kernels.
  std::vector<SourceFile> sourceFiles(const std::vector<std::string> &kernels,
                                      size_t perFile) const override {
    std::vector<std::string> unique;
    std::vector<std::string> forwarders; // per unique kernel: its duplicates' entry points
    std::map<std::string, size_t> seen;
    for (const std::string &k : kernels) {
      auto [it, fresh] = seen.emplace(canonicalKernel(k), unique.size());
      if (fresh) {
        unique.push_back(k);
        forwarders.emplace_back();
      } else {
        forwarders[it->second] += forwarder(k, kernelName(unique[it->second]));
      }
    }
    std::vector<SourceFile> files;
    for (size_t i = 0; i < unique.size(); i += perFile) {
      SourceFile f;
      f.name = fmt::format("kernels_{}.cpp", i / perFile);
      f.text = fmt::format("#include \"{}\"\n#include <limits>\n\n", kKernelFirstHeader);
      for (size_t j = i; j < std::min(unique.size(), i + perFile); ++j)
        f.text += unique[j] + forwarders[j];
      f.flags = {"-O3", "-march=" + arch_, "-fopenmp", "-fno-math-errno", "-fno-trapping-math"};
      // GCC's tuning for Zen 1-2 (and -mtune=generic) turns AVX2 gathers off, and an omp simd
      // loop that needs one (a padded window's clamped index: MaxPool) then stays scalar; such
      // a MaxPool ran 1.6x faster with them on Zen 2 (docs/perf.md, session 43). A no-op
      // where the tuning has them on already.
      if (!gatherFlag_.empty()) f.flags.push_back(gatherFlag_);
      f.precompiledHeader = kKernelFirstHeader;
      files.push_back(std::move(f));
    }
    return files;
  }

private:
  std::string arch_, gatherFlag_;
};

} // namespace

std::unique_ptr<KernelBackend> makeCpuBackend(const std::string &hostArch,
                                              const std::string &gatherFlag) {
  return std::make_unique<CpuBackend>(hostArch, gatherFlag);
}

} // namespace kiln::codegen
