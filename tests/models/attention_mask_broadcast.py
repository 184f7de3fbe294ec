#!/usr/bin/python3
"""Fused attention with a mask whose dims are symbols of their own.

A model computes softmax(q @ kt * 0.35 + mask) @ v with q [b, 2, s, 8] and the additive
mask [1, 1, m, n]: m and n are not provably s, so the fusion (passes/fuse_attention.cpp)
must accept them as run-time broadcasts and the lowering must give a dim that is 1 at run
time a zero stride. Checks that the model compiles to one attention call, then runs it with
masks of shape [1, 1, 1, s], [1, 1, s, s] and [1, 1, s, 1] against a float64 reference.

Usage: attention_mask_broadcast.py <kiln> <work dir>
"""

import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

# fp32 matmuls over 8 terms and a softmax over 5: errors are ~1e-7 of values of order 1.
TOLERANCE = 1e-5


def build_model(path):
    inputs = [
        helper.make_tensor_value_info("q", TensorProto.FLOAT, ["b", 2, "s", 8]),
        helper.make_tensor_value_info("kt", TensorProto.FLOAT, ["b", 2, 8, "s"]),
        helper.make_tensor_value_info("v", TensorProto.FLOAT, ["b", 2, "s", 8]),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, "m", "n"]),
    ]
    nodes = [
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.35])
    graph = helper.make_graph(nodes, "masked_attention", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [scale])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def reference(q, kt, v, mask):
    s = (q.astype(np.float64) @ kt) * np.float64(np.float32(0.35)) + mask
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    return (p / p.sum(-1, keepdims=True)) @ v


def main():
    kiln, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    model, so = os.path.join(work, "model.onnx"), os.path.join(work, "model.so")
    build_model(model)
    subprocess.run([kiln, "compile", model, "-o", so] +
                   sum([["--dynamic", f"{d}=1:64"] for d in "bsmn"], []), check=True)
    info = subprocess.run([kiln, "inspect", so], check=True, capture_output=True, text=True)
    if "1 library calls" not in info.stdout:
        print(info.stdout)
        print("FAIL: the masked attention was not fused into one attention call")
        return 1
    rng = np.random.default_rng(7)
    b, s = 2, 5
    q = rng.standard_normal((b, 2, s, 8)).astype(np.float32)
    kt = rng.standard_normal((b, 2, 8, s)).astype(np.float32)
    v = rng.standard_normal((b, 2, s, 8)).astype(np.float32)
    failed = 0
    for tag, shape in [("row", (1, 1, 1, s)), ("full", (1, 1, s, s)), ("column", (1, 1, s, 1))]:
        mask = (3 * rng.standard_normal(shape)).astype(np.float32)
        args = [kiln, "run", so, "--output-dir", os.path.join(work, tag)]
        for name, value in [("q", q), ("kt", kt), ("v", v), ("mask", mask)]:
            path = os.path.join(work, f"{tag}_{name}.npy")
            np.save(path, value)
            args += ["--input", f"{name}={path}"]
        subprocess.run(args, check=True, capture_output=True)
        got = np.load(os.path.join(work, tag, "y.npy"))
        err = np.abs(got - reference(q, kt, v, mask)).max()
        ok = err <= TOLERANCE
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} mask {list(shape)}: max abs error {err:.3g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
