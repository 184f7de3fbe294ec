#!/usr/bin/python3
"""End-to-end checks of shapes that depend on values the model computes (not only on graph
inputs): a TopK k, Slice ends and a Reshape target computed by kernels become late symbols
(docs/architecture.md, "Shape values known only at run time"). Each model is built here with
onnx.helper, compiled once with kiln (as given and with --all-dims-dynamic), run on several
inputs, and compared with numpy references computed from the op definitions; the output dims
kiln writes back must match the reference's. Values the run computes outside what kiln sized
the run for must fail with a clear message.

With --torch, also a detection post-processing head written in PyTorch (per-class NMS with
torchvision.ops.nms, TopK with k = min(K, number kept), Gather of boxes and labels), exported
with torch.onnx.export and compared with PyTorch's own outputs.

With --cuda (on a machine with a GPU), the models are compiled with --device cuda (the value
kernels then run on the GPU and the wrapper reads their results back); the NMS cases are
skipped there, since kiln refuses NonMaxSuppression on CUDA.

    /usr/bin/python3 tests/models/computed_shapes_check.py <kiln> <work dir> [--torch] [--cuda]
                                                           [filter]

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
WITH_TORCH = "--torch" in sys.argv[3:]
CUDA = "--cuda" in sys.argv[3:]
rest = [a for a in sys.argv[3:] if a not in ("--torch", "--cuda")]
only = rest[0] if rest else None
os.makedirs(OUT, exist_ok=True)
vi = h.make_tensor_value_info
DEVICE = ["--device", "cuda"] if CUDA else []
VARIANTS = {"static": DEVICE, "dynamic": DEVICE + ["--all-dims-dynamic"]}


def model(name, nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, name, inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def same(got, want):
    """Outputs are selections and copies of input elements (no arithmetic), so they must be
    equal exactly; integer outputs too."""
    return got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)


def run_model(name, path, runs, cuda_ok=True):
    """runs: list of (feeds, refs or an expected error text). One model.so per variant serves
    every run."""
    if (only and only not in name) or (CUDA and not cuda_ok):
        return True
    d = os.path.join(OUT, name)
    ok = True
    for variant, flags in VARIANTS.items():
        so = os.path.join(d, variant + ".so")
        p = subprocess.run([KILN, "compile", path, "-o", so] + flags, capture_output=True,
                           text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] compile: {p.stderr.strip()}")
            ok = False
            continue
        for r, (feeds, want) in enumerate(runs):
            rd = os.path.join(d, f"{variant}_run{r}")
            os.makedirs(rd, exist_ok=True)
            args = []
            for k, v in feeds.items():
                f = os.path.join(rd, k + ".npy")
                np.save(f, v)
                args += ["--input", f"{k}={f}"]
            od = os.path.join(rd, "out")
            os.makedirs(od, exist_ok=True)
            p = subprocess.run([KILN, "run", so, "--output-dir", od] + args, capture_output=True,
                               text=True)
            tag = f"{name} [{variant}] run {r}"
            if isinstance(want, str):
                good = p.returncode != 0 and want in p.stderr
                print(f"{'ok  ' if good else 'FAIL'} {tag} error: {p.stderr.strip()[:300]}")
                ok &= good
                continue
            if p.returncode:
                print(f"FAIL {tag}: {p.stderr.strip()}")
                ok = False
                continue
            case_ok = True
            for oname, ref in want.items():
                got = np.load(os.path.join(od, oname + ".npy"))
                if not same(got, ref):
                    print(f"FAIL {tag} output {oname}: got {got.dtype}{list(got.shape)} "
                          f"{got.ravel()[:8]} want {ref.dtype}{list(ref.shape)} {ref.ravel()[:8]}")
                    case_ok = False
            print(f"{'ok  ' if case_ok else 'FAIL'} {tag} dims "
                  f"{ {k: list(v.shape) for k, v in want.items()} }")
            ok &= case_ok
    return ok


def save(name, m):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    return path


def topk_ref(x, k):
    """ONNX TopK (largest, sorted): ties keep the lower index first."""
    order = sorted(range(len(x)), key=lambda i: (-x[i], i))[:k]
    return x[order], np.array(order, np.int64)


results = []
rng = np.random.default_rng(7)
i64 = lambda v: np.array(v, np.int64)  # noqa: E731

# 1. TopK with k = min(K, number of scores above a threshold): k is computed by a
#    reduction kernel, so it is a late symbol (bound: the axis length 20).
m = model("topk_computed_k",
          [h.make_node("Greater", ["x", "thr"], ["above"]),
           h.make_node("Cast", ["above"], ["ai"], to=T.INT64),
           h.make_node("ReduceSum", ["ai"], ["count"], keepdims=1),
           h.make_node("Min", ["count", "K"], ["k"]),
           h.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk")],
          [vi("x", T.FLOAT, [20])],
          [vi("values", T.FLOAT, ["k"]), vi("indices", T.INT64, ["k"])],
          [nh.from_array(np.array(0.5, np.float32), "thr"), nh.from_array(i64([5]), "K")])
path = save("topk_computed_k", m)
runs = []
for above in [0, 3, 12]:  # k = 0, 3, 5
    x = rng.uniform(0.0, 0.49, 20).astype(np.float32)
    x[rng.choice(20, above, replace=False)] = rng.uniform(0.51, 1.0, above).astype(np.float32)
    v, ix = topk_ref(x, min(5, above))
    runs.append(({"x": x}, {"values": v, "indices": ix}))
results.append(run_model("topk_computed_k", path, runs))

# 2. Slice with ends computed by the model: y = x[:, :e] with e = (number of positives in
#    row 0) - 4, negative values counting from the end as ONNX Slice does.
m = model("slice_computed_end",
          [h.make_node("Gather", ["x", "zero"], ["row"], axis=0),
           h.make_node("Greater", ["row", "fzero"], ["pos"]),
           h.make_node("Cast", ["pos"], ["pi"], to=T.INT64),
           h.make_node("ReduceSum", ["pi"], ["cnt"], keepdims=1),
           h.make_node("Sub", ["cnt", "four"], ["e"]),
           h.make_node("Slice", ["x", "starts", "e", "axes"], ["y"], name="slice")],
          [vi("x", T.FLOAT, [3, 10])], [vi("y", T.FLOAT, [3, "e"])],
          [nh.from_array(i64(0), "zero"), nh.from_array(np.array(0, np.float32), "fzero"),
           nh.from_array(i64([4]), "four"), nh.from_array(i64([0]), "starts"),
           nh.from_array(i64([1]), "axes")])
path = save("slice_computed_end", m)
runs = []
for positives in [10, 7, 4, 1]:  # e = 6, 3, 0, -3 (= 7)
    x = -rng.uniform(0.1, 1.0, (3, 10)).astype(np.float32)
    x[0, rng.choice(10, positives, replace=False)] *= -1
    e = positives - 4
    runs.append(({"x": x}, {"y": x[:, :e]}))
results.append(run_model("slice_computed_end", path, runs))

# 3. Reshape to a computed target [k, -1] (k = max of an int input: a reduction kernel),
#    then Relu so the reshaped view is realized. The element count is checked during the run.
m = model("reshape_computed",
          [h.make_node("ReduceMax", ["d"], ["k"], keepdims=1),
           h.make_node("Concat", ["k", "minus1"], ["shape"], axis=0),
           h.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
           h.make_node("Relu", ["r"], ["y"])],
          [vi("x", T.FLOAT, [24]), vi("d", T.INT64, [3])], [vi("y", T.FLOAT, ["a", "b"])],
          [nh.from_array(i64([-1]), "minus1")])
path = save("reshape_computed", m)
x = rng.standard_normal(24).astype(np.float32)
runs = [({"x": x, "d": i64([2, 3, 1])}, {"y": np.maximum(x, 0).reshape(3, 8)}),
        ({"x": x, "d": i64([6, 1, 4])}, {"y": np.maximum(x, 0).reshape(6, 4)}),
        ({"x": x, "d": i64([5, 1, 1])}, "the target shape must keep the element count"),
        ({"x": x, "d": i64([30, 1, 1])}, "computed by the model, is outside")]
results.append(run_model("reshape_computed", path, runs))

# 3b. Reshape to [k, 4]: one computed dim beside a constant one, so k is bounded by 24 / 4.
m = model("reshape_rows",
          [h.make_node("ReduceMax", ["d"], ["k"], keepdims=1),
           h.make_node("Concat", ["k", "cols"], ["shape"], axis=0),
           h.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
          [vi("x", T.FLOAT, [24]), vi("d", T.INT64, [2])], [vi("y", T.FLOAT, ["k", 4])],
          [nh.from_array(i64([4]), "cols")])
path = save("reshape_rows", m)
runs = [({"x": x, "d": i64([6, 2])}, {"y": x.reshape(6, 4)}),
        ({"x": x, "d": i64([3, 2])}, "the target shape must keep the element count")]
results.append(run_model("reshape_rows", path, runs))


# 4. Detection post-processing built from ONNX nodes: per-class NMS (NonMaxSuppression over
#    [1, C, N] scores), the kept boxes' scores gathered, k = ReduceMin(Concat([K], kept)) as
#    torchvision's _topk_min exports it, TopK, then boxes and labels gathered by the winners.
def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms_ref(boxes, scores, iou_thr, score_thr):
    """ONNX NonMaxSuppression, one batch, corner boxes: per class, by descending score
    (ties: lower index), keep a box scoring above score_thr unless its IoU with a kept box of
    the class exceeds iou_thr. Returns [M, 3] (batch, class, box) in class order."""
    out = []
    for c in range(scores.shape[0]):
        kept = []
        for i in sorted(range(len(boxes)), key=lambda i: (-scores[c, i], i)):
            if scores[c, i] <= score_thr:
                break
            if all(iou(boxes[i].astype(np.float64), boxes[j].astype(np.float64)) <= iou_thr
                   for j in kept):
                kept.append(i)
        out += [[0, c, i] for i in kept]
    return np.array(out, np.int64).reshape(-1, 3)


def random_boxes(n):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 30, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


N, C, K = 40, 3, 6
nodes = [
    h.make_node("NonMaxSuppression", ["boxes", "scores", "maxout", "iou", "sthr"], ["sel"],
                name="nms"),
    h.make_node("Gather", ["sel", "one"], ["cls"], axis=1),
    h.make_node("Gather", ["sel", "two"], ["idx"], axis=1),
    h.make_node("Mul", ["cls", "n"], ["base"]),
    h.make_node("Add", ["base", "idx"], ["flat"]),
    h.make_node("Reshape", ["scores", "flatshape"], ["allscores"]),
    h.make_node("Gather", ["allscores", "flat"], ["kscores"], axis=0),
    h.make_node("Shape", ["kscores"], ["kshape"]),
    h.make_node("Concat", ["K", "kshape"], ["cands"], axis=0),
    h.make_node("ReduceMin", ["cands"], ["k"], keepdims=1),
    h.make_node("TopK", ["kscores", "k"], ["top", "order"], name="topk"),
    h.make_node("Gather", ["idx", "order"], ["win"], axis=0),
    h.make_node("Gather", ["boxes2d", "win"], ["out_boxes"], axis=0),
    h.make_node("Gather", ["cls", "order"], ["out_labels"], axis=0),
    h.make_node("Squeeze", ["boxes", "zero1"], ["boxes2d"]),
]
# Squeeze must come before its use: put it first.
nodes = nodes[-1:] + nodes[:-1]
m = model("nms_topk_head", nodes,
          [vi("boxes", T.FLOAT, [1, N, 4]), vi("scores", T.FLOAT, [1, C, N])],
          [vi("out_boxes", T.FLOAT, ["k", 4]), vi("top", T.FLOAT, ["k"]),
           vi("out_labels", T.INT64, ["k"])],
          [nh.from_array(i64([N]), "maxout"), nh.from_array(np.array([0.5], np.float32), "iou"),
           nh.from_array(np.array([0.6], np.float32), "sthr"), nh.from_array(i64(1), "one"),
           nh.from_array(i64(2), "two"), nh.from_array(i64(N), "n"),
           nh.from_array(i64([-1]), "flatshape"), nh.from_array(i64([K]), "K"),
           nh.from_array(i64([0]), "zero1")])
path = save("nms_topk_head", m)
runs = []
for hi in [0.9, 0.62, 0.5]:  # many kept (k = K), few kept (k < K), none kept (k = 0)
    boxes = random_boxes(N)
    scores = rng.uniform(0.0, hi, (C, N)).astype(np.float32)
    sel = nms_ref(boxes, scores, 0.5, 0.6)
    ks = scores[sel[:, 1], sel[:, 2]]
    top, order = topk_ref(ks, min(K, len(ks)))
    runs.append(({"boxes": boxes[None], "scores": scores[None]},
                 {"out_boxes": boxes[sel[order, 2]].reshape(-1, 4), "top": top,
                  "out_labels": sel[order, 1]}))
results.append(run_model("nms_topk_head", path, runs, cuda_ok=False))

# 5. Still refused, with the precise message: a computed Expand shape has no bound kiln could
#    allocate for.
m = model("expand_computed",
          [h.make_node("ReduceMax", ["d"], ["n"], keepdims=1),
           h.make_node("Expand", ["x", "n"], ["y"], name="expand")],
          [vi("x", T.FLOAT, [1]), vi("d", T.INT64, [2])], [vi("y", T.FLOAT, ["n"])])
path = save("expand_computed", m)
if not only or only in "expand_computed":
    p = subprocess.run([KILN, "compile", path, "-o", os.path.join(OUT, "expand_computed",
                                                                    "m.so")] + DEVICE,
                       capture_output=True, text=True)
    good = p.returncode != 0 and "is computed by the model at run time" in p.stderr
    print(f"{'ok  ' if good else 'FAIL'} expand_computed compile error: {p.stderr.strip()[:300]}")
    results.append(good)

if WITH_TORCH:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import detection_head  # noqa: E402

    for name, path, runs in detection_head.cases(OUT, rng):
        results.append(run_model(name, path, runs, cuda_ok=False))

print("ALL OK" if all(results) else "SOME FAILED")
sys.exit(0 if all(results) else 1)
