// Run-time shape values (loop/program.h RuntimeShapeValue): lookups and the one rule that
// decides when a value becomes known.
#include "loop/program.h"

#include <algorithm>

namespace kiln::loop {

const RuntimeShapeValue *Program::shapeValue(sym::Expr s) const {
  for (const RuntimeShapeValue &v : shapeValues)
    if (v.symbol == s) return &v;
  return nullptr;
}

bool Program::isInOrderValue(sym::Expr s) const {
  const RuntimeShapeValue *v = shapeValue(s);
  return v && v->phase == ValuePhase::InOrder;
}

bool Program::runsBeforeRun(const Kernel &k) const {
  return std::any_of(k.valueOut.begin(), k.valueOut.end(), [&](const sym::Expr &s) {
    const RuntimeShapeValue *v = s.valid() ? shapeValue(s) : nullptr;
    return v && v->phase == ValuePhase::BeforeRun;
  });
}

namespace {

/// Whether v reads a buffer other than an input of p, or a symbol that is an InOrder value
/// of p (either is known only during the run).
bool readsRunState(const Program &p, const VRef &v) {
  if (v->kind == VKind::Load && v->buf->kind != BufferKind::Input) return true;
  if (v->kind == VKind::Load || v->kind == VKind::SymInt)
    for (const sym::Expr &s : sym::freeSymbols(v->sym))
      if (p.isInOrderValue(s)) return true;
  for (const VRef &a : v->args)
    if (readsRunState(p, a)) return true;
  for (const auto &[s, iv] : v->indirect)
    if (readsRunState(p, iv)) return true;
  return false;
}

} // namespace

bool knownBeforeRun(const Program &p, const VRef &value) {
  return !readsRunState(p, value);
}

ValuePhase shapeValuePhase(const Program &p, const Kernel &valueKernel) {
  if (valueKernel.kind != KernelKind::Pointwise) return ValuePhase::InOrder;
  return knownBeforeRun(p, valueKernel.body) ? ValuePhase::BeforeRun : ValuePhase::InOrder;
}

} // namespace kiln::loop
