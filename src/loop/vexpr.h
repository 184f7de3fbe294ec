// Loop IR value expressions: the scalar body of a kernel, evaluated at one point of
// the iteration space whose loop variables are sym symbols. Immutable and shared; a
// node used twice is computed once by the printer.
#pragma once

#include "ir/dtype.h"
#include "loop/ops.h"
#include "sym/expr.h"

#include <map>
#include <memory>
#include <vector>

namespace kiln::loop {

struct Buffer;
struct VNode;
using VRef = std::shared_ptr<const VNode>;

enum class VKind {
  Const,  // literal (fval for floats, ival otherwise)
  SymInt, // an integer sym expression used as a value (sizes, loop indices)
  Load,   // buf[index]; `indirect` binds symbols to loaded values first
  Unary,
  Binary,
  Select, // args[0] ? args[1] : args[2]
  Cast,   // args[0] converted to dtype (`bits`: its bits reinterpreted, same size)
};

struct VNode {
  VKind kind;
  DType dtype;
  double fval = 0;
  int64_t ival = 0;
  sym::Expr sym; // SymInt value, Load index
  Buffer *buf = nullptr;
  std::vector<std::pair<sym::Expr, VRef>> indirect;
  UnaryOp uop = UnaryOp::Neg;
  BinaryOp bop = BinaryOp::Add;
  std::vector<VRef> args;
  bool bits = false; // Cast: reinterpret the bits (ONNX BitCast) instead of converting
};

// Constructors fold constants and sym arithmetic as they build, so shape tensors
// computed from Shape() stay symbolic expressions rather than opaque loads.
VRef constant(DType t, double v);
VRef constantInt(DType t, int64_t v);
VRef symInt(sym::Expr e, DType t = DType::Int64);
VRef load(Buffer *b, sym::Expr index, std::vector<std::pair<sym::Expr, VRef>> indirect = {});
VRef unary(UnaryOp op, VRef a);
VRef binary(BinaryOp op, VRef a, VRef b);
VRef select(VRef c, VRef a, VRef b);
VRef cast(VRef a, DType to);
/// a's bits as a value of `to` (same size; not float16/bfloat16, which compute as float).
VRef bitcast(VRef a, DType to);

bool isConst(const VRef &v);
/// Numeric constant value as double (Const only).
double constAsDouble(const VRef &v);
/// If v is an integer known as a sym expression (Const int or SymInt), returns it.
std::optional<sym::Expr> asSym(const VRef &v, sym::Context &ctx);

/// Attaches `var := value` to every load in v whose index, or whose own index bindings (a
/// gather of a gather), mention var (gather-style indirect indexing: the index symbol is
/// bound to a loaded value at run time).
VRef bindIndirect(const VRef &v, sym::Expr var, const VRef &value);

/// Whether some load in v binds index symbols to loaded values (bindIndirect). Such symbols
/// are bound once per element in generated code, so the body cannot be replicated per tap
/// or per partial sum.
bool hasIndirect(const VRef &v);

/// Replaces symbols in every index and sym value of v (e.g. reduction variables by
/// constants when a small reduction is unrolled).
VRef substituteSyms(const VRef &v, const std::map<const sym::Node *, sym::Expr> &repl);

/// Readable one-line form for dumps and tests.
std::string toString(const VRef &v);

} // namespace kiln::loop
