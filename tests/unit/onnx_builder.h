// Tiny in-memory ONNX model builder for unit tests (onnx::ModelProto → bytes → importer).
#pragma once

#include "frontend/onnx/importer.h"

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

namespace kiln::test {

class OnnxBuilder {
public:
  explicit OnnxBuilder(int opset = 17) {
    model_.set_ir_version(8);
    auto *o = model_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    model_.mutable_graph()->set_name("g");
  }
  onnx::GraphProto &graph() { return *model_.mutable_graph(); }

  /// dims: a number, or a string for a dim_param.
  struct Dim {
    Dim(int64_t v) : value(v) {}
    Dim(const char *p) : param(p) {}
    int64_t value = 0;
    std::string param;
  };
  static void setType(onnx::ValueInfoProto *vi, const std::string &name, int elemType,
                      const std::vector<Dim> &dims) {
    vi->set_name(name);
    auto *tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elemType);
    auto *sh = tt->mutable_shape();
    for (const Dim &d : dims) {
      auto *dp = sh->add_dim();
      if (d.param.empty())
        dp->set_dim_value(d.value);
      else
        dp->set_dim_param(d.param);
    }
  }
  void input(const std::string &name, const std::vector<Dim> &dims,
             int elemType = onnx::TensorProto::FLOAT) {
    setType(graph().add_input(), name, elemType, dims);
  }
  void output(const std::string &name, const std::vector<Dim> &dims,
              int elemType = onnx::TensorProto::FLOAT) {
    setType(graph().add_output(), name, elemType, dims);
  }
  /// Output whose shape is left to inference.
  void outputUntyped(const std::string &name, int elemType = onnx::TensorProto::FLOAT) {
    auto *vi = graph().add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(elemType);
  }
  void initFloat(const std::string &name, const std::vector<int64_t> &dims,
                 const std::vector<float> &vals) {
    auto *t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims)
      t->add_dims(d);
    for (float v : vals)
      t->add_float_data(v);
  }
  void initInt64(const std::string &name, const std::vector<int64_t> &dims,
                 const std::vector<int64_t> &vals) {
    auto *t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims)
      t->add_dims(d);
    for (int64_t v : vals)
      t->add_int64_data(v);
  }
  onnx::NodeProto *node(const std::string &op, const std::vector<std::string> &ins,
                        const std::vector<std::string> &outs, const std::string &name = {}) {
    auto *n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(graph().node_size()) : name);
    for (auto &i : ins)
      n->add_input(i);
    for (auto &o : outs)
      n->add_output(o);
    return n;
  }
  static void attrInts(onnx::NodeProto *n, const std::string &k, const std::vector<int64_t> &v) {
    auto *a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v)
      a->add_ints(x);
  }
  static void attrInt(onnx::NodeProto *n, const std::string &k, int64_t v) {
    auto *a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attrFloat(onnx::NodeProto *n, const std::string &k, float v) {
    auto *a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  std::unique_ptr<ir::Graph> import(sym::Context &ctx, frontend::ImportOptions opts = {}) {
    std::string bytes;
    model_.SerializeToString(&bytes);
    return frontend::importModelBytes(bytes, ".", "test.onnx", ctx, opts);
  }

private:
  onnx::ModelProto model_;
};

/// Small deterministic weights: scale * (0.01 * (i % period) + offset).
inline std::vector<float> ramp(size_t n, int period, float offset, float scale = 1.f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = scale * (0.01f * static_cast<float>(i % period) + offset);
  return v;
}

inline int countOp(const ir::Graph &g, const std::string &op) {
  int n = 0;
  for (auto &node : g.nodes)
    if (!node->dead && node->op == op) ++n;
  return n;
}

inline int liveNodes(const ir::Graph &g) {
  int n = 0;
  for (auto &node : g.nodes)
    n += !node->dead;
  return n;
}

} // namespace kiln::test
