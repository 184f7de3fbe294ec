#!/usr/bin/python3
"""End-to-end checks of control flow (If, Loop, Scan): small models built here are compiled
with kiln (as given and with --all-dims-dynamic), run, and compared with numpy references.
Cases cover scan axes/directions, Scan-8 batches, while loops, run-time trip counts, early
exits (a late symbol at the top level, a clear error inside a subgraph), captured values
and weights, nested control flow, constant conditions and shape errors.

    /usr/bin/python3 tests/models/control_flow_check.py <kiln> <work dir> [name filter]

Exit status 0 when every case passes.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN = sys.argv[1]
OUT = sys.argv[2]
only = sys.argv[3] if len(sys.argv) > 3 else None
os.makedirs(OUT, exist_ok=True)
vi = h.make_tensor_value_info


def model(name, nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, name, inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_case(name, m, feeds, ref=None, expect_error=None, errors=None):
    """errors: per variant, (stage, message) where stage is 'compile' or 'run'."""
    if only and only not in name:
        return True
    errors = dict(errors or {})
    if expect_error:
        errors = {"static": ("run", expect_error), "dynamic": ("run", expect_error)}
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    ok = True
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(d, k + ".npy"), v)
        args += ["--input", f"{k}={os.path.join(d, k + '.npy')}"]
    for variant in ["static", "dynamic"]:
        want_err = errors.get(variant)
        so = os.path.join(d, variant + ".so")
        cmd = [KILN, "compile", path, "-o", so] + (["--all-dims-dynamic"] if variant == "dynamic" else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if want_err and want_err[0] == "compile":
            good = p.returncode != 0 and want_err[1] in p.stderr
            print(f"{'ok  ' if good else 'FAIL'} {name} [{variant}] compile error: {p.stderr.strip()[:300]}")
            ok &= good
            continue
        if p.returncode:
            print(f"FAIL {name} [{variant}] compile: {p.stderr.strip()}")
            ok = False
            continue
        od = os.path.join(d, variant + "_out")
        os.makedirs(od, exist_ok=True)
        p = subprocess.run([KILN, "run", so, "--output-dir", od] + args, capture_output=True, text=True)
        if want_err:
            good = p.returncode != 0 and want_err[1] in p.stderr
            print(f"{'ok  ' if good else 'FAIL'} {name} [{variant}] run error: {p.stderr.strip()[:300]}")
            ok &= good
            continue
        if p.returncode:
            print(f"FAIL {name} [{variant}] run: {p.stderr.strip()}")
            ok = False
            continue
        case_ok = True
        for i, o in enumerate(m.graph.output):
            got = np.load(os.path.join(od, o.name + ".npy"))
            want = ref[i]
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-5):
                print(f"FAIL {name} [{variant}] output {o.name}: got {got.shape} {got.ravel()[:8]} "
                      f"want {want.shape} {want.ravel()[:8]}")
                case_ok = False
        if case_ok:
            print(f"ok   {name} [{variant}]")
        ok &= case_ok
    return ok

results = []
rng = np.random.default_rng(0)

# 1. Scan opset 16: two states, two scan inputs (axis 1, one reversed), outputs on axis 1 / reversed.
body = h.make_graph(
    [h.make_node("Add", ["s0", "a"], ["s0o"]),
     h.make_node("Mul", ["s1", "b"], ["s1o"]),
     h.make_node("Sub", ["s0o", "s1o"], ["y0"]),
     h.make_node("Identity", ["s1o"], ["y1"])],
    "body",
    [vi("s0", T.FLOAT, [3]), vi("s1", T.FLOAT, [3]), vi("a", T.FLOAT, [3]), vi("b", T.FLOAT, [3])],
    [vi("s0o", T.FLOAT, [3]), vi("s1o", T.FLOAT, [3]), vi("y0", T.FLOAT, [3]), vi("y1", T.FLOAT, [3])])
m = model("scan16_axes",
    [h.make_node("Scan", ["i0", "i1", "A", "B"], ["f0", "f1", "Y0", "Y1"], body=body, num_scan_inputs=2,
                 scan_input_axes=[1, 0], scan_input_directions=[0, 1], scan_output_axes=[1, 0],
                 scan_output_directions=[1, 0])],
    [vi("i0", T.FLOAT, [3]), vi("i1", T.FLOAT, [3]), vi("A", T.FLOAT, [3, 4]), vi("B", T.FLOAT, [4, 3])],
    [vi("f0", T.FLOAT, [3]), vi("f1", T.FLOAT, [3]), vi("Y0", T.FLOAT, [3, 4]), vi("Y1", T.FLOAT, [4, 3])])
f = {"i0": rng.standard_normal(3).astype(np.float32),
    "i1": rng.standard_normal(3).astype(np.float32), "A": rng.standard_normal((3, 4)).astype(np.float32),
    "B": rng.standard_normal((4, 3)).astype(np.float32)}
def scan16(f):
    s0, s1 = f["i0"].copy(), f["i1"].copy(); y0 = np.zeros((4, 3), np.float32); y1 = np.zeros((4, 3), np.float32)
    for t in range(4):
        a = f["A"][:, t]; b = f["B"][3 - t]
        s0 = s0 + a; s1 = s1 * b; y0[t] = s0 - s1; y1[t] = s1
    y0 = y0[::-1]  # output direction reverse
    return [s0, s1, y0.T, y1]
results.append(run_case("scan16_axes", m, f, scan16(f)))

# 2. Scan opset 8 with batch 2 and a reversed input.
body8 = h.make_graph(
    [h.make_node("Add", ["s", "x"], ["so"]), h.make_node("Mul", ["so", "x"], ["y"])], "b8",
    [vi("s", T.FLOAT, [2]), vi("x", T.FLOAT, [2])], [vi("so", T.FLOAT, [2]), vi("y", T.FLOAT, [2])])
m = model("scan8_batch",
    [h.make_node("Scan", ["", "init", "X"], ["fs", "Y"], body=body8, num_scan_inputs=1, directions=[1])],
    [vi("init", T.FLOAT, [2, 2]), vi("X", T.FLOAT, [2, 5, 2])],
    [vi("fs", T.FLOAT, [2, 2]), vi("Y", T.FLOAT, [2, 5, 2])], opset=8)
m.ir_version = 3
X = rng.standard_normal((2, 5, 2)).astype(np.float32)
init = rng.standard_normal((2, 2)).astype(np.float32)
# reference evaluator lacks Scan-8: compute by hand
def scan8(init, X):
    fs = init.copy(); Y = np.zeros_like(X)
    for b in range(2):
        s = init[b].copy()
        for t in range(5):
            x = X[b, 4 - t]; s = s + x; Y[b, t] = s * x
        fs[b] = s
    return [fs, Y]
results.append(run_case("scan8_batch", m, {"init": init, "X": X}, scan8(init, X)))

# 3. While loop: no M, runs while the carried counter < limit (input). No scan outputs.
wbody = h.make_graph(
    [h.make_node("Add", ["c_in", "one"], ["c_out"]),
     h.make_node("Mul", ["acc_in", "two"], ["acc_out"]),
     h.make_node("Less", ["c_out", "limit"], ["cond_out"])], "wbody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("c_in", T.INT64, []), vi("acc_in", T.FLOAT, [2])],
    [vi("cond_out", T.BOOL, []), vi("c_out", T.INT64, []), vi("acc_out", T.FLOAT, [2])],
    [nh.from_array(np.array(1, np.int64), "one"), nh.from_array(np.array(2, np.float32), "two")])
m = model("while_loop",
    [h.make_node("Loop", ["", "c0", "z", "acc"], ["cnt", "accf"], body=wbody)],
    [vi("c0", T.BOOL, []), vi("z", T.INT64, []), vi("acc", T.FLOAT, [2]), vi("limit", T.INT64, [])],
    [vi("cnt", T.INT64, []), vi("accf", T.FLOAT, [2])])
results.append(run_case("while_loop", m, {"c0": np.array(True), "z": np.array(0, np.int64),
    "acc": np.array([1, -1], np.float32), "limit": np.array(6, np.int64)},
    [np.array(6, np.int64), np.array([64, -64], np.float32)]))

# 4. Loop with M computed in the graph (not from inputs only: from a ReduceSum over a
#    MatMul result) and no scan outputs -> M read at run time.
mbody = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"]),
     h.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
     h.make_node("Add", ["v_in", "fi"], ["v_out"])], "mbody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("v_in", T.FLOAT, [2, 2])],
    [vi("cond_out", T.BOOL, []), vi("v_out", T.FLOAT, [2, 2])])
m = model("loop_runtime_m",
    [h.make_node("ReduceSum", ["n"], ["ns"], keepdims=0),
     h.make_node("Loop", ["ns", "", "v"], ["vf"], body=mbody)],
    [vi("n", T.INT64, [3]), vi("v", T.FLOAT, [2, 2])], [vi("vf", T.FLOAT, [2, 2])])
results.append(run_case("loop_runtime_m", m, {"n": np.array([1, 2, 3], np.int64),
    "v": np.ones((2, 2), np.float32)}, [np.full((2, 2), 16, np.float32)]))

# 5. Early exit with scan outputs: run-time error.
ebody = h.make_graph(
    [h.make_node("Less", ["i", "stop"], ["cond_out"]),
     h.make_node("Identity", ["v_in"], ["v_out"]),
     h.make_node("Identity", ["v_in"], ["s"])], "ebody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("v_in", T.FLOAT, [1])],
    [vi("cond_out", T.BOOL, []), vi("v_out", T.FLOAT, [1]), vi("s", T.FLOAT, [1])])
m = model("loop_early_exit",
    [h.make_node("Loop", ["M", "", "v"], ["vf", "S"], body=ebody)],
    [vi("M", T.INT64, []), vi("v", T.FLOAT, [1]), vi("stop", T.INT64, [])],
    [vi("vf", T.FLOAT, [1]), vi("S", T.FLOAT, [None, 1])])
results.append(run_case("loop_early_exit", m, {"M": np.array(5, np.int64), "v": np.ones(1, np.float32),
    "stop": np.array(2, np.int64)}, [np.ones(1, np.float32), np.ones((3, 1), np.float32)]))
# 5b. The same loop nested in another loop's body: early exit there is a run-time error.
obody = h.make_graph(
    [h.make_node("Identity", ["oc"], ["oc_out"]),
     h.make_node("Loop", ["M", "", "v"], ["vf2", "S2"], body=ebody),
     h.make_node("ReduceSum", ["S2"], ["r"], keepdims=0)], "obody",
    [vi("oi", T.INT64, []), vi("oc", T.BOOL, [])],
    [vi("oc_out", T.BOOL, []), vi("r", T.FLOAT, [])])
m2 = model("nested_early_exit",
    [h.make_node("Loop", ["two_", ""], ["rs"], body=obody)],
    [vi("M", T.INT64, []), vi("v", T.FLOAT, [1]), vi("stop", T.INT64, [])],
    [vi("rs", T.FLOAT, [2])], [nh.from_array(np.array(2, np.int64), "two_")])
results.append(run_case("nested_early_exit", m2, {"M": np.array(5, np.int64), "v": np.ones(1, np.float32),
    "stop": np.array(2, np.int64)}, expect_error="condition ended the loop after 3 of 5"))
results.append(run_case("nested_no_early_exit", m2, {"M": np.array(2, np.int64), "v": np.ones(1, np.float32),
    "stop": np.array(7, np.int64)}, [np.full(2, 2, np.float32)]))
results.append(run_case("loop_no_early_exit", m, {"M": np.array(3, np.int64), "v": np.ones(1, np.float32),
    "stop": np.array(7, np.int64)}, [np.ones(1, np.float32), np.ones((3, 1), np.float32)]))

# 6. If with computed cond and captured run-time values; branches use a MatMul (extern in
#    a sub-program) and a softmax (reduction groups), and intermediates (scratch).
then_b = h.make_graph(
    [h.make_node("MatMul", ["x", "W"], ["t1"]), h.make_node("Relu", ["t1"], ["t2"]),
     h.make_node("Softmax", ["t2"], ["out"], axis=-1)], "then",
    [], [vi("out", T.FLOAT, [None, 4])], [nh.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W")])
else_b = h.make_graph(
    [h.make_node("MatMul", ["x", "W2"], ["e1"]), h.make_node("Neg", ["e1"], ["out2"])], "else",
    [], [vi("out2", T.FLOAT, [None, 4])])
m = model("if_captures",
    [h.make_node("ReduceSum", ["x"], ["sx"], keepdims=0),
     h.make_node("Greater", ["sx", "zero"], ["c"]),
     h.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)],
    [vi("x", T.FLOAT, ["N", 3]), vi("W2", T.FLOAT, [3, 4])], [vi("y", T.FLOAT, ["N", 4])],
    [nh.from_array(np.array(0, np.float32), "zero")])
xin = rng.standard_normal((5, 3)).astype(np.float32)
w2 = rng.standard_normal((3, 4)).astype(np.float32)
W = nh.to_array(then_b.initializer[0])
def sm(z):
    e = np.exp(z - z.max(-1, keepdims=True)); return e / e.sum(-1, keepdims=True)
results.append(run_case("if_captures_then", m, {"x": np.abs(xin), "W2": w2}, [sm(np.maximum(np.abs(xin) @ W, 0))]))
results.append(run_case("if_captures_else", m, {"x": -np.abs(xin), "W2": w2}, [-(-np.abs(xin) @ w2)]))

# 7. Nested: Loop whose body has an If (capturing a value two scopes up and the iteration
#    number) and an inner Loop with scan outputs sized by a constant.
inner_body = h.make_graph(
    [h.make_node("Identity", ["ic"], ["ic_out"]),
     h.make_node("Cast", ["j"], ["fj"], to=T.FLOAT),
     h.make_node("Mul", ["fj", "scale"], ["t"]),
     h.make_node("Add", ["t", "fi"], ["sj"])], "inner",
    [vi("j", T.INT64, []), vi("ic", T.BOOL, [])], [vi("ic_out", T.BOOL, []), vi("sj", T.FLOAT, [])])
if_then = h.make_graph([h.make_node("Add", ["acc_in", "scale"], ["r1"])], "it", [], [vi("r1", T.FLOAT, [2])])
if_else = h.make_graph([h.make_node("Sub", ["acc_in", "fi"], ["r2"])], "ie", [], [vi("r2", T.FLOAT, [2])])
outer_body = h.make_graph(
    [h.make_node("Identity", ["oc"], ["oc_out"]),
     h.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
     h.make_node("Mod", ["i", "two"], ["im"]),
     h.make_node("Equal", ["im", "zero"], ["even"]),
     h.make_node("If", ["even"], ["acc_out"], then_branch=if_then, else_branch=if_else),
     h.make_node("Loop", ["three", "", ], ["row"], body=inner_body),
     h.make_node("Identity", ["row"], ["row_out"])], "outer",
    [vi("i", T.INT64, []), vi("oc", T.BOOL, []), vi("acc_in", T.FLOAT, [2])],
    [vi("oc_out", T.BOOL, []), vi("acc_out", T.FLOAT, [2]), vi("row_out", T.FLOAT, [3])],
    [nh.from_array(np.array(2, np.int64), "two"), nh.from_array(np.array(0, np.int64), "zero"),
     nh.from_array(np.array(3, np.int64), "three")])
m = model("nested",
    [h.make_node("Loop", ["M", "", "acc"], ["accf", "rows"], body=outer_body)],
    [vi("M", T.INT64, []), vi("acc", T.FLOAT, [2]), vi("scale", T.FLOAT, [])],
    [vi("accf", T.FLOAT, [2]), vi("rows", T.FLOAT, [None, 3])])
def nested():
    acc = np.array([1, 2], np.float32); rows = []
    for i in range(4):
        acc = acc + 0.5 if i % 2 == 0 else acc - i
        rows.append([j * 0.5 + i for j in range(3)])
    return [acc, np.array(rows, np.float32)]
results.append(run_case("nested", m, {"M": np.array(4, np.int64), "acc": np.array([1, 2], np.float32),
    "scale": np.array(0.5, np.float32)}, nested()))

# 8. Body output is a captured outer value / a formal input passed through.
pbody = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"])], "pbody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("v_in", T.FLOAT, [2])],
    [vi("cond_out", T.BOOL, []), vi("v_in", T.FLOAT, [2]), vi("w", T.FLOAT, [2]), vi("i", T.INT64, [])])
m = model("passthrough",
    [h.make_node("Loop", ["M", "", "v"], ["vf", "ws", "is"], body=pbody)],
    [vi("M", T.INT64, []), vi("v", T.FLOAT, [2]), vi("w", T.FLOAT, [2])],
    [vi("vf", T.FLOAT, [2]), vi("ws", T.FLOAT, [None, 2]), vi("is", T.INT64, [None])])
results.append(run_case("passthrough", m, {"M": np.array(3, np.int64), "v": np.array([1, 2], np.float32),
    "w": np.array([3, 4], np.float32)}, [np.array([1, 2], np.float32), np.array([[3, 4]] * 3, np.float32),
    np.array([0, 1, 2], np.int64)]))

# 9. Loop-carried shape grows: a precise compile-time error.
gbody = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"]),
     h.make_node("Concat", ["v_in", "v_in"], ["v_out"], axis=0)], "gbody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("v_in", T.FLOAT, [None])],
    [vi("cond_out", T.BOOL, []), vi("v_out", T.FLOAT, [None])])
m = model("loop_growing",
    [h.make_node("Loop", ["M", "", "v"], ["vf"], body=gbody)],
    [vi("M", T.INT64, []), vi("v", T.FLOAT, [2])], [vi("vf", T.FLOAT, [None])])
results.append(run_case("loop_growing", m, {"M": np.array(3, np.int64), "v": np.ones(2, np.float32)},
    errors={"static": ("compile", "loop-carried value 0 (body output 1) has shape [4], expected [2]"),
            "dynamic": ("run", "must have shape [v_d0] at every call")}))

# 10. If on a condition computed from a shape: known at compile time when static (only the
#     taken branch is compiled, inline), a run-time Call when dims are dynamic.
ct = h.make_graph([h.make_node("Relu", ["x"], ["r"]), h.make_node("Mul", ["r", "k"], ["o1"])], "ct", [], [vi("o1", T.FLOAT, None)],
                  [nh.from_array(np.array(3, np.float32), "k")])
ce = h.make_graph([h.make_node("Neg", ["x"], ["o2"])], "ce", [], [vi("o2", T.FLOAT, None)])
m = model("if_shape_cond",
    [h.make_node("Shape", ["x"], ["sh"]),
     h.make_node("Gather", ["sh", "zero"], ["d0"], axis=0),
     h.make_node("Greater", ["d0", "two"], ["c"]),
     h.make_node("If", ["c"], ["y"], then_branch=ct, else_branch=ce),
     h.make_node("Add", ["y", "x"], ["z"])],
    [vi("x", T.FLOAT, [3, 4])], [vi("z", T.FLOAT, [3, 4])],
    [nh.from_array(np.array(0, np.int64), "zero"), nh.from_array(np.array(2, np.int64), "two")])
xx = rng.standard_normal((3, 4)).astype(np.float32)
results.append(run_case("if_shape_cond", m, {"x": xx}, [np.maximum(xx, 0) * 3 + xx]))

# 11. A weight used by the model, a Loop body and an If nested in it is stored once.
Wv = rng.standard_normal((4, 4)).astype(np.float32)
it_ = h.make_graph([h.make_node("MatMul", ["h_in", "W"], ["hw"])], "wt", [], [vi("hw", T.FLOAT, [1, 4])])
ie_ = h.make_graph([h.make_node("Identity", ["h_in"], ["hi"])], "we", [], [vi("hi", T.FLOAT, [1, 4])])
wbody2 = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"]),
     h.make_node("MatMul", ["h_in", "W"], ["t"]),
     h.make_node("Tanh", ["t"], ["u"]),
     h.make_node("Mod", ["i", "two"], ["im"]),
     h.make_node("Equal", ["im", "zero"], ["even"]),
     h.make_node("If", ["even"], ["v"], then_branch=it_, else_branch=ie_),
     h.make_node("Add", ["u", "v"], ["h_out"]),
     h.make_node("Mul", ["h_out", "bl"], ["s"])], "wbody2",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("h_in", T.FLOAT, [1, 4])],
    [vi("cond_out", T.BOOL, []), vi("h_out", T.FLOAT, [1, 4]), vi("s", T.FLOAT, [1, 4])],
    [nh.from_array(np.array(2, np.int64), "two"), nh.from_array(np.array(0, np.int64), "zero"),
     nh.from_array(np.full(4, 0.5, np.float32), "bl")])
m = model("shared_weight",
    [h.make_node("Loop", ["M", "", "h0"], ["hf", "hs"], body=wbody2),
     h.make_node("MatMul", ["hf", "W"], ["y"])],
    [vi("M", T.INT64, []), vi("h0", T.FLOAT, [1, 4])], [vi("y", T.FLOAT, [1, 4]), vi("hs", T.FLOAT, [None, 1, 4])],
    [nh.from_array(Wv, "W")])
h0 = rng.standard_normal((1, 4)).astype(np.float32)
def shared():
    hh = h0; hs = []
    for i in range(5):
        v = hh @ Wv if i % 2 == 0 else hh
        hh = np.tanh(hh @ Wv) + v; hs.append(hh * 0.5)
    return [hh @ Wv, np.array(hs)]
results.append(run_case("shared_weight", m, {"M": np.array(5, np.int64), "h0": h0}, shared()))

# 12. A Loop body reading a tensor whose size the run computes (NonZero before the loop).
nbody = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"]),
     h.make_node("Cast", ["nz"], ["nzf"], to=T.FLOAT),
     h.make_node("ReduceSum", ["nzf"], ["r"], keepdims=0),
     h.make_node("Add", ["acc_in", "r"], ["acc_out"])], "nbody",
    [vi("i", T.INT64, []), vi("cond", T.BOOL, []), vi("acc_in", T.FLOAT, [])],
    [vi("cond_out", T.BOOL, []), vi("acc_out", T.FLOAT, [])])
m = model("nonzero_then_loop",
    [h.make_node("NonZero", ["x"], ["nz"]),
     h.make_node("Loop", ["M", "", "a0"], ["af"], body=nbody)],
    [vi("x", T.FLOAT, [6]), vi("M", T.INT64, []), vi("a0", T.FLOAT, [])], [vi("af", T.FLOAT, [])])
xnz = np.array([0, 1, 0, 2, 3, 0], np.float32)
results.append(run_case("nonzero_then_loop", m, {"x": xnz, "M": np.array(3, np.int64), "a0": np.array(0.5, np.float32)},
    [np.array(0.5 + 3 * (1 + 3 + 4), np.float32)]))

print("ALL OK" if all(results) else "SOME FAILED")
sys.exit(0 if all(results) else 1)
