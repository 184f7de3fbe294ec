#include "passes/match_gelu.h"

#include "kiln/shim.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace kiln::passes {

namespace {

/// The value of a one-element float32 constant.
bool scalarOf(const ir::Value *v, double &out) {
  if (!v || !v->data || v->data->dtype != DType::Float32 || v->data->numel() != 1) return false;
  out = v->data->as<float>()[0];
  return true;
}

bool near(double got, double want) {
  return std::fabs(got - want) <= 1e-6 * std::fabs(want);
}

bool onnxDomain(const ir::Node *n) {
  return n->domain.empty() || n->domain == "ai.onnx";
}

/// The live node computing v with op `op` (default domain), or nullptr.
ir::Node *producedBy(const ir::Value *v, const char *op) {
  ir::Node *n = v ? v->producer : nullptr;
  if (!n || n->dead || n->op != op || !onnxDomain(n) || n->outputs.size() != 1) return nullptr;
  return n;
}

/// v flattened as a product: factors that are not Mul (or Div by a constant) outputs, and the
/// product of the constants among them. The Mul/Div nodes walked go to `nodes`.
struct Product {
  std::vector<ir::Value *> factors;
  double scale = 1.0;
};

void flatten(ir::Value *v, const ir::Value *x, Product &p, std::vector<ir::Node *> &nodes) {
  double c;
  if (v != x && scalarOf(v, c)) {
    p.scale *= c;
    return;
  }
  if (ir::Node *mul = v != x ? producedBy(v, "Mul") : nullptr; mul && mul->inputs.size() == 2) {
    nodes.push_back(mul);
    flatten(mul->inputs[0], x, p, nodes);
    flatten(mul->inputs[1], x, p, nodes);
    return;
  }
  ir::Node *div = v != x ? producedBy(v, "Div") : nullptr;
  if (div && div->inputs.size() == 2 && scalarOf(div->inputs[1], c) && c != 0.0) {
    nodes.push_back(div);
    p.scale /= c;
    flatten(div->inputs[0], x, p, nodes);
    return;
  }
  p.factors.push_back(v);
}

/// The operand of `add` other than the constant `want` (1 + f, in either order).
ir::Value *besideConstant(ir::Node *add, double want) {
  if (!add || add->inputs.size() != 2) return nullptr;
  double c;
  for (int i = 0; i < 2; ++i)
    if (scalarOf(add->inputs[i], c) && near(c, want)) return add->inputs[1 - i];
  return nullptr;
}

bool onlyX(const Product &p, const ir::Value *x, size_t times) {
  return p.factors.size() == times &&
         std::all_of(p.factors.begin(), p.factors.end(), [&](ir::Value *f) { return f == x; });
}

/// x^3 as Pow(x, 3) or as a product x * x * x.
bool isCube(ir::Value *v, const ir::Value *x, std::vector<ir::Node *> &nodes) {
  double e;
  if (ir::Node *pow = producedBy(v, "Pow");
      pow && pow->input(0) == x && scalarOf(pow->input(1), e) && e == 3.0) {
    nodes.push_back(pow);
    return true;
  }
  Product p;
  std::vector<ir::Node *> walked;
  flatten(v, x, p, walked);
  if (!onlyX(p, x, 3) || p.scale != 1.0 || walked.empty()) return false;
  nodes.insert(nodes.end(), walked.begin(), walked.end());
  return true;
}

/// The argument of erf is x / sqrt 2.
bool isErfArgument(ir::Value *arg, const ir::Value *x, std::vector<ir::Node *> &nodes) {
  Product p;
  flatten(arg, x, p, nodes);
  return onlyX(p, x, 1) && near(p.scale, M_SQRT1_2);
}

/// The argument of tanh is sqrt(2/pi) * (x + 0.044715 * x^3).
bool isTanhArgument(ir::Value *arg, const ir::Value *x, std::vector<ir::Node *> &nodes) {
  Product outer;
  flatten(arg, x, outer, nodes);
  if (outer.factors.size() != 1 || !near(outer.scale, std::sqrt(2.0 / M_PI))) return false;
  ir::Node *sum = producedBy(outer.factors[0], "Add");
  if (!sum || sum->inputs.size() != 2) return false;
  nodes.push_back(sum);
  for (int i = 0; i < 2; ++i) {
    if (sum->inputs[i] != x) continue;
    Product cubic;
    flatten(sum->inputs[1 - i], x, cubic, nodes);
    if (!near(cubic.scale, 0.044715)) return false;
    if (onlyX(cubic, x, 3)) return true;
    return cubic.factors.size() == 1 && isCube(cubic.factors[0], x, nodes);
  }
  return false;
}

/// y = x * 0.5 * (1 + Erf(..) or Tanh(..)), checked from its last Mul.
int matchFormula(ir::Node *last, const ir::Value *x, std::vector<ir::Node *> &nodes) {
  Product p;
  flatten(last->outputs[0], x, p, nodes);
  if (p.factors.size() != 2 || !near(p.scale, 0.5)) return 0;
  ir::Value *other = p.factors[0] == x ? p.factors[1] : p.factors[1] == x ? p.factors[0] : nullptr;
  ir::Node *onePlus = producedBy(other, "Add");
  ir::Value *fx = besideConstant(onePlus, 1.0);
  if (!fx) return 0;
  nodes.push_back(onePlus);
  if (ir::Node *erf = producedBy(fx, "Erf")) {
    nodes.push_back(erf);
    return isErfArgument(erf->input(0), x, nodes) ? KILN_POST_GELU_ERF : 0;
  }
  if (ir::Node *tanh = producedBy(fx, "Tanh")) {
    nodes.push_back(tanh);
    return isTanhArgument(tanh->input(0), x, nodes) ? KILN_POST_GELU_TANH : 0;
  }
  return 0;
}

std::vector<ir::Node *> liveUsers(const ir::Value *v) {
  std::vector<ir::Node *> users;
  for (ir::Node *u : v->users)
    if (!u->dead && std::find(users.begin(), users.end(), u) == users.end()) users.push_back(u);
  return users;
}

/// x and every intermediate of the pattern are used only inside it.
bool closed(const ir::Value *x, const std::vector<ir::Node *> &nodes, const ir::Node *last) {
  std::set<const ir::Node *> in(nodes.begin(), nodes.end());
  auto inside = [&](const ir::Value *v) {
    if (v->isGraphOutput) return false;
    for (ir::Node *u : liveUsers(v))
      if (!in.count(u)) return false;
    return true;
  };
  if (!inside(x)) return false;
  for (const ir::Node *n : nodes)
    if (n != last && !inside(n->outputs[0])) return false;
  return true;
}

} // namespace

GeluMatch matchGelu(ir::Value *x) {
  GeluMatch m;
  if (!x || x->dtype != DType::Float32 || x->isGraphOutput) return m;
  std::vector<ir::Node *> users = liveUsers(x);
  if (users.size() == 1 && users[0]->op == "Gelu" && onnxDomain(users[0]) &&
      users[0]->input(0) == x) {
    std::string approx = users[0]->attrString("approximate", "none");
    if (approx != "none" && approx != "tanh") return m;
    m.postOp = approx == "tanh" ? KILN_POST_GELU_TANH : KILN_POST_GELU_ERF;
    m.last = users[0];
    m.nodes = {users[0]};
    return m;
  }
  // The pattern's last Mul lies within a few nodes of x: walk forward through the ops a
  // GELU formula uses and try each Mul as its end.
  std::vector<ir::Node *> frontier = users, seen;
  for (int depth = 0; depth < 8 && !frontier.empty(); ++depth) {
    std::vector<ir::Node *> next;
    for (ir::Node *n : frontier) {
      static const std::set<std::string> kOps = {"Mul", "Div", "Add", "Erf", "Tanh", "Pow"};
      if (!kOps.count(n->op) || !onnxDomain(n) || n->outputs.size() != 1 ||
          std::find(seen.begin(), seen.end(), n) != seen.end())
        continue;
      seen.push_back(n);
      if (n->op == "Mul") {
        std::vector<ir::Node *> nodes;
        if (int post = matchFormula(n, x, nodes); post && closed(x, nodes, n)) {
          m.postOp = post;
          m.last = n;
          m.nodes = std::move(nodes);
          return m;
        }
      }
      for (ir::Node *u : liveUsers(n->outputs[0]))
        next.push_back(u);
    }
    frontier = std::move(next);
  }
  return m;
}

} // namespace kiln::passes
