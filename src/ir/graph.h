// Graph IR: values with a dtype and a symbolic shape, ONNX-level ops, constants.
// Values may also carry compile-time contents: full data (constants) or, for small
// int64 shape tensors, symbolic element values (so Shape→Gather→Reshape chains stay
// exact for dynamic dims instead of being specialised).
#pragma once

#include "ir/byte_buffer.h"
#include "ir/dtype.h"
#include "sym/expr.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace kiln::ir {

using Shape = std::vector<sym::Expr>;

/// Host-side tensor data, row-major. Strings are stored in `strings`.
struct TensorData {
  DType dtype = DType::Float32;
  std::vector<int64_t> dims;
  ByteBuffer bytes; // owned, or a view into the mapped model file
  std::vector<std::string> strings;
  int64_t numel() const;
  template <typename T> const T *as() const { return reinterpret_cast<const T *>(bytes.data()); }
  template <typename T> T *as() { return reinterpret_cast<T *>(bytes.data()); }
  /// Element i converted to double / int64 (numeric dtypes only).
  double getDouble(int64_t i) const;
  int64_t getInt(int64_t i) const;
};

class Graph;

struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats, Strings, Tensor, Graph };
  Kind kind = Kind::Int;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  std::shared_ptr<TensorData> tensor;
  std::shared_ptr<Graph> graph;
};

struct Node;

struct Value {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  bool shapeKnown = false;
  std::shared_ptr<const TensorData> data;        // compile-time contents
  std::optional<std::vector<sym::Expr>> symData; // int64 contents as sym exprs
  Node *producer = nullptr;
  std::vector<Node *> users;
  bool isGraphInput = false;
  bool isGraphOutput = false;
  int rank() const { return static_cast<int>(shape.size()); }
};

/// The newest opset of the default ONNX domain kiln knows (ONNX 1.21). A node of a model that
/// imports a newer one is refused naming its op (lower::Lowerer::lowerNode).
inline constexpr int kMaxOnnxOpset = 26;

struct Node {
  std::string op;
  std::string domain;
  std::string name;
  int opset = 0;
  std::vector<Value *> inputs; // nullptr = absent optional input
  std::vector<Value *> outputs;
  std::map<std::string, Attribute> attrs;
  bool dead = false;

  Value *input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  bool hasAttr(const std::string &k) const { return attrs.count(k) != 0; }
  int64_t attrInt(const std::string &k, int64_t dflt) const;
  float attrFloat(const std::string &k, float dflt) const;
  std::string attrString(const std::string &k, const std::string &dflt) const;
  std::vector<int64_t> attrInts(const std::string &k, std::vector<int64_t> dflt = {}) const;
  std::vector<std::string> attrStrings(const std::string &k) const;
  std::vector<float> attrFloats(const std::string &k) const;
  /// "node 'name' (Op, opset N)" for error messages.
  std::string describe() const;
};

/// A run-time check that two dim expressions agree (e.g. a Reshape to a shape read from
/// input data keeps the element count, or a dim specialised to its declared value); the
/// wrapper tests it before running, or during the run once the values it names are known.
struct ShapeGuard {
  sym::Expr lhs, rhs;
  std::string what;
};

/// A subgraph's use of a value from an enclosing graph (an ONNX outer-scope name):
/// `inner` stands for it inside the subgraph, and the node owning the subgraph lists
/// the outer value as its input `nodeInput` (after the ONNX inputs), so DCE, CSE and
/// ordering in the enclosing graph see the dependency.
struct Capture {
  Value *inner = nullptr;
  size_t nodeInput = 0;
};

class Graph {
public:
  explicit Graph(sym::Context &ctx) : ctx_(&ctx) {}
  sym::Context &ctx() const { return *ctx_; }

  Value *newValue(const std::string &name);
  Node *newNode(const std::string &op, const std::string &name);
  void connect(Node *n); // registers n as user of its inputs, producer of its outputs
  Value *findValue(const std::string &name) const;

  std::vector<Value *> inputs, outputs;
  /// Indices into `outputs` declared optional-typed: each also reports `<name>.has_value`.
  std::set<size_t> optionalOutputs;
  /// Indices into `outputs` declared sequence-typed (subgraphs: If branches yielding lists).
  std::set<size_t> sequenceOutputs;
  /// Subgraphs: indices into `inputs` that are sequence-typed (loop-carried lists).
  std::set<size_t> sequenceInputs;
  /// Inference only: the item shapes of sequence-typed inputs (see inferAndFold).
  std::map<const Value *, std::vector<Shape>> sequenceInputItems;
  std::deque<std::unique_ptr<Node>> nodes; // topological order
  std::deque<std::unique_ptr<Value>> values;
  std::string modelPath;
  std::vector<ShapeGuard> guards;
  std::vector<Capture> captures; // subgraphs only
  bool isSubgraph = false;       // an If/Loop/Scan body, compiled into its own program

  /// Removes dead nodes and recomputes users.
  void compact();

private:
  sym::Context *ctx_;
  std::map<std::string, Value *> byName_;
};

std::string shapeToString(const Shape &s);
/// Textual dump (used by --print-after-all and golden tests).
std::string dump(const Graph &g);
/// Deep copy of values, nodes and captures (a subgraph is compiled from a fresh copy each
/// time its node is lowered); nested subgraph attributes are shared, not copied.
std::unique_ptr<Graph> clone(const Graph &g);
/// Checks structural invariants; throws InternalError naming the broken one.
void verify(const Graph &g);

} // namespace kiln::ir
