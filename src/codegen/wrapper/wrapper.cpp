#include "codegen/wrapper/wrapper.h"

#include "codegen/wrapper/control_flow.h"
#include "codegen/wrapper/extern_call.h"
#include "codegen/wrapper/launch_select.h"
#include "codegen/wrapper/shape_binding.h"
#include "codegen/wrapper/shape_checks.h"
#include "kiln/model_desc.h"
#include "kiln/shim.h"
#include "sched/schedule.h"
#include "support/error.h"
#include "support/hash.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <optional>
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

namespace {

std::string dlType(DType t) {
  return fmt::format("{{{}, {}, 1}}", dtypeDLCode(t), dtypeBits(t));
}

class WrapperGen {
public:
  WrapperGen(const ir::Graph &g, loop::Program &p, const DeviceOps &ops, const BuildStamp &stamp)
      : g_(g), p_(p), ops_(ops), stamp_(stamp), ctx_(g.ctx()), syms_(collectModelSymbols(g, p)) {}

  /// Position in the symbols array: the model's symbols, then the iteration numbers of
  /// control flow (set by the caller of each sub-program).
  int symbolIndex(sym::Expr s) const {
    int i = syms_.indexOf(s);
    if (i >= 0) return i;
    if (!cf_) return -1;
    auto it = std::find(cf_->locals().begin(), cf_->locals().end(), s);
    return it == cf_->locals().end()
               ? -1
               : static_cast<int>(syms_.symbols.size() + (it - cf_->locals().begin()));
  }
  size_t numSymbols() const { return syms_.symbols.size() + (cf_ ? cf_->locals().size() : 0); }
  std::string symName(sym::Expr s) const {
    int i = symbolIndex(s);
    if (i < 0) fail("dimension symbol '{}' is not determined by any model input shape", s.name());
    return fmt::format("S{}", i);
  }
  std::string cpp(sym::Expr e) const {
    return sym::toCpp(e, [this](sym::Expr s) { return symName(s); });
  }
  bool isModelSymbol(sym::Expr s) const { return symbolIndex(s) >= 0; }

  GeneratedModel generate(size_t perFile, bool embed) {
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
    w.text = wrapperSource(sigs, embed);
    w.flags = ops_.wrapperFlags();
    gm.sources.push_back(std::move(w));
    gm.linkFlags = ops_.linkFlags();
    return gm;
  }

private:
  void packWeights(WeightsLayout &blob) {
    for (loop::Buffer *b : p_.constants) {
      size_t off = (blob.size + 63) / 64 * 64;
      offsets_.push_back(off);
      if (b->dtype == DType::String) fail("string constants are not supported");
      blob.segments.push_back({off, b->data});
      blob.size = off + b->data->bytes.size();
    }
  }

  std::string ioTables(const char *kind, const std::vector<loop::Buffer *> &bufs,
                       const std::vector<std::string> &names) {
    std::ostringstream os;
    for (size_t i = 0; i < bufs.size(); ++i) {
      const loop::Buffer *b = bufs[i];
      std::vector<std::string> dims, syms;
      for (const sym::Expr &d : b->shape) {
        dims.push_back(d.isConst() ? std::to_string(d->value) : "-1");
        syms.push_back(d.isSymbol() && isModelSymbol(d) ? std::to_string(syms_.indexOf(d)) : "-1");
      }
      if (dims.empty()) {
        dims.push_back("0");
        syms.push_back("-1");
      }
      os << fmt::format("static const int64_t {}_dims_{}[] = {{{}}};\n", kind, i,
                        fmt::join(dims, ", "));
      os << fmt::format("static const int32_t {}_syms_{}[] = {{{}}};\n", kind, i,
                        fmt::join(syms, ", "));
    }
    os << fmt::format("static const kiln_io_desc_v1 {}_desc[] = {{\n", kind);
    for (size_t i = 0; i < bufs.size(); ++i)
      os << fmt::format("  {{{}, {}, {}, {}_dims_{}, {}_syms_{}}},\n", cString(names[i]),
                        dlType(bufs[i]->dtype), bufs[i]->shape.size(), kind, i, kind, i);
    if (bufs.empty()) os << "  {nullptr, {0, 0, 0}, 0, nullptr, nullptr},\n";
    os << "};\n";
    return os.str();
  }

  bool isLate(sym::Expr s) const { return p_.isInOrderValue(s); }

  SymbolCpp cppOf() const {
    return [this](sym::Expr e) { return cpp(e); };
  }

  ShapePrinter shapes() const {
    return {g_, p_, syms_, ctx_, ops_, cppOf(), [this](sym::Expr e) { return symName(e); }};
  }
  std::string readLateValues(const loop::Kernel &k) const { return shapes().readValues(k); }
  std::string readyLateGuards(const std::set<const sym::Node *> &set,
                              std::vector<bool> &done) const {
    return shapes().readyGuards(set, done);
  }
  std::string symbolLocals() const { return codegen::symbolLocals(syms_); }

  bool readsInputData() const { return !beforeRun_.empty(); }

  /// bind_impl's calls of the value kernels that run before the run (after input dims are
  /// solved): each writes its values into a local array, which are range-checked and
  /// stored into S.
  std::string beforeRunCalls() {
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

  std::string bindShapes() { return shapes().bindShapes(beforeRunCalls(), readsInputData()); }

  std::string externCall(const loop::Kernel &k, int &scopeCounter) {
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

  /// The body of run_impl (sub == nullptr) or of a sub-program's function.
  std::string runBody(const loop::Program &p, const std::vector<KernelSignature> &sigs,
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
        os << fmt::format("  {0} *{1} = ({0} *)constants[{2}]; (void){1};\n", ct, b->name,
                          b->index);
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

  std::string wrapperSource(const std::vector<KernelSignature> &sigs, bool embed) {
    std::ostringstream os;
    os << "// Generated by kiln: the host wrapper of one model.\n";
    // Shims newer than level 3 are weak references: on an older runtime they resolve to
    // NULL, dlopen succeeds and container creation refuses the model by its shim level.
    os << "#define KILN_SHIM_WEAK_FROM_LEVEL 4\n";
    os << "#include \"kiln/model.h\"\n#include \"kiln/model_desc.h\"\n#include \"kiln/shim.h\"\n"
          "#include \"kiln/runtime.h\"\n#include \"kiln/prelude.h\"\n#include <cmath>\n#include "
          "<cstdint>\n#include <cstdio>\n#include <cstring>\n";
    os << ops_.includes() << "\n";
    // Kernel declarations.
    for (size_t gi = 0; gi < p_.groups.size(); ++gi) {
      const loop::KernelGroup &g = p_.groups[gi];
      if (g.isExtern() || g.isCall()) continue;
      const loop::Kernel *k = g.kernels.front();
      os << ops_.declareKernel(fmt::format("kiln_kernel_{}", k->id), parameterTypes(sigs[gi]));
    }
    os << cf_->declarations(ops_);
    for (const BeforeRunKernel &bk : beforeRun_) // host code: bind_shapes calls them
      os << fmt::format("extern \"C\" void kiln_kernel_{}({});\n", bk.kernel->id,
                        fmt::join(parameterTypes(bk.sig), ", "));
    os << "\n";
    // Descriptor tables.
    std::vector<std::string> inNames;
    for (const ir::Value *v : g_.inputs)
      inNames.push_back(v->name);
    os << ioTables("in", p_.inputs, inNames) << ioTables("out", p_.outputs, p_.outputNames);
    os << "static const kiln_symbol_desc_v1 symbols_desc[] = {\n";
    for (const sym::Expr &s : syms_.symbols) {
      sym::Range r = ctx_.symbolRange(s);
      os << fmt::format("  {{{}, INT64_C({}), INT64_C({})}},\n", cString(s.name()), r.lo, r.hi);
    }
    if (syms_.symbols.empty()) os << "  {nullptr, 0, 0},\n";
    os << "};\n";
    for (size_t i = 0; i < p_.constants.size(); ++i) {
      const loop::Buffer *b = p_.constants[i];
      std::vector<std::string> dims;
      for (auto &d : b->shape)
        dims.push_back(std::to_string(d->value));
      if (dims.empty()) dims.push_back("0");
      os << fmt::format("static const int64_t const_dims_{}[] = {{{}}};\n", i,
                        fmt::join(dims, ", "));
    }
    os << "static const kiln_constant_desc_v1 constants_desc[] = {\n";
    for (size_t i = 0; i < p_.constants.size(); ++i) {
      const loop::Buffer *b = p_.constants[i];
      os << fmt::format("  {{{}, {}, {}, const_dims_{}, UINT64_C({}), UINT64_C({})}},\n",
                        cString(b->label.empty() ? b->name : b->label), dlType(b->dtype),
                        b->shape.size(), i, b->data->bytes.size(), offsets_[i]);
    }
    if (p_.constants.empty()) os << "  {nullptr, {0, 0, 0}, 0, nullptr, 0, 0},\n";
    os << "};\n\n";
    os << bindShapes();
    // The run functions; printed after the profile sites their statements name.
    std::string functions = cf_->functions([this](const loop::SubProgram &sub) {
      return runBody(sub.prog, cf_->signatures(sub), &sub);
    });
    bool late = std::any_of(
        p_.shapeValues.begin(), p_.shapeValues.end(),
        [](const loop::RuntimeShapeValue &v) { return v.phase == loop::ValuePhase::InOrder; });
    functions += fmt::format("static int run_impl(kiln_run_ctx *ctx, void *const *inputs, void "
                             "*const *outputs,\n                    {}int64_t *S, void *const "
                             "*constants) {{\n",
                             late ? "" : "const ");
    functions += runBody(p_, sigs, nullptr) + "}\n\n";
    if (ops_.profiles()) os << "#pragma weak kiln_rt_run_profiler\n";
    for (const std::string &def : siteDefs_)
      os << def;
    os << functions;
    if (late)
      os << "static int run_needs_abi3(kiln_run_ctx *ctx, void *const *, void *const *, const "
            "int64_t *, void *const *) {\n  snprintf(ctx->error, ctx->error_size, \"this model "
            "has data-dependent output dims; it needs libkiln_rt with ABI 3 or newer\");\n  "
            "return KILN_ERR_VERSION_MISMATCH;\n}\n\n";
    os << deviceTables();
    if (embed) {
      os << "extern \"C\" const uint8_t kiln_weights_blob[];\n";
    }
    os << "extern \"C\" __attribute__((visibility(\"hidden\"))) const kiln_model_desc_v1 "
          "kiln_model_desc = {\n";
    // The lowest ABI that has what the model uses, so older runtimes keep loading it.
    int abi = std::max(ops_.minAbi(), late ? 3 : 2);
    os << "  sizeof(kiln_model_desc_v1), " << abi << ", " << shimVersion() << ", "
       << cString(ops_.deviceName()) << ",\n";
    os << fmt::format("  {}, {}, {}, {},\n", syms_.symbols.size(), p_.inputs.size(),
                      p_.outputs.size(), p_.constants.size());
    os << "  symbols_desc, in_desc, out_desc, constants_desc,\n";
    os << (embed ? "  kiln_weights_blob, " : "  nullptr, ")
       << fmt::format("UINT64_C({}),\n", weightsSize_());
    os << (late ? "  bind_shapes, output_dims, run_needs_abi3,\n"
                : "  bind_shapes, output_dims, run_impl,\n");
    os << (readsInputData() ? "  bind_impl,\n" : "  nullptr,\n");
    os << (late ? "  run_impl,\n" : "  nullptr,\n");
    os << "  " << ops_.descriptorKernelFields("kernel_names", kernelNames_.size()) << ",\n";
    os << "  scratch_bytes, input_data_on_host, " << ops_.deviceArch() << ",\n";
    int externs = 0;
    for (const auto &group : p_.groups)
      externs += group.isExtern();
    os << fmt::format("  {}, {}, {}, {}, {}\n}};\n", cString(stamp_.cpuIsa),
                      cString(stamp_.cpuFeatures), kernelNames_.size(), externs,
                      cString(stamp_.kilnVersion));
    return os.str();
  }

  /// The ABI-4 tables: kernel names by launch index, the run's scratch size, and which
  /// inputs bind_shapes reads the data of.
  std::string deviceTables() const {
    std::ostringstream os;
    std::vector<std::string> names;
    for (const std::string &n : kernelNames_)
      names.push_back(cString(n));
    if (names.empty()) names.push_back("nullptr");
    os << fmt::format("static const char *const kernel_names[] = {{{}}};\n",
                      fmt::join(names, ", "));
    os << "static uint64_t scratch_bytes(const int64_t *S) {\n";
    os << symbolLocals();
    os << "  (void)S;\n  uint64_t total = 0;\n";
    // Each slot rounded as the runtime's arena rounds allocations.
    for (const sched::Slot &slot : topPlan_.slots)
      os << fmt::format("  total += ((uint64_t)({}) + 255) / 256 * 256;\n", cpp(slot.bytes));
    os << "  return total;\n}\n";
    std::vector<std::string> flags(std::max<size_t>(p_.inputs.size(), 1), "0");
    for (const BeforeRunKernel &bk : beforeRun_)
      for (const loop::Buffer *b : bk.kernel->reads())
        if (b->kind == loop::BufferKind::Input) flags.at(b->index) = "1";
    os << fmt::format("static const int32_t input_data_on_host[] = {{{}}};\n\n",
                      fmt::join(flags, ", "));
    return os.str();
  }

  /// Highest shim level among the functions called, from shim.h's release list.
  int shimVersion() const {
    static const std::map<std::string, int> levels = {
#define KILN_X(fn, level) {#fn, level},
        KILN_SHIM_FUNCTIONS(KILN_X)
#undef KILN_X
    };
    int v = 1;
    std::vector<const loop::Program *> progs{&p_};
    for (const loop::SubProgram *sub : cf_->all())
      progs.push_back(&sub->prog);
    for (const loop::Program *prog : progs)
      for (auto &k : prog->kernels) {
        if (k->kind != loop::KernelKind::Extern) continue;
        auto it = levels.find(k->ext.function);
        KILN_ASSERT(it != levels.end(), "shim function {} is not in KILN_SHIM_FUNCTIONS",
                    k->ext.function);
        v = std::max(v, it->second);
      }
    return v;
  }

  /// Defines a kiln_profile_site_v1 for one timed call and returns its name ("" when the
  /// device prints no profiling hooks).
  std::string profileSite(const std::string &name, const std::string &origin, int kind) {
    if (!ops_.profiles()) return "";
    int id = static_cast<int>(siteDefs_.size());
    siteDefs_.push_back(
        fmt::format("static const kiln_profile_site_v1 prof_site_{} = {{{}, {}, {}, {}}};\n", id,
                    cString(name), cString(origin), kind, id));
    return fmt::format("prof_site_{}", id);
  }

  /// The ONNX nodes a fused group computes, each once, in kernel order.
  static std::string groupOrigin(const loop::KernelGroup &g) {
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

  size_t weightsSize_() const {
    size_t n = 0;
    for (size_t i = 0; i < p_.constants.size(); ++i)
      n = offsets_[i] + p_.constants[i]->data->bytes.size();
    return n;
  }

  const ir::Graph &g_;
  loop::Program &p_;
  const DeviceOps &ops_;
  const BuildStamp &stamp_;
  sym::Context &ctx_;
  ModelSymbols syms_;
  struct BeforeRunKernel {
    const loop::Kernel *kernel;
    KernelSignature sig;
  };
  std::vector<BeforeRunKernel> beforeRun_; // value kernels bind_shapes runs, in order
  std::optional<SubPrograms> cf_;          // control flow (codegen/wrapper/control_flow.h)
  std::vector<size_t> offsets_;
  std::vector<KernelSource> launches_; // per group of p_ (texts moved out)
  std::vector<int> kernelIndex_;       // per group: position in kernelNames_, -1 for none
  std::vector<std::string> kernelNames_;
  std::vector<std::string> siteDefs_; // kiln_profile_site_v1 definitions, by id
  sched::MemoryPlan topPlan_;
};

} // namespace

GeneratedModel generateModel(const ir::Graph &g, loop::Program &p, const DeviceOps &ops,
                             size_t kernelsPerFile, bool embedWeights, const BuildStamp &stamp) {
  WrapperGen gen(g, p, ops, stamp);
  return gen.generate(std::max<size_t>(kernelsPerFile, 1), embedWeights);
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
