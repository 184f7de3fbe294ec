// The wrapper generator (generateModel): prints every group's kernel, lays out the weights,
// and prints the statements of run_impl and of the sub-programs' functions.
#include "codegen/wrapper/wrapper.h"

#include "codegen/wrapper/extern_call.h"
#include "codegen/wrapper/launch_select.h"
#include "codegen/wrapper/wrapper_gen.h"
#include "kiln/model_desc.h"
#include "support/error.h"
#include "support/hash.h"

#include <algorithm>
#include <fmt/format.h>
#include <set>
#include <sstream>
#define XXH_INLINE_ALL // header-only: no library to link
#include <xxhash.h>

namespace kiln::codegen {

int ModelSymbols::indexOf(sym::Expr s) const {
  for (size_t i = 0; i < symbols.size(); ++i)
    if (symbols[i] == s) return static_cast<int>(i);
  return -1;
}

ModelSymbols collectModelSymbols(const ir::Graph &g, const loop::Program &p) {
  ModelSymbols ms;
  for (const ir::Value *in : g.inputs)
    for (const sym::Expr &d : in->shape)
      for (const sym::Expr &s : sym::freeSymbols(d))
        if (ms.indexOf(s) < 0) ms.symbols.push_back(s);
  // Run-time shape values: those known before the run first.
  for (loop::ValuePhase phase : {loop::ValuePhase::BeforeRun, loop::ValuePhase::InOrder})
    for (const loop::RuntimeShapeValue &v : p.shapeValues)
      if (v.phase == phase && ms.indexOf(v.symbol) < 0) ms.symbols.push_back(v.symbol);
  return ms;
}

GeneratedModel WrapperGen::generate(size_t perFile) {
  GeneratedModel gm;
  packWeights(gm.weights);
  const KernelBackend &device = ops_.kernelBackend(), &host = ops_.hostBackend();
  std::vector<KernelSignature> sigs(p_.groups.size());
  launches_.assign(p_.groups.size(), {});
  kernelIndex_.assign(p_.groups.size(), -1);
  std::vector<std::string> deviceSources, hostSources;
  auto namer = [this](sym::Expr s) { return symName(s); };
  for (size_t gi = 0; gi < p_.groups.size(); ++gi) {
    const loop::KernelGroup &g = p_.groups[gi];
    if (g.isExtern() || g.isCall()) continue;
    sigs[gi] = signatureOf(g, [this](sym::Expr s) { return isModelSymbol(s); });
    KernelSource ks = device.printGroup(g, sigs[gi], namer, ctx_);
    deviceSources.push_back(std::move(ks.text));
    kernelIndex_[gi] = static_cast<int>(kernelNames_.size());
    if (ks.functions.empty())
      kernelNames_.push_back(fmt::format("kiln_kernel_{}", g.kernels.front()->id));
    kernelNames_.insert(kernelNames_.end(), ks.functions.begin(), ks.functions.end());
    launches_[gi] = std::move(ks);
  }
  // Value kernels that run before the run are host code bind_shapes calls.
  std::vector<std::string> &beforeRunSources = &host == &device ? deviceSources : hostSources;
  for (const auto &kp : p_.kernels) {
    if (!p_.runsBeforeRun(*kp)) continue;
    loop::KernelGroup g;
    g.kernels = {kp.get()};
    beforeRun_.push_back(
        {kp.get(), signatureOf(g, [this](sym::Expr s) { return isModelSymbol(s); })});
    beforeRunSources.push_back(host.printGroup(g, beforeRun_.back().sig, namer, ctx_).text);
  }
  cf_.emplace(p_, ctx_);
  cf_->printKernels(
      static_cast<int>(p_.kernels.size()), deviceSources,
      [this](sym::Expr s) { return isModelSymbol(s); }, namer, device);
  for (SourceFile &f : device.sourceFiles(deviceSources, perFile))
    gm.sources.push_back(std::move(f));
  if (!hostSources.empty())
    for (SourceFile &f : host.sourceFiles(hostSources, perFile))
      gm.sources.push_back(std::move(f));
  SourceFile w;
  w.name = "wrapper.cpp";
  w.text = wrapperSource(sigs);
  w.flags = ops_.wrapperFlags();
  w.precompiledHeader = kWrapperFirstHeader;
  gm.sources.push_back(std::move(w));
  gm.linkFlags = ops_.linkFlags();
  return gm;
}

void WrapperGen::packWeights(WeightsLayout &blob) {
  for (loop::Buffer *b : p_.constants) {
    size_t off = (blob.size + 63) / 64 * 64;
    offsets_.push_back(off);
    if (b->dtype == DType::String) fail("string constants are not supported");
    blob.segments.push_back({off, b->data});
    blob.size = off + b->data->bytes.size();
  }
}

std::string WrapperGen::beforeRunCalls() {
  std::ostringstream os;
  BeforeRunArgs args{[](const loop::Buffer &b) {
                       return fmt::format("(const {} *)data[{}]", dtypeCType(b.dtype), b.index);
                     },
                     [this](sym::Expr s) { return fmt::format("S[{}]", syms_.indexOf(s)); },
                     "err, err_size"};
  for (const BeforeRunKernel &bk : beforeRun_)
    os << beforeRunCall(p_, *bk.kernel, bk.sig, args, cppOf());
  return os.str();
}

std::string WrapperGen::externCall(const loop::Kernel &k, int &scopeCounter) {
  const loop::ExternCall &e = k.ext;
  ExternCallText call = printExternCall(
      e, {[this](sym::Expr x) { return cpp(x); }, [this](sym::Expr x) { return symName(x); }});
  std::ostringstream os;
  os << "  { // " << e.function << " for " << commentText(k.origin) << "\n" << call.setup;
  ++scopeCounter;
  std::string site = profileSite(e.function, k.origin, KILN_PROFILE_EXTERN);
  if (!site.empty()) os << "    " << ops_.profileBegin(site);
  os << "    int st = " << e.function << "(ctx->runner, " << call.args << ");\n";
  if (!site.empty()) os << "    " << ops_.profileEnd(site);
  os << "    if (st) { snprintf(ctx->error, ctx->error_size, \"%s (in %s)\", "
        "kiln_rt_last_error(), "
     << cString(k.origin) << "); return st; }\n  }\n";
  return os.str();
}

std::string WrapperGen::runBody(const loop::Program &p, const std::vector<KernelSignature> &sigs,
                                const loop::SubProgram *sub) {
  std::ostringstream os;
  os << ops_.runPrologue();
  os << ops_.profilerPrologue();
  os << "  (void)inputs; (void)outputs; (void)constants;\n";
  size_t nsym = sub ? numSymbols() : syms_.symbols.size();
  bool own = sub && std::any_of(p.shapeValues.begin(), p.shapeValues.end(),
                                [](const loop::RuntimeShapeValue &v) {
                                  return v.phase == loop::ValuePhase::BeforeRun;
                                });
  if (sub)
    os << cf_->beforeRunCalls(
        *sub, numSymbols(), [this](sym::Expr e) { return symbolIndex(e); }, cppOf());
  // In-order values (sizes the run computes) are variables of run_impl, stored back at the end.
  for (size_t s = 0; s < nsym; ++s)
    os << fmt::format("  {0}int64_t S{1} = {2}[{1}]; (void)S{1};\n",
                      s < syms_.symbols.size() && isLate(syms_.symbols[s]) ? "" : "const ", s,
                      own ? "SS" : "S");
  if (nsym == 0) os << "  (void)S;\n";
  bool calls = std::any_of(p.groups.begin(), p.groups.end(),
                           [](const loop::KernelGroup &g) { return g.isCall(); });
  std::string full = own ? "SS" : "S";
  if (calls && !sub) {
    // The model's symbols, then room for iteration numbers; scratch kept per call site.
    os << fmt::format("  int64_t SX[{}] = {{0}};\n", std::max<size_t>(numSymbols(), 1));
    if (!syms_.symbols.empty())
      os << fmt::format("  memcpy(SX, S, sizeof(int64_t) * {});\n", syms_.symbols.size());
    os << fmt::format("  kiln_cf_scratch cfs[{}] = {{}};\n", cf_->numSites());
    full = "SX";
  }
  sched::MemoryPlan plan;
  if (sub) {
    plan = cf_->plan(*sub);
    os << cf_->prologue(*sub, ops_, [this](sym::Expr e) { return cpp(e); });
  } else {
    plan = sched::planMemory(p, ctx_);
    topPlan_ = plan;
    for (size_t s = 0; s < plan.slots.size(); ++s)
      os << "  " << ops_.allocScratch(fmt::format("slot{}", s), cpp(plan.slots[s].bytes));
  }
  for (auto &b : p.buffers) {
    std::string ct = dtypeCType(b->dtype);
    switch (b->kind) {
    case loop::BufferKind::Input:
      os << fmt::format("  {0} *{1} = ({0} *)inputs[{2}]; (void){1};\n", ct, b->name, b->index);
      break;
    case loop::BufferKind::Output:
      os << fmt::format("  {0} *{1} = ({0} *)outputs[{2}]; (void){1};\n", ct, b->name, b->index);
      break;
    case loop::BufferKind::Constant:
      os << fmt::format("  {0} *{1} = ({0} *)constants[{2}]; (void){1};\n", ct, b->name, b->index);
      break;
    case loop::BufferKind::Intermediate: {
      auto it = plan.slotOf.find(b.get());
      if (it == plan.slotOf.end()) continue;
      os << fmt::format("  {0} *{1} = ({0} *)slot{2};\n", ct, b->name, it->second);
      break;
    }
    }
  }
  CallPrinter cp{numSymbols(), [this](sym::Expr s) { return symbolIndex(s); }, *cf_, full, {}};
  if (!sub)
    for (const loop::RuntimeShapeValue &v : p_.shapeValues)
      if (v.phase == loop::ValuePhase::InOrder) cp.live.push_back(syms_.indexOf(v.symbol));
  int scopes = 0;
  std::set<const sym::Node *> lateSet; // in-order values set so far (top level)
  std::vector<bool> guardDone(g_.guards.size(), false);
  for (size_t gi = 0; gi < p.groups.size(); ++gi) {
    const loop::KernelGroup &g = p.groups[gi];
    const loop::Kernel *k = g.kernels.front();
    if (gi > 0 && sub) // an If branch's computed sizes (kept in its late symbols)
      for (const loop::Kernel *pk : p.groups[gi - 1].kernels)
        if (!pk->valueOut.empty()) os << readLateValues(*pk);
    if (gi > 0 && !sub) { // sizes the previous group computed, and the guards they complete
      const loop::KernelGroup &prev = p.groups[gi - 1];
      for (const loop::Kernel *pk : prev.kernels)
        if (!pk->valueOut.empty()) os << readLateValues(*pk);
      for (const sym::Expr &s : valuesSetBy(prev))
        lateSet.insert(s.node());
      os << readyLateGuards(lateSet, guardDone);
    }
    if (g.isExtern()) {
      os << externCall(*k, scopes);
      continue;
    }
    if (g.isCall()) {
      os << printCall(*k, cp);
      continue;
    }
    const KernelSignature &sig = sigs[gi];
    LaunchCall call;
    call.name = fmt::format("kiln_kernel_{}", k->id);
    for (loop::Buffer *b : sig.buffers)
      call.args.push_back(b->name);
    for (const sym::Expr &s : sig.symbols)
      call.args.push_back(symName(s));
    call.argTypes = parameterTypes(sig);
    if (!sub) {
      const LaunchSpec &spec = launches_[gi].launch;
      call.index = kernelIndex_[gi];
      for (const sym::Expr &e : spec.grid)
        call.grid.push_back(cpp(e));
      std::copy(spec.block, spec.block + 3, call.block);
      call.sharedBytes = spec.sharedBytes;
    }
    std::string site = profileSite(call.name, groupOrigin(g), KILN_PROFILE_KERNEL);
    if (!site.empty()) os << "  " << ops_.profileBegin(site);
    if (!sub && !launches_[gi].variants.empty())
      os << "  "
         << printLaunchSelection(
                call, launches_[gi], [this](sym::Expr e) { return cpp(e); }, ops_);
    else
      os << "  " << ops_.launchKernel(call);
    if (!site.empty()) os << "  " << ops_.profileEnd(site);
  }
  if (sub && !p.groups.empty()) {
    for (const loop::Kernel *pk : p.groups.back().kernels)
      if (!pk->valueOut.empty()) os << readLateValues(*pk);
    for (const loop::RuntimeShapeValue &v : p.shapeValues) // back to the caller (lateAfter)
      if (v.phase == loop::ValuePhase::InOrder)
        os << fmt::format("  S[{0}] = S{0};\n", syms_.indexOf(v.symbol));
  }
  if (!sub && !p.groups.empty()) {
    const loop::KernelGroup &last = p.groups.back();
    for (const loop::Kernel *pk : last.kernels)
      if (!pk->valueOut.empty()) os << readLateValues(*pk);
    for (const sym::Expr &s : valuesSetBy(last))
      lateSet.insert(s.node());
  }
  if (!sub) { // every in-order value is set now
    for (const loop::RuntimeShapeValue &v : p_.shapeValues)
      if (v.phase == loop::ValuePhase::InOrder) lateSet.insert(v.symbol.node());
    os << readyLateGuards(lateSet, guardDone);
  }
  if (!sub) {
    os << "  " << ops_.synchronize();
    for (const loop::RuntimeShapeValue &v : p_.shapeValues)
      if (v.phase == loop::ValuePhase::InOrder)
        os << fmt::format("  S[{0}] = S{0};\n", syms_.indexOf(v.symbol));
  }
  os << "  return 0;\n";
  return os.str();
}

std::string WrapperGen::profileSite(const std::string &name, const std::string &origin, int kind) {
  if (!ops_.profiles()) return "";
  int id = static_cast<int>(siteDefs_.size());
  siteDefs_.push_back(
      fmt::format("static const kiln_profile_site_v1 prof_site_{} = {{{}, {}, {}, {}}};\n", id,
                  cString(name), cString(origin), kind, id));
  return fmt::format("prof_site_{}", id);
}

std::string WrapperGen::groupOrigin(const loop::KernelGroup &g) {
  std::vector<std::string> seen;
  for (const loop::Kernel *k : g.kernels) {
    size_t at = 0;
    while (at <= k->origin.size()) {
      size_t comma = k->origin.find(',', at);
      if (comma == std::string::npos) comma = k->origin.size();
      std::string part = k->origin.substr(at, comma - at);
      part.erase(0, part.find_first_not_of(' '));
      if (!part.empty() && std::find(seen.begin(), seen.end(), part) == seen.end())
        seen.push_back(part);
      at = comma + 1;
    }
  }
  return fmt::format("{}", fmt::join(seen, ","));
}

GeneratedModel generateModel(const ir::Graph &g, loop::Program &p, const DeviceOps &ops,
                             size_t kernelsPerFile, const BuildStamp &stamp) {
  WrapperGen gen(g, p, ops, stamp);
  return gen.generate(std::max<size_t>(kernelsPerFile, 1));
}

uint64_t WeightsLayout::hash(uint64_t seed) const {
  // XXH3 rather than the cache's byte-wise FNV: a model's weights are hundreds of MB.
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset_withSeed(&state, seed);
  for (const Segment &sg : segments) {
    uint64_t head[2] = {sg.offset, sg.data->bytes.size()};
    XXH3_64bits_update(&state, head, sizeof head);
    XXH3_64bits_update(&state, sg.data->bytes.unalignedData(), sg.data->bytes.size());
  }
  XXH3_64bits_update(&state, &size, sizeof size);
  return XXH3_64bits_digest(&state);
}

bool WeightsLayout::write(std::FILE *out) const {
  static const char zeros[64] = {};
  size_t at = 0;
  for (const Segment &sg : segments) {
    if (std::fwrite(zeros, 1, sg.offset - at, out) != sg.offset - at) return false;
    size_t n = sg.data->bytes.size();
    if (n && std::fwrite(sg.data->bytes.unalignedData(), 1, n, out) != n) return false;
    at = sg.offset + n;
  }
  return std::fflush(out) == 0;
}

} // namespace kiln::codegen
