#!/usr/bin/env python3
"""Regenerates the compat corpus (tests/abi/compat/): small model.so files built by kiln for a
portable ISA (x86-64-v2), with inputs and expected outputs computed independently in numpy
float64, and one manifest per model that compat_test.c replays on today's runtime.

Run only to ADD a model from a new kiln (the committed .so files are the point: they were
built by an older kiln and must keep working). Usage: gen_compat.py <kiln> [name ...]

Manifest lines (compat_test.c): `library F`, `weights F`, `update NAME FILE DTYPE NDIM DIMS..`
(into the inactive buffer), `swap`, `run`, `input NAME FILE DTYPE NDIM DIMS..`, `output NAME
FILE DTYPE NDIM DIMS.. TOL`, `end`.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(11)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def save(name, a):
    a.tofile(os.path.join(HERE, name))
    return name


def dt(a):
    return {np.float32: "f32", np.int64: "i64"}[a.dtype.type]


def tline(kind, name, fname, a, tol=None):
    s = f"{kind} {name} {fname} {dt(a)} {a.ndim} " + " ".join(map(str, a.shape))
    return s + (f" {tol}" if tol is not None else "")


def compile_model(kiln, model, lib, extra=()):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.onnx")
        onnx.save(model, p)
        subprocess.run([kiln, "compile", p, "-o", os.path.join(HERE, lib), "--cpu",
                        "x86-64-v2", *extra], check=True)
    subprocess.run(["strip", "--strip-debug", os.path.join(HERE, lib)], check=True)


def conv_ref(x, w, b):
    """3x3 convolution, padding 1, stride 1, in float64."""
    n, _, hh, ww = x.shape
    k, _, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, k, hh, ww))
    for i in range(hh):
        for j in range(ww):
            y[:, :, i, j] = np.tensordot(xp[:, :, i:i + r, j:j + s], w, ([1, 2, 3], [1, 2, 3]))
    return y + b[None, :, None, None]


def static_model(kiln):
    """Conv (oneDNN conv shim) + Relu + Flatten + Gemm (matmul shim): static shapes,
    embedded weights."""
    w, b = f32(4, 3, 3, 3), f32(4)
    g_w, g_b = f32(4 * 4 * 4, 5), f32(5)
    g = h.make_graph(
        [h.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         h.make_node("Relu", ["c"], ["r"], name="relu"),
         h.make_node("Flatten", ["r"], ["f"], name="flat"),
         h.make_node("Gemm", ["f", "GW", "GB"], ["y"], name="gemm")], "static",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 4, 4])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 5])],
        [nh.from_array(w, "W"), nh.from_array(b, "B"), nh.from_array(g_w, "GW"),
         nh.from_array(g_b, "GB")])
    compile_model(kiln, h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), "static.so")
    x = f32(2, 3, 4, 4)
    c = conv_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    y = np.maximum(c, 0).reshape(2, -1) @ g_w.astype(np.float64) + g_b
    return ["library static.so", "run", tline("input", "x", save("static.x.bin", x), x),
            tline("output", "y", save("static.y.bin", y.astype(np.float32)),
                  y.astype(np.float32), 1e-4), "end"]


def dynamic_model(kiln):
    """A symbolic batch (1..64): MatMul + Add + Softmax; run at batch 5 and 1."""
    w, b = f32(6, 7), f32(7)
    g = h.make_graph(
        [h.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
         h.make_node("Add", ["m", "B"], ["a"], name="add"),
         h.make_node("Softmax", ["a"], ["y"], name="softmax", axis=-1)], "dynamic",
        [h.make_tensor_value_info("x", T.FLOAT, ["batch", 6])],
        [h.make_tensor_value_info("y", T.FLOAT, ["batch", 7])],
        [nh.from_array(w, "W"), nh.from_array(b, "B")])
    compile_model(kiln, h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), "dynamic.so",
                  ["--dynamic", "batch=1:64"])
    lines = ["library dynamic.so"]
    for n in (5, 1):
        x = f32(n, 6)
        a = x.astype(np.float64) @ w + b
        e = np.exp(a - a.max(-1, keepdims=True))
        y = (e / e.sum(-1, keepdims=True)).astype(np.float32)
        lines += ["run", tline("input", "x", save(f"dynamic.x{n}.bin", x), x),
                  tline("output", "y", save(f"dynamic.y{n}.bin", y), y, 1e-5), "end"]
    return lines


def external_model(kiln):
    """Weights in a separate file (--weights external)."""
    w = f32(8, 3)
    g = h.make_graph([h.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
                      h.make_node("Tanh", ["m"], ["y"], name="tanh")], "external",
                     [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, [4, 3])], [nh.from_array(w, "W")])
    compile_model(kiln, h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), "external.so",
                  ["--weights", "external"])
    x = f32(4, 8)
    y = np.tanh(x.astype(np.float64) @ w).astype(np.float32)
    return ["library external.so", "weights external.so.weights", "run",
            tline("input", "x", save("external.x.bin", x), x),
            tline("output", "y", save("external.y.bin", y), y, 1e-5), "end"]


def constants_model(kiln):
    """Constants updated through the API: run with the compiled W, update the inactive
    buffer with W2, swap, run again."""
    w, w2, b = f32(5, 4), f32(5, 4), f32(4)
    g = h.make_graph([h.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
                      h.make_node("Add", ["m", "B"], ["y"], name="add")], "constants",
                     [h.make_tensor_value_info("x", T.FLOAT, [3, 5])],
                     [h.make_tensor_value_info("y", T.FLOAT, [3, 4])],
                     [nh.from_array(w, "W"), nh.from_array(b, "B")])
    compile_model(kiln, h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), "constants.so")
    x = f32(3, 5)
    y1 = (x.astype(np.float64) @ w + b).astype(np.float32)
    y2 = (x.astype(np.float64) @ w2 + b).astype(np.float32)
    xin = tline("input", "x", save("constants.x.bin", x), x)
    return ["library constants.so", "run", xin,
            tline("output", "y", save("constants.y1.bin", y1), y1, 1e-5), "end",
            tline("update", "W", save("constants.w2.bin", w2), w2), "swap", "run", xin,
            tline("output", "y", save("constants.y2.bin", y2), y2, 1e-5), "end"]


def nonzero_model(kiln):
    """A data-dependent output size (NonZero: a late symbol, ABI 3)."""
    g = h.make_graph([h.make_node("NonZero", ["x"], ["y"], name="nz")], "nonzero",
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                     [h.make_tensor_value_info("y", T.INT64, [2, None])])
    compile_model(kiln, h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), "nonzero.so")
    x = np.array([[0, 1.5, 0, -2], [3, 0, 0, 0.25]], np.float32)
    y = np.array(np.nonzero(x), np.int64)  # numpy's own NonZero, row-major order as ONNX
    # The caller allocates for the bound (8 elements per row); the run writes the actual dims.
    return ["library nonzero.so", "run", tline("input", "x", save("nonzero.x.bin", x), x),
            tline("output", "y", save("nonzero.y.bin", y), y, 0), "end"]


MODELS = {"static": static_model, "dynamic": dynamic_model, "external": external_model,
          "constants": constants_model, "nonzero": nonzero_model}

if __name__ == "__main__":
    kiln = sys.argv[1]
    for name in sys.argv[2:] or MODELS:
        lines = MODELS[name](kiln)
        with open(os.path.join(HERE, name + ".manifest"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("wrote", name)
