// Symbolic integer expressions: hash-consed and simplified on construction, so two
// equal expressions are the same pointer. Dims, loop indices and index arithmetic are
// all Exprs; loop variables are symbols too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::sym {

#define KILN_SYM_KINDS(X)                                                                          \
  X(Const)    /* integer literal */                                                                \
  X(Symbol)   /* named unknown with a known range */                                               \
  X(Add)      /* canonical sum: sorted terms, constant last */                                     \
  X(Mul)      /* canonical product: constant coefficient first */                                  \
  X(FloorDiv) /* floor(a / b), b > 0 */                                                            \
  X(Mod)      /* a - b * floor(a / b), b > 0 */                                                    \
  X(Min)                                                                                           \
  X(Max)

enum class Kind : uint8_t {
#define X(k) k,
  KILN_SYM_KINDS(X)
#undef X
};
const char *kindName(Kind k);

class Context;

/// Closed integer interval; INT64_MIN/INT64_MAX mean unbounded.
struct Range {
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  bool isConst() const { return lo == hi; }
};

struct Node {
  Kind kind;
  int64_t value = 0; // Const: the value
  std::string name;  // Symbol: the name
  std::vector<const Node *> ops;
  uint64_t id = 0; // creation order: a deterministic total order
  size_t hash = 0;
  Context *ctx = nullptr;
};

/// A handle to an immutable, interned expression. Equality is pointer equality.
class Expr {
public:
  Expr() = default;
  explicit Expr(const Node *n) : n_(n) {}
  const Node *node() const { return n_; }
  const Node *operator->() const { return n_; }
  bool valid() const { return n_ != nullptr; }
  Kind kind() const { return n_->kind; }
  bool isConst() const { return n_->kind == Kind::Const; }
  bool isConst(int64_t v) const { return isConst() && n_->value == v; }
  std::optional<int64_t> constValue() const {
    if (!isConst()) return std::nullopt;
    return n_->value;
  }
  bool isSymbol() const { return n_->kind == Kind::Symbol; }
  const std::string &name() const { return n_->name; }
  Context &ctx() const { return *n_->ctx; }
  size_t numOps() const { return n_->ops.size(); }
  Expr op(size_t i) const { return Expr(n_->ops[i]); }
  bool operator==(const Expr &o) const { return n_ == o.n_; }
  bool operator!=(const Expr &o) const { return n_ != o.n_; }
  bool operator<(const Expr &o) const { return n_->id < o.n_->id; }

private:
  const Node *n_ = nullptr;
};

/// Owns the intern table and the symbol ranges. One per compilation; no globals.
class Context {
public:
  Context();
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  Expr constant(int64_t v);
  /// Returns the symbol `name`, creating it with range [lo, hi] the first time.
  Expr symbol(const std::string &name, int64_t lo = 0, int64_t hi = INT64_MAX);
  /// A new symbol never returned before (name = prefix + counter), e.g. loop variables.
  Expr freshSymbol(const std::string &prefix, int64_t lo, int64_t hi);
  std::optional<Expr> findSymbol(const std::string &name) const;
  void setRange(Expr symbol, Range r);
  Range symbolRange(Expr symbol) const;
  /// A value the symbol is expected to take (the static dim a model declared before
  /// --all-dims-dynamic made it symbolic). Lowerings that need a static value may
  /// specialise on it, guarded at run time.
  void setHint(Expr symbol, int64_t value);
  std::optional<int64_t> hint(Expr symbol) const;

  Expr add(Expr a, Expr b);
  Expr mul(Expr a, Expr b);
  Expr floorDiv(Expr a, Expr b);
  Expr mod(Expr a, Expr b);
  Expr min(Expr a, Expr b);
  Expr max(Expr a, Expr b);

  /// Interned node constructor without simplification (used by the simplifier).
  Expr make(Kind k, std::vector<const Node *> ops, int64_t value = 0, std::string name = {});

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator+(Expr a, int64_t b);
Expr operator-(Expr a, int64_t b);
Expr operator*(Expr a, int64_t b);
Expr operator-(Expr a);
Expr floorDiv(Expr a, Expr b);
Expr floorDiv(Expr a, int64_t b);
Expr mod(Expr a, Expr b);
Expr mod(Expr a, int64_t b);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);

/// Interval of values the expression can take given symbol ranges.
Range rangeOf(Expr e);
/// True when a - b is known to be >= 0 / > 0 / == 0 for every symbol value.
bool provablyGE(Expr a, Expr b);
bool provablyEqual(Expr a, Expr b);

/// Evaluates with symbol values; throws UserError if a symbol is unbound.
int64_t evaluate(Expr e, const std::map<std::string, int64_t> &env);
/// Substitutes symbols by expressions (others unchanged), re-simplifying.
Expr substitute(Expr e, const std::map<const Node *, Expr> &repl);
/// All symbols the expression mentions, in id order.
std::vector<Expr> freeSymbols(Expr e);

/// Human-readable form, e.g. "2*batch + 1".
std::string toString(Expr e);
/// C/C++ source; names maps each symbol to the C identifier that holds its value.
std::string toCpp(Expr e, const std::function<std::string(Expr)> &names);

} // namespace kiln::sym
