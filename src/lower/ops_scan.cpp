// Scan (opsets 8 and 9+): the body becomes its own sub-program (lower/subgraph.h) run by one
// Call kernel; it sees the iteration number as a symbol, so its scan inputs are read in place
// and each scan output is stacked (or a view of the stacked buffer along its axis).
#include "lower/control_common.h"

namespace kiln::lower {

namespace {

using loop::ControlFlow;

std::vector<int64_t> intsOr(OpCtx &c, const char *name, size_t n) {
  std::vector<int64_t> v = c.node.attrInts(name, std::vector<int64_t>(n, 0));
  if (v.size() != n)
    fail("{}: attribute '{}' has {} entries, expected {}", c.node.describe(), name, v.size(), n);
  return v;
}

/// Scan (opset 8: inputs carry a leading batch dim and sequence_lens comes first; the
/// scan axis is 1; opset 9+: no batch, per-input axes and directions).
void lowerScan(OpCtx &c) {
  const ir::Graph &body = graphAttr(c, "body");
  sym::Context &ctx = c.ctx();
  bool v8 = c.node.opset < 9;
  size_t first = v8 ? 1 : 0;
  if (v8 && c.has(0)) c.unsupported("Scan-8 with sequence_lens");
  size_t nIn = explicitInputs(c.node);
  int64_t K = c.node.attrInt("num_scan_inputs", 0);
  if (K < 1 || first + static_cast<size_t>(K) > nIn)
    fail("{}: num_scan_inputs = {} does not fit its {} inputs", c.node.describe(), K, nIn);
  size_t N = nIn - first - static_cast<size_t>(K);
  if (body.outputs.size() < N)
    fail("{}: its body has {} outputs, fewer than its {} state variables", c.node.describe(),
         body.outputs.size(), N);
  size_t L = body.outputs.size() - N;
  std::vector<int64_t> inAxes = v8 ? std::vector<int64_t>(K, 1) : intsOr(c, "scan_input_axes", K);
  std::vector<int64_t> inDirs = intsOr(c, v8 ? "directions" : "scan_input_directions", K);
  std::vector<int64_t> outAxes = v8 ? std::vector<int64_t>(L, 0) : intsOr(c, "scan_output_axes", L);
  std::vector<int64_t> outDirs =
      v8 ? std::vector<int64_t>(L, 0) : intsOr(c, "scan_output_directions", L);

  auto cf = newControlFlow(c, ControlFlow::Op::Scan);
  std::vector<LTensor> states, scans;
  std::vector<int> axes;
  for (size_t k = 0; k < N; ++k)
    states.push_back(c.in(first + k));
  for (int64_t j = 0; j < K; ++j) {
    scans.push_back(c.in(first + N + j));
    if (v8 && scans.back().rank() < 2)
      fail("{}: scan input {} needs batch and sequence dims", c.node.describe(), j);
    axes.push_back(c.normAxis(inAxes[j], scans.back().rank()));
    sym::Expr len = scans.back().shape[axes.back()];
    if (j == 0)
      cf->trips = len;
    else
      c.guardEqual(len, cf->trips,
                   fmt::format("scan input {} has a different sequence length than input 0", j));
  }
  if (v8) {
    cf->batches = scans[0].shape[0];
    for (size_t k = 0; k < N; ++k) {
      if (states[k].rank() < 1) fail("{}: state {} needs a batch dim", c.node.describe(), k);
      c.guardEqual(states[k].shape[0], cf->batches,
                   fmt::format("state {} has a different batch size than scan input 0", k));
    }
    for (int64_t j = 1; j < K; ++j)
      c.guardEqual(scans[j].shape[0], cf->batches,
                   fmt::format("scan input {} has a different batch size than input 0", j));
    cf->batch = iterationSymbol(ctx, "_batch", cf->batches);
  }
  cf->iter = iterationSymbol(ctx, "_iter", cf->trips);

  std::vector<FormalInput> formals(N + K);
  std::vector<ir::Shape> stateShapes;
  for (size_t k = 0; k < N; ++k) {
    ir::Shape s = states[k].shape;
    if (v8) s.erase(s.begin());
    stateShapes.push_back(s);
    formals[k].dtype = states[k].dtype;
    formals[k].shape = s;
  }
  for (int64_t j = 0; j < K; ++j) {
    FormalInput &f = formals[N + j];
    const LTensor &t = scans[j];
    int ax = axes[j];
    f.dtype = t.dtype;
    f.whole = t.shape;
    f.shape = t.shape;
    f.shape.erase(f.shape.begin() + ax);
    if (v8) f.shape.erase(f.shape.begin());
    sym::Expr pos = inDirs[j] ? cf->trips - 1 - cf->iter : cf->iter;
    sym::Expr batch = cf->batch;
    f.slice = [ax, pos, batch, v8](const Index &idx) {
      Index w = idx;
      if (v8) {
        w.insert(w.begin(), {batch, pos});
        return w;
      }
      w.insert(w.begin() + ax, pos);
      return w;
    };
  }
  CompiledBody cb = compileBody(c, body, c.node.name + " body", formals);
  loop::SubProgram &sub = *cb.sub;
  for (size_t k = 0; k < N; ++k) {
    std::string what = fmt::format("state {} (body output {})", k, k);
    if (sub.prog.outputs[k]->dtype != states[k].dtype)
      fail("{}: {} is {} but starts as {}", c.node.describe(), what,
           dtypeName(sub.prog.outputs[k]->dtype), dtypeName(states[k].dtype));
    requireOutputShape(c, sub, k, stateShapes[k], what);
  }
  std::vector<ir::Shape> perIter;
  for (size_t s = 0; s < L; ++s) {
    perIter.push_back(firstCallShape(sub.prog.outputs[N + s]->shape, {cf->iter, cf->batch}));
    requireOutputShape(c, sub, N + s, perIter.back(), fmt::format("scan output {}", s));
  }

  for (size_t k = 0; k < N; ++k) {
    ControlFlow::Carried cv;
    cv.init = bufferOf(c, first + k);
    cv.out = newBuffer(c, states[k].dtype, states[k].shape, "");
    cv.spare = newBuffer(c, states[k].dtype, stateShapes[k], "");
    cf->reads.push_back(cv.init);
    cf->writes.push_back(cv.out);
    cf->writes.push_back(cv.spare);
    cf->carried.push_back(cv);
  }
  for (int64_t j = 0; j < K; ++j) {
    cf->scanInputs.push_back(bufferOf(c, first + N + j));
    cf->reads.push_back(cf->scanInputs.back());
  }
  std::vector<LTensor> outs;
  for (size_t s = 0; s < L; ++s) {
    ir::Shape shape{cf->trips};
    if (v8) shape.insert(shape.begin(), cf->batches);
    shape.insert(shape.end(), perIter[s].begin(), perIter[s].end());
    ControlFlow::Stacked st;
    st.buf = newBuffer(c, sub.prog.outputs[N + s]->dtype, shape, "");
    st.reverse = outDirs[s] != 0;
    cf->writes.push_back(st.buf);
    cf->scanOutputs.push_back(st);
    LTensor t = fromBuffer(ctx, st.buf);
    int ax = v8 ? 0 : c.normAxis(outAxes[s], static_cast<int>(shape.size()));
    if (ax != 0) {
      // Stacked along dim 0; the output puts the sequence at `ax` (a view).
      Loader inner = t.load;
      t.buffer = nullptr;
      t.shape = perIter[s];
      t.shape.insert(t.shape.begin() + ax, cf->trips);
      t.load = [inner, ax](const Index &idx) {
        Index src = idx;
        src.erase(src.begin() + ax);
        src.insert(src.begin(), idx[ax]);
        return inner(src);
      };
    }
    outs.push_back(t);
  }
  std::vector<CompiledBody> bodies;
  bodies.push_back(std::move(cb));
  emitCall(c, cf, bodies);
  for (size_t k = 0; k < N; ++k)
    c.out(k, fromBuffer(ctx, cf->carried[k].out));
  for (size_t s = 0; s < L; ++s)
    c.out(N + s, outs[s]);
}

} // namespace

void registerScanOps(std::vector<OpInfo> &r) {
  r.push_back({"Scan", 8, lowerScan});
}

} // namespace kiln::lower
