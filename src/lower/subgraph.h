// Compiling a subgraph attribute (If branches, Loop and Scan bodies) into its own
// loop::SubProgram: a fresh copy of the subgraph goes through the graph pipeline, is
// lowered into a separate Program and scheduled, so it becomes its own function in the
// wrapper with its own memory plan.
#pragma once

#include "loop/control_flow.h"
#include "lower/lowerer.h"

#include <memory>

namespace kiln::lower {

/// How a node binds one formal input of its subgraph.
struct FormalInput {
  DType dtype = DType::Float32;
  ir::Shape shape; // as the body sees it at one call
  /// Known contents (the iteration number as a symbol): folded in, not passed.
  std::optional<std::vector<sym::Expr>> contents;
  /// A scan input: the caller passes the whole tensor of this shape, and the body reads
  /// element idx of its slice at whole-index `slice(idx)`.
  std::optional<ir::Shape> whole;
  std::function<Index(const Index &)> slice;
};

struct CompiledBody {
  std::unique_ptr<loop::SubProgram> sub;
  /// The node inputs (outer-scope values known only at run time) passed after the
  /// formals, in the sub-program's input order.
  std::vector<size_t> captureInputs;
  /// Per body output: the formal input it passes on unchanged (itself or through
  /// Identity), or -1; and its contents when known at compile time.
  std::vector<int> passThrough;
  std::vector<std::shared_ptr<const ir::TensorData>> known;
};

/// Number of a node's ONNX inputs: the ones before its subgraphs' captured values.
size_t explicitInputs(const ir::Node &n);
/// The subgraph attribute `name` of the node; fails if it is missing.
const ir::Graph &graphAttr(OpCtx &c, const char *name);

/// Compiles `body` with its formals bound as given. Captured values known at compile
/// time become constants or symbolic values inside; the others are passed as buffers.
/// The sub-program's constants join the parent program's.
CompiledBody compileBody(OpCtx &c, const ir::Graph &body, const std::string &name,
                         const std::vector<FormalInput> &formals);

/// Lowers `body` straight into the node's program, as if its nodes were the parent's, with
/// its formal inputs bound to `formals`, and returns its outputs: the taken branch of an
/// If whose condition is known at compile time, one SequenceMap iteration.
std::vector<LTensor> inlineBody(OpCtx &c, const ir::Graph &body, const std::string &name,
                                const std::vector<LTensor> &formals = {});

/// One output of an inlined body: a tensor, or a sequence (a compile-time list).
struct BodyOutput {
  std::optional<LTensor> tensor;
  std::optional<LSequence> sequence;
};

/// A value bound to a formal input of an inlined body: a tensor, a sequence, or a
/// compile-time constant (an unrolled Loop's iteration number, folded inside the body).
using BodyValue = BodyOutput;
struct BodyFormal {
  BodyValue value;
  std::shared_ptr<const ir::TensorData> constant;
};

/// inlineBody for bodies whose inputs and outputs may be sequences.
std::vector<BodyOutput> inlineBodyOutputs(OpCtx &c, const ir::Graph &body, const std::string &name,
                                          const std::vector<BodyFormal> &formals = {});

/// Requires output j of `sub` to have `shape` at every call: provable now, else a guard
/// checked at each call; fails now when the dims are known to differ.
void requireOutputShape(OpCtx &c, loop::SubProgram &sub, size_t j, const ir::Shape &shape,
                        const std::string &what);

/// `shape` at the first call: the per-call symbols `locals` set to 0.
ir::Shape firstCallShape(const ir::Shape &shape, const std::vector<sym::Expr> &locals);

} // namespace kiln::lower
