#include "loop/interp.h"
#include "lower/lowerer.h"
#include "passes/passes.h"
#include "support/error.h"

#include <set>
#include <string>

namespace kiln::passes {

namespace {

constexpr int64_t kMaxSymElements = 64;       // shape-tensor sized
constexpr int64_t kMaxFoldElements = 1 << 22; // bigger constant subgraphs stay at run time

std::optional<int64_t> staticNumel(const ir::Shape &s) {
  int64_t n = 1;
  for (const sym::Expr &d : s) {
    if (!d.isConst()) return std::nullopt;
    n *= d->value;
  }
  return n;
}

bool allInputsKnown(const ir::Node &n) {
  for (const ir::Value *v : n.inputs)
    if (v && !v->data) return false;
  return true;
}

/// Element values as sym expressions, if every element folds to one.
std::optional<std::vector<sym::Expr>> symbolicContents(sym::Context &ctx, const lower::LTensor &t,
                                                       int64_t n) {
  std::vector<sym::Expr> vals;
  for (int64_t i = 0; i < n; ++i) {
    lower::Index idx = lower::unravel(ctx, ctx.constant(i), t.shape);
    auto s = loop::asSym(t.load(idx), ctx);
    if (!s) return std::nullopt;
    vals.push_back(*s);
  }
  return vals;
}

/// A constant made by an op that keeps its input's elements in order and changes at most
/// the dims: the input's bytes under the new dims (Identity with the same dims shares the
/// data), or nullptr for any other op. Folding these through the interpreter cost a map
/// lookup per element: GPT-2's per-layer Identity copies of its 1M-element causal mask were
/// most of its compile time.
std::shared_ptr<const ir::TensorData> foldAsView(const ir::Node &n, DType dtype,
                                                 const std::vector<int64_t> &dims, int64_t numel) {
  static const std::set<std::string> views{"Identity", "Reshape", "Flatten", "Squeeze",
                                           "Unsqueeze"};
  if (!views.count(n.op) || n.inputs.empty() || !n.inputs[0] || !n.inputs[0]->data) return {};
  const std::shared_ptr<const ir::TensorData> &in = n.inputs[0]->data;
  if (in->dtype != dtype || dtype == DType::String || in->numel() != numel ||
      in->bytes.size() != static_cast<size_t>(numel) * dtypeSize(dtype))
    return {};
  if (n.op == "Identity" && in->dims == dims) return in;
  auto out = std::make_shared<ir::TensorData>();
  out->dtype = dtype;
  out->dims = dims;
  out->bytes = in->bytes; // a view stays a view of the model file
  return out;
}

} // namespace

void inferAndFold(ir::Graph &g) {
  sym::Context &ctx = g.ctx();
  loop::Program scratch;
  lower::Lowerer low(g, scratch);
  for (ir::Value *in : g.inputs) {
    if (auto it = g.sequenceInputItems.find(in); it != g.sequenceInputItems.end()) {
      lower::LSequence seq; // a list bound by an unrolled Loop: one stand-in per item
      seq.dtype = in->dtype;
      for (const ir::Shape &s : it->second)
        seq.items.push_back(lower::fromBuffer(
            ctx, scratch.newBuffer(in->dtype, s, loop::BufferKind::Input, in->name)));
      low.seqEnv[in] = seq;
      continue;
    }
    loop::Buffer *b = scratch.newBuffer(in->dtype, in->shape, loop::BufferKind::Input, in->name);
    low.env[in] = lower::fromBuffer(ctx, b);
  }
  for (auto &np : g.nodes) {
    ir::Node &n = *np;
    low.lowerNode(n);
    bool inputsKnown = allInputsKnown(n);
    for (ir::Value *o : n.outputs) {
      if (o && low.seqEnv.count(o)) {
        // A sequence has no tensor shape; its element type stands in for the dtype and
        // it is never folded (its elements fold where SequenceAt reads them).
        o->dtype = low.seqEnv[o].dtype;
        o->shape.clear();
        o->shapeKnown = true;
        continue;
      }
      if (o && low.noneEnv.count(o)) { // an empty optional: no tensor to infer
        o->shape.clear();
        o->shapeKnown = true;
        continue;
      }
      if (!o || !low.env.count(o)) continue;
      lower::LTensor &t = low.env[o];
      // A shape computation gone negative is the model's error; caught here for every op,
      // before a size is taken from it.
      for (const sym::Expr &d : t.shape)
        if (d.isConst() && d->value < 0)
          fail("{}: output '{}' would have shape {} (a negative dim)", n.describe(), o->name,
               ir::shapeToString(t.shape));
      o->dtype = t.dtype;
      o->shape = t.shape;
      o->shapeKnown = true;
      auto numel = staticNumel(t.shape);
      if (!numel) continue;
      if (isInteger(t.dtype) && t.rank() <= 1 && *numel <= kMaxSymElements) {
        if (auto vals = symbolicContents(ctx, t, *numel)) {
          bool allConst =
              std::all_of(vals->begin(), vals->end(), [](sym::Expr e) { return e.isConst(); });
          if (!allConst) {
            o->symData = vals;
            continue;
          }
          // Every element is a known integer (e.g. Shape of a static tensor): a constant,
          // even when the input's data is not known.
          auto data = std::make_shared<ir::TensorData>();
          data->dtype = t.dtype;
          for (const sym::Expr &d : t.shape)
            data->dims.push_back(d->value);
          data->bytes.resize(static_cast<size_t>(*numel) * dtypeSize(t.dtype));
          for (int64_t i = 0; i < *numel; ++i)
            loop::storeScalar(*data, i, 0, (*vals)[i]->value);
          o->data = data;
          low.env.erase(o);
          continue;
        }
      }
      if (!inputsKnown || *numel > kMaxFoldElements || t.dtype == DType::String) continue;
      std::vector<int64_t> dims;
      for (const sym::Expr &d : t.shape)
        dims.push_back(d->value);
      if (auto view = foldAsView(n, t.dtype, dims, *numel)) {
        o->data = view;
        low.env.erase(o);
        continue;
      }
      try {
        loop::Interpreter interp(scratch, ctx);
        std::vector<sym::Expr> vars;
        for (const sym::Expr &d : t.shape)
          vars.push_back(low.newVar("f", d));
        o->data = interp.evaluate(t.dtype, dims, vars, t.load(vars));
        low.env.erase(o); // re-read as a constant buffer from now on
      } catch (const UserError &) {
        // Not foldable (extern, symbolic); it stays a run-time computation.
      }
    }
  }
}

} // namespace kiln::passes
