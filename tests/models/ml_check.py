#!/usr/bin/python3
"""End-to-end checks of the ai.onnx.ml ops the ONNX node suite does not cover
(TreeEnsembleRegressor, TreeEnsembleClassifier, LinearRegressor, LinearClassifier,
Normalizer, Scaler, OneHotEncoder, LabelEncoder with numeric keys): small models built here with onnx.helper are compiled
with kiln (as given and with --all-dims-dynamic), run, and compared with float64 numpy
implementations written from the operator specs.

    /usr/bin/python3 tests/models/ml_check.py <kiln> <work dir> [name filter]

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

KILN = sys.argv[1]
OUT = sys.argv[2]
only = sys.argv[3] if len(sys.argv) > 3 else None
os.makedirs(OUT, exist_ok=True)
vi = h.make_tensor_value_info
rng = np.random.default_rng(7)


def model(name, node, inputs, outputs, ml_opset=3):
    g = h.make_graph([node], name, inputs, outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 8
    return m


def run_case(name, m, feeds, ref):
    if only and only not in name:
        return True
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(d, k + ".npy"), v)
        args += ["--input", f"{k}={os.path.join(d, k + '.npy')}"]
    ok = True
    for variant in ["static", "dynamic"]:
        so = os.path.join(d, variant + ".so")
        cmd = [KILN, "compile", path, "-o", so] + (["--all-dims-dynamic"] if variant == "dynamic" else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] compile: {p.stderr.strip()}")
            ok = False
            continue
        od = os.path.join(d, variant + "_out")
        os.makedirs(od, exist_ok=True)
        p = subprocess.run([KILN, "run", so, "--output-dir", od] + args, capture_output=True, text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] run: {p.stderr.strip()}")
            ok = False
            continue
        case_ok = True
        for i, o in enumerate(m.graph.output):
            got = np.load(os.path.join(od, o.name + ".npy"))
            want = ref[i]
            # float32 outputs of float64 math: a few float32 ulps.
            if got.shape != want.shape or got.dtype != want.dtype or not np.allclose(
                    got, want, rtol=2e-6, atol=1e-6):
                print(f"FAIL {name} [{variant}] output {o.name}: got {got.dtype}{got.shape} "
                      f"{got.ravel()[:8]} want {want.dtype}{want.shape} {want.ravel()[:8]}")
                case_ok = False
        if case_ok:
            print(f"ok   {name} [{variant}]")
        ok &= case_ok
    return ok


# ---------------------------------------------------------------- references (from the spec)

def tree_walk(x, node, nodes):
    """nodes: dict id -> (mode, feature, value, true id, false id, missing tracks true)."""
    while True:
        mode, f, v, t, e, miss = nodes[node]
        if mode == "LEAF":
            return node
        xv = float(x[f])
        if np.isnan(xv) and miss:
            go = True
        else:
            go = {"BRANCH_LEQ": xv <= v, "BRANCH_LT": xv < v, "BRANCH_GTE": xv >= v,
                  "BRANCH_GT": xv > v, "BRANCH_EQ": xv == v, "BRANCH_NEQ": xv != v}[mode]
        node = t if go else e


def random_forest(n_trees, n_features, n_targets, depth, one_target=None):
    """Random trees as the nodes_*/target_* attribute lists; returns (attrs, trees)."""
    a = {k: [] for k in ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                         "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                         "nodes_missing_value_tracks_true", "v_treeids", "v_nodeids", "v_ids",
                         "v_weights"]}
    trees = []
    modes = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
    for tid in range(n_trees):
        nodes = {}
        counter = [0]

        def build(d):
            nid = counter[0]
            counter[0] += 1
            if d == depth or (d > 0 and rng.random() < 0.25):
                nodes[nid] = ("LEAF", 0, 0.0, 0, 0, 0)
                return nid
            mode = modes[rng.integers(len(modes))]
            f = int(rng.integers(n_features))
            v = float(np.float32(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0])))
            nodes[nid] = None
            t = build(d + 1)
            e = build(d + 1)
            nodes[nid] = (mode, f, v, t, e, int(rng.integers(2)))
            return nid

        build(0)
        for nid in sorted(nodes):
            mode, f, v, t, e, miss = nodes[nid]
            a["nodes_treeids"].append(tid)
            a["nodes_nodeids"].append(nid)
            a["nodes_featureids"].append(f)
            a["nodes_modes"].append(mode)
            a["nodes_values"].append(v)
            a["nodes_truenodeids"].append(t)
            a["nodes_falsenodeids"].append(e)
            a["nodes_missing_value_tracks_true"].append(miss)
            if mode == "LEAF":
                targets = [one_target] if one_target is not None else list(
                    rng.choice(n_targets, size=int(rng.integers(1, n_targets + 1)), replace=False))
                for tg in targets:
                    a["v_treeids"].append(tid)
                    a["v_nodeids"].append(nid)
                    a["v_ids"].append(int(tg))
                    a["v_weights"].append(float(np.float32(rng.normal())))
        trees.append(nodes)
    return a, trees


def forest_scores(x, a, trees, n_targets, agg, base):
    votes = {}
    for tid, nid, tg, w in zip(a["v_treeids"], a["v_nodeids"], a["v_ids"], a["v_weights"]):
        votes.setdefault((tid, nid), []).append((tg, w))
    out = np.zeros((x.shape[0], n_targets))
    for i in range(x.shape[0]):
        per_target = [[] for _ in range(n_targets)]
        for tid, nodes in enumerate(trees):
            leaf = tree_walk(x[i], 0, nodes)
            sums = {}
            for tg, w in votes.get((tid, leaf), []):
                sums[tg] = sums.get(tg, 0.0) + w
            for tg, w in sums.items():
                per_target[tg].append(w)
        for tg in range(n_targets):
            vals = per_target[tg]
            if agg == "SUM":
                r = sum(vals)
            elif agg == "AVERAGE":
                r = sum(vals) / len(trees)
            elif agg == "MIN":
                r = min(vals) if vals else 0.0
            else:
                r = max(vals) if vals else 0.0
            out[i, tg] = r + (base[tg] if base else 0.0)
    return out


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logistic(s):
    return 1.0 / (1.0 + np.exp(-s))


def features(n, f):
    x = rng.choice([-1.0, -0.7, -0.5, 0.0, 0.2, 0.5, 1.0, 1.5], size=(n, f)).astype(np.float32)
    x[rng.random((n, f)) < 0.1] = np.nan
    return x


results = []

# Regressor: every aggregate, 3 targets, NaN inputs (missing-value tracks), base values.
for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
    F, NT = 4, 3
    a, trees = random_forest(6, F, NT, 3)
    base = [0.5, -0.25, 1.0]
    node = h.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=NT,
        aggregate_function=agg, base_values=base,
        **{k: v for k, v in a.items() if k.startswith("nodes_")},
        target_treeids=a["v_treeids"], target_nodeids=a["v_nodeids"], target_ids=a["v_ids"],
        target_weights=a["v_weights"])
    x = features(16, F)
    ref = forest_scores(x, a, trees, NT, agg, base).astype(np.float32)
    m = model(f"tree_regressor_{agg.lower()}", node, [vi("X", T.FLOAT, [16, F])],
              [vi("Y", T.FLOAT, [16, NT])])
    results.append(run_case(f"tree_regressor_{agg.lower()}", m, {"X": x}, [ref]))

# Classifier: three classes with SOFTMAX, and a binary model (votes for class 0) with LOGISTIC.
for name, classes, post in [("tree_classifier_softmax", [10, 20, 30], "SOFTMAX"),
                            ("tree_classifier_binary_logistic", [0, 1], "LOGISTIC"),
                            ("tree_classifier_binary_none", [3, 7], "NONE")]:
    F = 3
    binary = len(classes) == 2
    a, trees = random_forest(5, F, len(classes), 3, one_target=0 if binary else None)
    node = h.make_node(
        "TreeEnsembleClassifier", ["X"], ["label", "prob"], domain="ai.onnx.ml",
        classlabels_int64s=classes, post_transform=post,
        **{k: v for k, v in a.items() if k.startswith("nodes_")},
        class_treeids=a["v_treeids"], class_nodeids=a["v_nodeids"], class_ids=a["v_ids"],
        class_weights=a["v_weights"])
    x = features(12, F)
    s = forest_scores(x, a, trees, len(classes), "SUM", None)
    if binary:
        s[:, 1] = s[:, 0]
        s[:, 0] = 1 - s[:, 1] if post == "NONE" else -s[:, 1]
    p = {"SOFTMAX": softmax, "LOGISTIC": logistic, "NONE": lambda v: v}[post](s)
    label = np.array(classes, dtype=np.int64)[np.argmax(p, axis=1)]
    m = model(name, node, [vi("X", T.FLOAT, [12, F])],
              [vi("label", T.INT64, [12]), vi("prob", T.FLOAT, [12, len(classes)])])
    results.append(run_case(name, m, {"X": x}, [label, p.astype(np.float32)]))

# Linear models.
F = 5
x = rng.normal(size=(7, F)).astype(np.float32)
W = rng.normal(size=(2, F)).astype(np.float32)
b = rng.normal(size=2).astype(np.float32)
node = h.make_node("LinearRegressor", ["X"], ["Y"], domain="ai.onnx.ml", targets=2,
                   coefficients=W.ravel().tolist(), intercepts=b.tolist())
ref = (x.astype(np.float64) @ W.T.astype(np.float64) + b).astype(np.float32)
results.append(run_case("linear_regressor", model("linear_regressor", node, [vi("X", T.FLOAT, [7, F])],
                                                  [vi("Y", T.FLOAT, [7, 2])]), {"X": x}, [ref]))
W3 = rng.normal(size=(3, F)).astype(np.float32)
b3 = rng.normal(size=3).astype(np.float32)
for post in ["NONE", "SOFTMAX", "LOGISTIC"]:
    node = h.make_node("LinearClassifier", ["X"], ["label", "prob"], domain="ai.onnx.ml",
                       classlabels_ints=[4, 5, 6], coefficients=W3.ravel().tolist(),
                       intercepts=b3.tolist(), post_transform=post)
    s = x.astype(np.float64) @ W3.T.astype(np.float64) + b3
    p = {"SOFTMAX": softmax, "LOGISTIC": logistic, "NONE": lambda v: v}[post](s)
    label = np.array([4, 5, 6], dtype=np.int64)[np.argmax(p, axis=1)]
    name = f"linear_classifier_{post.lower()}"
    m = model(name, node, [vi("X", T.FLOAT, [7, F])],
              [vi("label", T.INT64, [7]), vi("prob", T.FLOAT, [7, 3])])
    results.append(run_case(name, m, {"X": x}, [label, p.astype(np.float32)]))

# Normalizer, Scaler, OneHotEncoder.
for norm in ["MAX", "L1", "L2"]:
    xn = (rng.uniform(0.5, 2.0, size=(4, 6)) * rng.choice([-1, 1], size=(4, 6))).astype(np.float32)
    xd = xn.astype(np.float64)
    d = {"MAX": xd.max(axis=1, keepdims=True), "L1": np.abs(xd).sum(axis=1, keepdims=True),
         "L2": np.sqrt((xd * xd).sum(axis=1, keepdims=True))}[norm]
    node = h.make_node("Normalizer", ["X"], ["Y"], domain="ai.onnx.ml", norm=norm)
    name = f"normalizer_{norm.lower()}"
    results.append(run_case(name, model(name, node, [vi("X", T.FLOAT, [4, 6])], [vi("Y", T.FLOAT, [4, 6])]),
                            {"X": xn}, [(xd / d).astype(np.float32)]))
xs = rng.normal(size=(5, 3)).astype(np.float32)
off, sc = [0.5, -1.0, 2.0], [2.0, 0.25, -1.5]
node = h.make_node("Scaler", ["X"], ["Y"], domain="ai.onnx.ml", offset=off, scale=sc)
ref = ((xs.astype(np.float64) - np.float32(off)) * np.float32(sc)).astype(np.float32)
results.append(run_case("scaler", model("scaler", node, [vi("X", T.FLOAT, [5, 3])], [vi("Y", T.FLOAT, [5, 3])]),
                        {"X": xs}, [ref]))
xi = np.array([[1, 5, 9], [9, 2, 1]], dtype=np.int64)
cats = [1, 2, 9]
node = h.make_node("OneHotEncoder", ["X"], ["Y"], domain="ai.onnx.ml", cats_int64s=cats)
ref = (xi[..., None] == np.array(cats)).astype(np.float32)
results.append(run_case("one_hot_encoder", model("one_hot_encoder", node, [vi("X", T.INT64, [2, 3])],
                                                  [vi("Y", T.FLOAT, [2, 3, 3])]), {"X": xi}, [ref]))

# LabelEncoder with numeric keys (opset 2 attributes): float keys (a NaN key matches NaN) to
# int64 values with a default, and int64 keys to float values.
xf = np.array([[0.5, np.nan, 2.0], [7.0, 0.5, -1.0]], dtype=np.float32)
node = h.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_floats=[0.5, 2.0, np.nan],
                   values_int64s=[10, 20, 30], default_int64=-7)
ref = np.array([[10, 30, 20], [-7, 10, -7]], dtype=np.int64)
results.append(run_case("label_encoder_float_int", model("label_encoder_float_int", node,
                        [vi("X", T.FLOAT, [2, 3])], [vi("Y", T.INT64, [2, 3])], ml_opset=2), {"X": xf}, [ref]))
xk = np.array([3, 1, 4, 1, 5], dtype=np.int64)
node = h.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_int64s=[1, 3, 4],
                   values_floats=[0.25, -1.5, 8.0], default_float=2.5)
ref = np.array([-1.5, 0.25, 8.0, 0.25, 2.5], dtype=np.float32)
results.append(run_case("label_encoder_int_float", model("label_encoder_int_float", node,
                        [vi("X", T.INT64, [5])], [vi("Y", T.FLOAT, [5])], ml_opset=2), {"X": xk}, [ref]))

print(f"{sum(results)}/{len(results)} cases passed")
sys.exit(0 if all(results) else 1)
