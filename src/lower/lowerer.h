// Graph IR → loop IR. Walks nodes in order, calls each op's lowering, and keeps a
// lazy LTensor per value. Realization decisions (what becomes a buffer) live here.
#pragma once

#include "sched/target.h"

#include "ir/graph.h"
#include "lower/tensor.h"

#include <map>
#include <set>

namespace kiln::lower {

class Lowerer;

/// An ONNX sequence value: a list of tensors fixed at compile time (its length and the
/// positions used on it must be compile-time known). `dtype` is the element type, kept
/// for empty sequences.
struct LSequence {
  DType dtype = DType::Float32;
  std::vector<LTensor> items;
};

/// What an op's lowering function sees: its node, inputs, and the tools to build.
class OpCtx {
public:
  OpCtx(Lowerer &l, const ir::Node &n) : node(n), l_(l) {}
  Lowerer &lowerer() { return l_; }
  sym::Context &ctx();
  loop::Program &prog();

  const ir::Node &node;
  size_t numInputs() const { return node.inputs.size(); }
  bool has(size_t i) const { return node.input(i) != nullptr; }
  LTensor in(size_t i);
  /// Input i as a sequence (fails if it is a tensor).
  const LSequence &inSeq(size_t i);
  bool isSeqIn(size_t i) const;
  /// Whether input i is an empty optional (absent inputs are not).
  bool isNoneIn(size_t i) const;
  /// Compile-time contents of input i (nullptr if not known).
  const ir::TensorData *constIn(size_t i);
  /// Input i as a list of integers known at compile time (possibly symbolic).
  std::optional<std::vector<sym::Expr>> symIn(size_t i);
  /// Like symIn but fails with a clear message when not compile-time known. With
  /// `runtimeMin`, a small integer graph input is accepted instead: its elements become
  /// run-time shape values named after it (a value kernel loading them, run before the run,
  /// checked to lie in [runtimeMin, 2^31-1]); values computed from inputs become run-time
  /// values too (runtimeSymbols), and with a valid `limit` so do values the model computes
  /// (computed in program order, checked against [runtimeMin, limit]).
  std::vector<sym::Expr> requireSymIn(size_t i, const char *what,
                                      std::optional<int64_t> runtimeMin = std::nullopt,
                                      sym::Expr limit = sym::Expr());
  /// requireSymIn of a scalar (or one-element) input: fails unless it holds exactly one value.
  sym::Expr requireScalarSymIn(size_t i, const char *what,
                               std::optional<int64_t> runtimeMin = std::nullopt,
                               sym::Expr limit = sym::Expr());
  std::vector<int64_t> requireIntsIn(size_t i, const char *what);
  /// The value of a dim the lowering needs as a constant (a recurrence length, a kernel
  /// size). A symbolic dim with a hint (its declared static value) is specialised to it
  /// with a run-time guard; otherwise this fails naming `what`.
  int64_t requireStatic(sym::Expr e, const char *what);
  /// Shape values computed at run time by one value kernel (loop::RuntimeShapeValue). Each
  /// element of `values` (rank <= 1, integer) becomes a symbol named by `tag`; its phase
  /// follows from what the kernel reads (loop::shapeValuePhase):
  ///  - model inputs only (elementwise math): bind_shapes evaluates it before the run and
  ///    checks it against [lo, hi];
  ///  - anything the model computes: the kernel runs in program order and each value is
  ///    checked during the run against [lo, limit] (`limits`: one for all elements or one
  ///    each; they may use earlier in-order values). Buffers shaped by it are allocated for
  ///    the limit's value before the run. Without limits this fails naming the op: kiln
  ///    knows no bound to allocate for.
  std::vector<sym::Expr> runtimeSymbols(const LTensor &values, const char *tag, int64_t lo,
                                        int64_t hi, const std::vector<sym::Expr> &limits = {});
  /// A size the run computes (an extern writes it via ExternArg::SymbolOut, a Loop its
  /// iteration count), at most
  /// `bound`; buffers shaped by it are allocated for the bound.
  sym::Expr lateSymbol(const char *tag, sym::Expr bound);
  /// Whether runtimeSymbols would compute `value` before the run (loop::shapeValuePhase): it
  /// reads only model inputs, constants at fixed offsets and values known before the run.
  bool knownBeforeRun(loop::VRef value);
  /// One run-time scalar shape value (see runtimeSymbols).
  sym::Expr runtimeSymbol(loop::VRef value, const char *tag, int64_t lo, int64_t hi);
  /// Like requireStatic, but returns nullopt instead of failing.
  std::optional<int64_t> specialize(sym::Expr e, const char *what);
  void out(size_t i, LTensor t);
  void outSeq(size_t i, LSequence s);
  /// Output i is an empty optional.
  void outNone(size_t i);
  /// Records that a and b must be equal at run time (checked before the run) unless it is
  /// provable now; fails at compile time if they are known to differ.
  void guardEqual(sym::Expr a, sym::Expr b, const std::string &what);

  /// Builds a pointwise LTensor from a scalar function of the index.
  LTensor pointwise(DType t, ir::Shape shape, Loader fn, bool cheap = false);
  /// Materialises t into a contiguous buffer (a Pointwise kernel) unless it is one.
  LTensor realize(const LTensor &t);
  /// Reduction over `axes` of t with body transform; keepdims keeps size-1 axes.
  LTensor reduce(const LTensor &t, std::vector<int> axes, bool keepdims, loop::ReduceOp op,
                 DType acc, const std::function<loop::VRef(loop::VRef)> &pre = nullptr);
  /// Records an extern kernel; returns the kernel so the caller can fill it.
  loop::Kernel *externKernel(loop::ExternKind kind);
  [[noreturn]] void unsupported(const std::string &what);
  int normAxis(int64_t axis, int rank);

private:
  /// The elements of small integer graph input v as values known before the run (nullopt
  /// when v stands for a value the model computes, as an inlined body's formal may).
  std::optional<std::vector<sym::Expr>> inputElementValues(const ir::Value *v, int64_t n,
                                                           int64_t lo);
  void addBeforeRunValue(sym::Expr s, int64_t element);
  sym::Expr addInOrderValue(const std::string &name, int64_t lo, int64_t hi, sym::Expr bound,
                            sym::Expr limit, int64_t element);
  Lowerer &l_;
};

using LowerFn = void (*)(OpCtx &);

struct OpInfo {
  const char *name;
  int sinceOpset;
  LowerFn lower;
};
/// The registry of supported ops (default ONNX domain). One entry per op.
const std::vector<OpInfo> &opRegistry();
const OpInfo *findOp(const std::string &op);

class Lowerer {
public:
  Lowerer(ir::Graph &g, loop::Program &p, sched::Target t = sched::Target::cpu())
      : graph(g), prog(p), target(std::move(t)) {}
  ir::Graph &graph;
  loop::Program &prog;
  sched::Target target; // per-device lowering choices (conv layout)
  std::map<const ir::Value *, LTensor> env;
  std::map<const ir::Value *, LSequence> seqEnv; // sequence-typed values
  std::set<const ir::Value *> noneEnv;           // empty optionals (present ones are plain)

  LTensor valueTensor(const ir::Value *v);
  void lowerNode(const ir::Node &n);
  /// Lowers the whole graph: inputs, constants, nodes, then writes outputs.
  void lowerGraph();
  /// The graph outputs as Output buffers (a realized result is taken over, anything else
  /// copied); the last step of lowerGraph.
  void writeOutputs();
  /// Removes graph guards naming a value read from input data that no lowered node computes.
  void dropGuardsOfUnloweredValues();
  /// Builds a fresh loop variable of range [0, size).
  sym::Expr newVar(const char *prefix, sym::Expr size);
  loop::Buffer *constantBuffer(const ir::Value *v);

private:
  std::map<const ir::Value *, loop::Buffer *> constBuffers_;
};

} // namespace kiln::lower
