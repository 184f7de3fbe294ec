// Pieces every C-like kernel backend shares (Halide's CodeGen_C idea): kernel signatures,
// the scalar value printer over loop-IR value DAGs, literals and stores. codegen/cpu and
// codegen/cuda derive their kernel printers from these; the wrapper uses the signatures.
#pragma once

#include "loop/ops.h"
#include "loop/program.h"

#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::codegen {

/// Maps a model symbol to the C identifier holding its value ("S0"...).
using SymbolNamer = std::function<std::string(sym::Expr)>;

struct KernelSignature {
  std::vector<loop::Buffer *> buffers; // in parameter order
  std::vector<bool> written;
  std::vector<sym::Expr> symbols; // model symbols used, in parameter order
};

/// `[const] T *` for a buffer of t (read-only unless written); strings, whose element type
/// is already `const char *`, read as `const char *const *`.
std::string bufferPointerType(DType t, bool written);

/// C parameter types of a kernel with this signature: `[const] T *` per buffer, then one
/// int64_t per symbol. Declarations and launch argument arrays both come from it.
std::vector<std::string> parameterTypes(const KernelSignature &sig);

/// Buffers (read/written) and model symbols of a kernel group, in parameter order.
KernelSignature signatureOf(const loop::KernelGroup &g,
                            const std::function<bool(sym::Expr)> &isModelSymbol);

/// Compute type used for arithmetic on a dtype (halves compute in float).
const char *computeType(DType t);

/// C text of a scalar op over operands `a` (and `b`); float math uses the compute type.
const char *unaryText(loop::UnaryOp op);
const char *binaryText(loop::BinaryOp op);

/// A C/C++ string literal holding exactly the bytes of s: quotes and backslashes escaped,
/// control and non-ASCII bytes as octal escapes, `?` escaped so no trigraph can form. The
/// one escaper for every name or text that reaches generated source.
std::string cString(const std::string &s);

/// Text safe inside a `//` comment: control bytes, backslashes (line splices) and
/// non-ASCII bytes become '?', and no two '?' follow each other (the second becomes '.'), so
/// a trigraph `??/` cannot splice the next line in a compiler mode that has trigraphs.
std::string commentText(const std::string &s);

/// C literal of a constant value node of type t.
std::string literal(DType t, const loop::VRef &v);

/// The symbols v reads: in its indices, symbol values and gather bindings, nested ones too.
std::set<const sym::Node *> valueSymbols(const loop::VRef &v);

/// Expression storing compute-type value v into buffer b's element type.
std::string storeExpr(const loop::Buffer *b, const std::string &v);

/// Initial accumulator of a reduction (`ACC` stands for the accumulator's C type).
std::string reduceInit(loop::ReduceOp op, DType acc);

/// Prints a value DAG as one `const T tN = ...;` line per node (shared nodes once), with
/// loop variables and indirect indices named through `locals`.
class ValuePrinter {
public:
  ValuePrinter(std::ostringstream &os, std::string indent, const SymbolNamer &model,
               std::map<const sym::Node *, std::string> &locals)
      : os_(os), indent_(std::move(indent)), model_(model), locals_(locals) {}

  /// Index/size expression text with loop variables replaced by their locals.
  std::string symCpp(sym::Expr e);
  /// Emits the lines computing v; returns the name holding it.
  std::string emit(const loop::VRef &v);
  /// Makes `v` print as `text` (a value already loaded, e.g. one lane of a vector load).
  void bind(const loop::VNode *v, std::string text) { names_[v] = std::move(text); }
  /// Print the forms GCC 12 vectorizes (CPU): numeric selects as `kiln_select(c, a, b)` (a bit
  /// blend; `c ? a : b` with a loop-invariant condition stays scalar) and bool loads as bytes
  /// compared with 0 (a `bool` load feeding a select stays scalar: "no vectype").
  void gccVectorForms(bool on) { gccVectorForms_ = on; }
  /// Prefix of the locals it declares ("t" by default), so that two printers in nested
  /// scopes declare distinct names.
  void namePrefix(std::string prefix) { prefix_ = std::move(prefix); }

private:
  std::string build(const loop::VRef &v);

  std::ostringstream &os_;
  std::string indent_;
  const SymbolNamer &model_;
  std::map<const sym::Node *, std::string> &locals_;
  std::map<const loop::VNode *, std::string> names_;
  int counter_ = 0;
  bool gccVectorForms_ = false;
  std::string prefix_ = "t";
};

/// The source of one kernel-group function and how to launch it.
struct LaunchSpec {
  std::vector<sym::Expr> grid; // empty: a plain call (CPU); else grid x, y, z in symbols
  int block[3] = {1, 1, 1};
  int sharedBytes = 0;
};

} // namespace kiln::codegen

namespace kiln::codegen {

/// Statement folding value v (at flat reduction index `flat`) into `acc` (and `best` for
/// arg reductions) the way a sequential scan does: NaN wins for Max/Min; ArgMax/ArgMin keep
/// the first (or, with lastIndex, the last) index of the extreme value.
std::string accumulateStmt(const loop::Kernel &k, const std::string &v, const std::string &flat);

/// Statement merging another thread's partial (`ov`, index `ob`) into (`acc`, `best`) so
/// that any combining order gives the sequential scan's result (up to float rounding).
std::string combineStmt(const loop::Kernel &k, const std::string &ov, const std::string &ob);

} // namespace kiln::codegen
