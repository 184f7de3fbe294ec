#include "codegen/wrapper/control_flow.h"

#include "support/error.h"

#include <algorithm>
#include <fmt/format.h>
#include <sstream>

namespace kiln::codegen {

SubPrograms::SubPrograms(const loop::Program &top, sym::Context &ctx) : ctx_(ctx) {
  loop::collectSubPrograms(top, subs_);
  std::vector<const loop::Program *> progs{&top};
  for (const loop::SubProgram *sub : subs_)
    progs.push_back(&sub->prog);
  for (const loop::Program *prog : progs)
    for (const auto &k : prog->kernels) {
      if (k->kind != loop::KernelKind::Call) continue;
      sites_[k.get()] = static_cast<int>(sites_.size());
      for (sym::Expr s : {k->call->iter, k->call->batch})
        if (s.valid()) locals_.push_back(s);
    }
  for (const loop::SubProgram *sub : subs_) {
    for (const loop::RuntimeShapeValue &v : sub->prog.shapeValues)
      locals_.push_back(v.symbol); // only BeforeRun: lowering refuses the others in a body
    Layout &l = layouts_[sub];
    l.plan = sched::planMemory(sub->prog, ctx);
    l.total = ctx.constant(0);
    for (const sched::Slot &slot : l.plan.slots) {
      l.offsets.push_back(l.total);
      l.total = l.total + sym::floorDiv(slot.bytes + 63, 64) * 64;
    }
  }
}

std::string SubPrograms::function(const loop::SubProgram &sub) const {
  auto it = std::find(subs_.begin(), subs_.end(), &sub);
  KILN_ASSERT(it != subs_.end(), "sub-program {} was not collected", sub.name);
  return fmt::format("run_sub_{}", it - subs_.begin());
}

void SubPrograms::printKernels(int firstId, std::vector<std::string> &sources,
                               const std::function<bool(sym::Expr)> &isSymbol,
                               const SymbolNamer &name, const KernelBackend &backend) {
  int next = firstId;
  for (const loop::SubProgram *sub : subs_) {
    auto print = [&](const loop::KernelGroup &g) {
      KernelSignature sig = signatureOf(g, isSymbol);
      sources.push_back(backend.printGroup(g, sig, name, ctx_).text);
      return sig;
    };
    for (const auto &k : sub->prog.kernels)
      k->id = next++;
    for (const auto &k : sub->prog.kernels) {
      if (!sub->prog.runsBeforeRun(*k)) continue;
      loop::KernelGroup g;
      g.kernels = {k.get()};
      beforeRunSigs_[k.get()] = print(g);
    }
    std::vector<KernelSignature> &sigs = sigs_[sub];
    sigs.resize(sub->prog.groups.size());
    for (size_t gi = 0; gi < sub->prog.groups.size(); ++gi)
      if (!sub->prog.groups[gi].isExtern() && !sub->prog.groups[gi].isCall())
        sigs[gi] = print(sub->prog.groups[gi]);
  }
}

std::string SubPrograms::declarations(const DeviceOps &ops) const {
  std::ostringstream os;
  auto declare = [&](const loop::Kernel &k, const KernelSignature &sig) {
    os << ops.declareKernel(fmt::format("kiln_kernel_{}", k.id), parameterTypes(sig));
  };
  for (const loop::SubProgram *sub : subs_) {
    for (const auto &k : sub->prog.kernels)
      if (sub->prog.runsBeforeRun(*k)) declare(*k, beforeRunSigs_.at(k.get()));
    for (size_t gi = 0; gi < sub->prog.groups.size(); ++gi)
      if (!sub->prog.groups[gi].isExtern() && !sub->prog.groups[gi].isCall())
        declare(*sub->prog.groups[gi].kernels.front(), sigs_.at(sub)[gi]);
  }
  return os.str();
}

std::string
SubPrograms::functions(const std::function<std::string(const loop::SubProgram &)> &body) const {
  if (subs_.empty()) return "";
  std::ostringstream os;
  // Per-call-site scratch blocks, kept across iterations: declared once in run_impl and
  // passed down, so a loop body's scratch is allocated once, not per iteration.
  os << "struct kiln_cf_scratch { char *p; size_t cap; };\n\n";
  const char *params = "(kiln_run_ctx *ctx, void *const *inputs, void *const *outputs, "
                       "int64_t *S,\n    void *const *constants, kiln_cf_scratch *scr, "
                       "kiln_cf_scratch *cfs)";
  for (const loop::SubProgram *sub : subs_)
    os << "static int " << function(*sub) << params << ";\n";
  for (const loop::SubProgram *sub : subs_)
    os << "\n// " << commentText(sub->name) << "\nstatic int " << function(*sub) << params
       << " {\n  (void)cfs;\n"
       << body(*sub) << "}\n";
  return os.str() + "\n";
}

std::string SubPrograms::beforeRunCalls(const loop::SubProgram &sub, size_t numSymbols,
                                        const std::function<int(sym::Expr)> &index,
                                        const SymbolCpp &cpp) const {
  const loop::Program &p = sub.prog;
  if (std::none_of(p.kernels.begin(), p.kernels.end(),
                   [&](const auto &k) { return p.runsBeforeRun(*k); }))
    return "";
  std::ostringstream os;
  size_t n = std::max<size_t>(numSymbols, 1);
  os << fmt::format("  int64_t SS[{0}];\n  memcpy(SS, S, sizeof(int64_t) * {0});\n", n);
  BeforeRunArgs args{[](const loop::Buffer &b) {
                       return fmt::format("(const {} *)inputs[{}]", dtypeCType(b.dtype), b.index);
                     },
                     [&](sym::Expr s) { return fmt::format("SS[{}]", index(s)); },
                     "ctx->error, ctx->error_size"};
  for (const auto &k : p.kernels)
    if (p.runsBeforeRun(*k)) os << beforeRunCall(p, *k, beforeRunSigs_.at(k.get()), args, cpp);
  return os.str();
}

std::string SubPrograms::prologue(const loop::SubProgram &sub, const DeviceOps &ops,
                                  const SymbolCpp &cpp) const {
  std::ostringstream os;
  for (const ir::ShapeGuard &gd : sub.guards)
    os << guardCheck(gd, cpp, "ctx->error, ctx->error_size");
  const Layout &l = layouts_.at(&sub);
  std::string need = cpp(l.total);
  os << "  if ((size_t)(" << need << ") > scr->cap) {\n    const size_t cap = (size_t)(" << need
     << ") > 2 * scr->cap ? (size_t)(" << need << ") : 2 * scr->cap;\n    "
     << ops.allocScratch("blk", "cap") << "    scr->p = blk;\n    scr->cap = cap;\n  }\n";
  os << "  char *scratch = scr->p; (void)scratch;\n";
  for (size_t s = 0; s < l.offsets.size(); ++s)
    os << fmt::format("  char *slot{} = scratch + ({});\n", s, cpp(l.offsets[s]));
  return os.str();
}

namespace {

// The most iterations a Loop runs (2^31 - 1): beyond it a run returns an error instead of
// looking hung; a trip count given as input above it is refused before the first iteration.
constexpr int64_t kMaxLoopTrips = 2147483647;

class CallGen {
public:
  CallGen(const loop::Kernel &k, const CallPrinter &p)
      : k_(k), cf_(*k.call), site_(p.subs.site(&k)), p_(p) {}

  std::string print() {
    os_ << "  { // " << commentText(k_.origin) << ": " << commentText(cf_.origin) << "\n";
    os_ << fmt::format("    int64_t SL[{}];\n", std::max<size_t>(p_.numSymbols, 1));
    if (p_.numSymbols)
      os_ << fmt::format("    memcpy(SL, {}, sizeof(int64_t) * {});\n", p_.symbols, p_.numSymbols);
    for (int i : p_.live)
      os_ << fmt::format("    SL[{0}] = S{0};\n", i);
    if (cf_.op == loop::ControlFlow::Op::If)
      printIf();
    else
      printLoop();
    os_ << "  }\n";
    return os_.str();
  }

private:
  /// Sizes and offsets in the caller: this call's iteration numbers live in SL.
  std::string cpp(sym::Expr e) const {
    return sym::toCpp(e, [this](sym::Expr s) {
      int i = p_.symbolIndex(s);
      KILN_ASSERT(i >= 0, "symbol {} has no slot", s.name());
      bool mine = s == cf_.iter || (cf_.batch.valid() && s == cf_.batch);
      return mine ? fmt::format("SL[{}]", i) : fmt::format("S{}", i);
    });
  }

  std::string bytes(const loop::Buffer *b, size_t skip) const {
    sym::Context &ctx = cf_.iter.ctx();
    sym::Expr n = ctx.constant(dtypeSize(b->dtype));
    for (size_t d = skip; d < b->shape.size(); ++d)
      n = n * b->shape[d];
    return cpp(n);
  }

  /// One call of body `bi` with the given input/output pointers (captures appended).
  void call(size_t bi, std::vector<std::string> ins, const std::vector<std::string> &outs,
            const std::string &ind) {
    const loop::SubProgram &sub = *cf_.bodies[bi];
    for (const loop::Buffer *b : cf_.captures[bi])
      ins.push_back(fmt::format("(void *){}", b->name));
    ins.push_back("nullptr");
    std::vector<std::string> o = outs;
    o.push_back("nullptr");
    os_ << ind << "{ // " << commentText(sub.name) << "\n";
    os_ << ind << fmt::format("  void *in[] = {{{}}};\n", fmt::join(ins, ", "));
    os_ << ind << fmt::format("  void *out[] = {{{}}};\n", fmt::join(o, ", "));
    os_ << ind << "  int st = " << p_.subs.function(sub) << "(ctx, in, out, SL, constants, &cfs["
        << site_ << "], cfs);\n";
    os_ << ind << "  if (st) return st;\n" << ind << "}\n";
  }

  void printIf() {
    std::vector<std::string> outs;
    for (const loop::Buffer *b : cf_.writes)
      outs.push_back(fmt::format("(void *){}", b->name));
    os_ << "    if (" << cf_.cond->name << "[0]) {\n";
    call(0, {}, outs, "      ");
    lateAfter(0, "      ");
    os_ << "    } else {\n";
    call(1, {}, outs, "      ");
    lateAfter(1, "      ");
    os_ << "    }\n";
  }

  /// After branch bi ran: the sizes it computed (written back into SL) become the caller's,
  /// then each output dim that depends on them is set and checked against its bound.
  void lateAfter(size_t bi, const std::string &ind) {
    if (bi < cf_.bodyLate.size())
      for (const sym::Expr &s : cf_.bodyLate[bi])
        os_ << ind << fmt::format("S{0} = SL[{0}];\n", p_.symbolIndex(s));
    for (const loop::ControlFlow::LateDim &ld : cf_.lateDims) {
      int i = p_.symbolIndex(ld.symbol);
      os_ << ind << fmt::format("S{} = {};\n", i, cpp(ld.perBody[bi]));
      os_ << ind
          << fmt::format(
                 "if (S{0} < 0 || S{0} > ({1})) {{\n{2}  snprintf(ctx->error, "
                 "ctx->error_size, \"%s = %lld is outside [0, %lld]\", {3}, (long "
                 "long)S{0}, (long long)({1}));\n{2}  return KILN_ERR_SHAPE_MISMATCH;\n{2}}}\n",
                 i, cpp(ld.bound), ind, cString(ld.symbol.name()));
    }
  }

  void printLoop() {
    bool isLoop = cf_.op == loop::ControlFlow::Op::Loop;
    bool batched = cf_.batch.valid();
    std::string trips = cf_.trips.valid() ? cpp(cf_.trips)
                        : cf_.tripBuffer  ? fmt::format("(int64_t){}[0]", cf_.tripBuffer->name)
                                          : std::string("INT64_MAX");
    os_ << "    const int64_t trips = " << trips << ";\n";
    // A for-loop (no condition) with an absurd run-time trip count is refused before it
    // starts; a while-loop stops with an error at the same count (never a silent hang).
    if (isLoop && !cf_.cond)
      os_ << "    if (trips > " << kMaxLoopTrips << ") {\n"
          << "      snprintf(ctx->error, ctx->error_size, \"%s: trip count %lld is more than "
          << "kiln runs (" << kMaxLoopTrips << " iterations)\", " << cString(cf_.origin)
          << ", (long long)trips);\n"
          << "      return KILN_ERR_INVALID_ARGUMENT;\n    }\n";
    os_ << "    const int64_t batches = " << (batched ? cpp(cf_.batches) : "1") << ";\n";
    os_ << "    for (int64_t b = 0; b < batches; ++b) {\n";
    std::string ind = "      ";
    if (batched) os_ << ind << fmt::format("SL[{}] = b;\n", p_.symbolIndex(cf_.batch));
    if (isLoop)
      os_ << ind << "bool cond = "
          << (cf_.cond ? fmt::format("{}[0]", cf_.cond->name) : std::string("true")) << ";\n";
    // Carried values ping-pong between the output (for this batch) and a spare buffer,
    // starting from the initial value; a final copy lands the result in the output.
    for (size_t c = 0; c < cf_.carried.size(); ++c) {
      const auto &cv = cf_.carried[c];
      std::string sb = bytes(cv.spare, 0);
      os_ << ind
          << fmt::format("const char *cur{0} = (const char *){1} + b * ({2});\n", c, cv.init->name,
                         sb);
      os_ << ind << fmt::format("char *dst{0} = (char *){1} + b * ({2});\n", c, cv.out->name, sb);
    }
    os_ << ind << "int64_t it = 0;\n";
    os_ << ind << "for (; it < trips" << (isLoop ? " && cond" : "") << "; ++it) {\n";
    std::string in2 = ind + "  ";
    if (isLoop)
      os_ << in2 << "if (it == " << kMaxLoopTrips << ") {\n"
          << in2 << "  snprintf(ctx->error, ctx->error_size, \"%s: still running after "
          << kMaxLoopTrips << " iterations (trip count %lld); kiln stops it there\", "
          << cString(cf_.origin) << ", (long long)trips);\n"
          << in2 << "  return KILN_ERR_INVALID_ARGUMENT;\n"
          << in2 << "}\n";
    os_ << in2 << fmt::format("SL[{}] = it;\n", p_.symbolIndex(cf_.iter));
    std::vector<std::string> ins, outs;
    if (isLoop) {
      os_ << in2 << "bool condOut = false;\n";
      ins.push_back("(void *)&cond");
      outs.push_back("(void *)&condOut");
    }
    for (size_t c = 0; c < cf_.carried.size(); ++c) {
      os_ << in2
          << fmt::format("char *nxt{0} = cur{0} == dst{0} ? (char *){1} : dst{0};\n", c,
                         cf_.carried[c].spare->name);
      ins.push_back(fmt::format("(void *)cur{}", c));
      outs.push_back(fmt::format("(void *)nxt{}", c));
    }
    for (const loop::Buffer *b : cf_.scanInputs)
      ins.push_back(fmt::format("(void *){}", b->name));
    size_t lead = batched ? 2 : 1;
    for (const auto &so : cf_.scanOutputs) {
      std::string pos = so.reverse ? "trips - 1 - it" : "it";
      outs.push_back(fmt::format("(void *)((char *){} + (b * trips + {}) * ({}))", so.buf->name,
                                 pos, bytes(so.buf, lead)));
    }
    call(0, ins, outs, in2);
    for (size_t c = 0; c < cf_.carried.size(); ++c)
      os_ << in2 << fmt::format("cur{0} = nxt{0};\n", c);
    if (isLoop) os_ << in2 << "cond = condOut;\n";
    os_ << ind << "}\n";
    if (cf_.iterations.valid()) // the scan outputs' leading dim: the iterations run
      os_ << ind << fmt::format("S{} = it;\n", p_.symbolIndex(cf_.iterations));
    else if (isLoop && !cf_.scanOutputs.empty())
      os_ << ind << "if (it < trips) {\n"
          << ind << "  snprintf(ctx->error, ctx->error_size, \"%s: its condition ended the loop "
          << "after %lld of %lld iterations; inside a subgraph kiln sizes scan outputs by the "
          << "trip count and cannot return fewer\", " << cString(cf_.origin)
          << ", (long long)it, (long long)trips);\n"
          << ind << "  return KILN_ERR_UNSUPPORTED;\n"
          << ind << "}\n";
    for (size_t c = 0; c < cf_.carried.size(); ++c)
      os_ << ind
          << fmt::format("if (cur{0} != dst{0}) memcpy(dst{0}, cur{0}, {1});\n", c,
                         bytes(cf_.carried[c].spare, 0));
    os_ << "    }\n";
  }

  const loop::Kernel &k_;
  const loop::ControlFlow &cf_;
  int site_;
  const CallPrinter &p_;
  std::ostringstream os_;
};

} // namespace

std::string printCall(const loop::Kernel &k, const CallPrinter &p) {
  return CallGen(k, p).print();
}

} // namespace kiln::codegen
