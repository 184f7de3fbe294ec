// Helpers shared by the control-flow lowerings (ops_control.cpp: If and Loop; ops_scan.cpp:
// Scan): buffers and iteration symbols for the Call kernel, and the kernel itself.
#pragma once

#include "lower/ops_common.h"
#include "lower/subgraph.h"

namespace kiln::lower {

inline loop::Buffer *bufferOf(OpCtx &c, size_t i) {
  return c.realize(c.in(i)).buffer;
}

inline loop::Buffer *newBuffer(OpCtx &c, DType t, ir::Shape s, const std::string &hint) {
  return c.prog().newBuffer(t, std::move(s), loop::BufferKind::Intermediate, hint);
}

/// Symbol for an iteration number in [0, trips).
inline sym::Expr iterationSymbol(sym::Context &ctx, const char *prefix, sym::Expr trips) {
  int64_t hi = INT32_MAX;
  if (trips.valid()) {
    sym::Range r = sym::rangeOf(trips);
    if (r.hi < INT64_MAX) hi = std::max<int64_t>(r.hi - 1, 0);
  }
  return ctx.freshSymbol(prefix, 0, hi);
}

/// Adds the bodies and their captured buffers to cf and records the Call kernel. Every
/// parent buffer the call touches must be realized before (its kernels run first).
inline void emitCall(OpCtx &c, const std::shared_ptr<loop::ControlFlow> &cf,
                     std::vector<CompiledBody> &bodies) {
  for (CompiledBody &b : bodies) {
    std::vector<loop::Buffer *> caps;
    for (size_t i : b.captureInputs)
      caps.push_back(bufferOf(c, i));
    cf->reads.insert(cf->reads.end(), caps.begin(), caps.end());
    cf->captures.push_back(std::move(caps));
    cf->bodies.push_back(std::move(b.sub));
  }
  loop::Kernel *k = c.prog().newKernel(loop::KernelKind::Call);
  k->origin = c.node.name;
  k->call = cf;
  c.prog().calls.push_back(cf);
}

inline std::shared_ptr<loop::ControlFlow> newControlFlow(OpCtx &c, loop::ControlFlow::Op op) {
  auto cf = std::make_shared<loop::ControlFlow>();
  cf->op = op;
  cf->origin = c.node.describe();
  return cf;
}

inline void requireBool(OpCtx &c, DType t, const char *what) {
  if (t != DType::Bool) fail("{}: {} must be bool, got {}", c.node.describe(), what, dtypeName(t));
}

} // namespace kiln::lower
