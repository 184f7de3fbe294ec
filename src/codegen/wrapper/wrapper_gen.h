// Internals of the wrapper generator shared by wrapper.cpp (the generator, run_impl and the
// sub-programs' functions) and model_descriptor.cpp (the source around them and the model
// descriptor). Not part of any public interface.
#pragma once

#include "codegen/wrapper/control_flow.h"
#include "codegen/wrapper/shape_binding.h"
#include "codegen/wrapper/shape_checks.h"
#include "codegen/wrapper/wrapper.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <algorithm>
#include <fmt/format.h>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kiln::codegen {

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

  GeneratedModel generate(size_t perFile);

private:
  void packWeights(WeightsLayout &blob);

  std::string ioTables(const char *kind, const std::vector<loop::Buffer *> &bufs,
                       const std::vector<std::string> &names);

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
  std::string beforeRunCalls();

  std::string bindShapes() { return shapes().bindShapes(beforeRunCalls(), readsInputData()); }

  std::string externCall(const loop::Kernel &k, int &scopeCounter);

  /// The body of run_impl (sub == nullptr) or of a sub-program's function.
  std::string runBody(const loop::Program &p, const std::vector<KernelSignature> &sigs,
                      const loop::SubProgram *sub);

  std::string wrapperSource(const std::vector<KernelSignature> &sigs);

  /// The ABI-4 tables: kernel names by launch index, the run's scratch size, and which
  /// inputs bind_shapes reads the data of.
  std::string deviceTables() const;

  /// Highest shim level among the functions called, from shim.h's release list.
  int shimVersion() const;

  /// Defines a kiln_profile_site_v1 for one timed call and returns its name ("" when the
  /// device prints no profiling hooks).
  std::string profileSite(const std::string &name, const std::string &origin, int kind);

  /// The ONNX nodes a fused group computes, each once, in kernel order.
  static std::string groupOrigin(const loop::KernelGroup &g);

  size_t weightsSize_() const;

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

} // namespace kiln::codegen
