// Control flow in the loop IR: a Call kernel runs sub-programs (each a subgraph lowered
// on its own, with its own buffers, kernels and memory plan) under host control flow
// that the wrapper prints as real C++: an `if`, or a `for` over iterations with
// loop-carried values ping-ponged between two buffers and scan outputs written at their
// iteration's offset.
#pragma once

#include "loop/program.h"

namespace kiln::loop {

/// A subgraph lowered into its own program. Its Input buffers are what the Call passes
/// (in prog.inputs order), its Output buffers where the call's results go.
struct SubProgram {
  std::string name; // "Loop_0 body", for comments and messages
  Program prog;
  /// Checked at each call before any kernel runs; may mention the iteration symbols
  /// (e.g. a loop-carried value keeps its shape across iterations).
  std::vector<ir::ShapeGuard> guards;
};

/// The parent side of a Call kernel. Sub-program inputs/outputs, in order:
///   If:   inputs = captures;                    outputs = the node's outputs
///   Loop: inputs = cond, carried..., captures;  outputs = cond, carried..., scan outputs...
///   Scan: inputs = carried..., scan inputs (whole), captures;
///         outputs = carried..., scan outputs...
struct ControlFlow {
  enum class Op { If, Loop, Scan };
  Op op = Op::If;
  std::string origin;                              // node description for messages
  std::vector<std::unique_ptr<SubProgram>> bodies; // If: then, else; Loop/Scan: body
  std::vector<std::vector<Buffer *>> captures;     // per body: parent buffers, after formals
  Buffer *cond = nullptr; // If: the condition; Loop: initial condition (nullptr: true)

  // Loop and Scan. The body runs for iter = 0 .. trips-1 (a Loop also stops when its
  // condition turns false), once per batch index (Scan opset 8; otherwise batches = 1).
  sym::Expr trips;              // invalid: read from tripBuffer, or none (Loop)
  sym::Expr iterations;         // Loop: an in-order shape value, the iterations run
  Buffer *tripBuffer = nullptr; // Loop without scan outputs: M read at run time
  sym::Expr iter, batch;        // symbols the body reads (batch: Scan opset 8 only)
  sym::Expr batches;            // invalid: 1
  struct Carried {
    Buffer *init = nullptr, *out = nullptr; // [batches..., state]; out gets the final value
    Buffer *spare = nullptr;                // one state: the other half of the ping-pong
  };
  std::vector<Carried> carried;
  struct Stacked {
    Buffer *buf = nullptr; // [batches..., trips, per-iteration shape...]
    bool reverse = false;  // iteration it lands at trips-1-it
  };
  std::vector<Stacked> scanOutputs;
  std::vector<Buffer *> scanInputs; // Scan: passed whole; the body indexes them

  std::vector<Buffer *> reads, writes; // for liveness (writes include the spares)

  /// If (top level only): an output dim the branches size differently from values they
  /// compute (e.g. NMS's kept count in one branch, 0 in the other) is a late symbol of the
  /// model, bounded by the larger branch bound; after the taken branch ran, the call sets
  /// it from that branch's dim expression (which reads the branch's own late symbols).
  struct LateDim {
    sym::Expr symbol, bound;
    sym::Expr perBody[2]; // then, else
  };
  std::vector<LateDim> lateDims;
  /// Late symbols the bodies set (also model late symbols): the call copies them back.
  std::vector<std::vector<sym::Expr>> bodyLate;
};

/// One-line description for loop IR dumps, followed by the bodies' dumps.
std::string describeCall(const ControlFlow &cf);

/// Every sub-program under p (depth first, inner ones before the program calling them).
void collectSubPrograms(const Program &p, std::vector<const SubProgram *> &out);

} // namespace kiln::loop
