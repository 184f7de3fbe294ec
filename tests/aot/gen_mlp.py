#!/usr/bin/env python3
"""Writes the AOT test model y = relu(x @ W + b) with a dynamic 'batch' dim, plus inputs
and numpy-computed expected outputs as raw little-endian float32 files:
  <out>/mlp.onnx, <out>/x_<B>.bin, <out>/y_<B>.bin  for B in 1, 5, 16, 17
and a static two-input model z = softmax(a * c + 1, axis=-1) for the count checks:
  <out>/static2.onnx, <out>/a.bin, <out>/c.bin, <out>/z.bin
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(42)
K, N = 8, 5
W = rng.standard_normal((K, N)).astype(np.float32)
b = rng.standard_normal(N).astype(np.float32)
g = h.make_graph(
    [h.make_node("MatMul", ["x", "W"], ["t"], name="mm"),
     h.make_node("Add", ["t", "b"], ["u"], name="bias"),
     h.make_node("Relu", ["u"], ["y"], name="relu")],
    "mlp",
    [h.make_tensor_value_info("x", T.FLOAT, ["batch", K])],
    [h.make_tensor_value_info("y", T.FLOAT, ["batch", N])],
    [nh.from_array(W, "W"), nh.from_array(b, "b")])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
onnx.checker.check_model(m)
onnx.save(m, os.path.join(out, "mlp.onnx"))
for B in (1, 5, 16, 17):
    x = rng.standard_normal((B, K)).astype(np.float32)
    y = np.maximum(x.astype(np.float64) @ W.astype(np.float64) + b, 0).astype(np.float32)
    x.tofile(os.path.join(out, f"x_{B}.bin"))
    y.tofile(os.path.join(out, f"y_{B}.bin"))

g2 = h.make_graph(
    [h.make_node("Mul", ["a", "c"], ["p"], name="mul"),
     h.make_node("Add", ["p", "one"], ["q"], name="add1"),
     h.make_node("Softmax", ["q"], ["z"], name="softmax", axis=-1)],
    "static2",
    [h.make_tensor_value_info("a", T.FLOAT, [3, 7]),
     h.make_tensor_value_info("c", T.FLOAT, [3, 7])],
    [h.make_tensor_value_info("z", T.FLOAT, [3, 7])],
    [nh.from_array(np.array(1.0, np.float32), "one")])
m2 = h.make_model(g2, opset_imports=[h.make_opsetid("", 17)])
onnx.checker.check_model(m2)
onnx.save(m2, os.path.join(out, "static2.onnx"))
a = rng.standard_normal((3, 7)).astype(np.float32)
c = rng.standard_normal((3, 7)).astype(np.float32)
q = a.astype(np.float64) * c + 1
e = np.exp(q - q.max(axis=-1, keepdims=True))
z = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
a.tofile(os.path.join(out, "a.bin"))
c.tofile(os.path.join(out, "c.bin"))
z.tofile(os.path.join(out, "z.bin"))

# A dynamic-batch chain through shape arithmetic, views and a reduction:
# y = transpose(reshape(softmax(reshape(x, [batch, -1])), shape(x)), (0, 2, 1))
g3 = h.make_graph(
    [h.make_node("Shape", ["x"], ["shp"], name="shape"),
     h.make_node("Gather", ["shp", "zero"], ["b0"], name="gather", axis=0),
     h.make_node("Unsqueeze", ["b0", "axes0"], ["b1"], name="unsq"),
     h.make_node("Concat", ["b1", "minus1"], ["flat_shape"], name="concat", axis=0),
     h.make_node("Reshape", ["x", "flat_shape"], ["flat"], name="flatten"),
     h.make_node("Softmax", ["flat"], ["sm"], name="softmax", axis=-1),
     h.make_node("Reshape", ["sm", "shp"], ["back"], name="unflatten"),
     h.make_node("Transpose", ["back"], ["y"], name="transpose", perm=[0, 2, 1])],
    "chain",
    [h.make_tensor_value_info("x", T.FLOAT, ["batch", 4, 6])],
    [h.make_tensor_value_info("y", T.FLOAT, ["batch", 6, 4])],
    [nh.from_array(np.array(0, np.int64), "zero"),
     nh.from_array(np.array([0], np.int64), "axes0"),
     nh.from_array(np.array([-1], np.int64), "minus1")])
m3 = h.make_model(g3, opset_imports=[h.make_opsetid("", 17)])
onnx.checker.check_model(m3)
onnx.save(m3, os.path.join(out, "chain.onnx"))
for B in (1, 3, 7):
    x = (rng.standard_normal((B, 4, 6)) * 3).astype(np.float32)
    f = x.astype(np.float64).reshape(B, -1)
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    y = (e / e.sum(axis=-1, keepdims=True)).reshape(B, 4, 6).transpose(0, 2, 1)
    x.tofile(os.path.join(out, f"cx_{B}.bin"))
    np.ascontiguousarray(y, dtype=np.float32).tofile(os.path.join(out, f"cy_{B}.bin"))

# Two inputs sharing the dynamic dim 'batch': z = a - c.
g4 = h.make_graph(
    [h.make_node("Sub", ["a", "c"], ["z"], name="sub")],
    "pair",
    [h.make_tensor_value_info("a", T.FLOAT, ["batch", 4]),
     h.make_tensor_value_info("c", T.FLOAT, ["batch", 4])],
    [h.make_tensor_value_info("z", T.FLOAT, ["batch", 4])])
m4 = h.make_model(g4, opset_imports=[h.make_opsetid("", 17)])
onnx.checker.check_model(m4)
onnx.save(m4, os.path.join(out, "pair.onnx"))
