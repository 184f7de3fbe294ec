#!/usr/bin/env python3
"""Writes the sibling-MatMul swap model: x [S, 32] (dynamic S) times three constant weights
(query 32x24, key 32x24, value 32x16) each plus a bias, as a transformer's Q/K/V projections;
outputs -Q, -K and Vᵀ (ops that do not fuse into the matmul, so the projections stay siblings).
The host (qkv_swap_test.c) computes its reference from constants read through the C API.
  <out>/qkv.onnx
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
rng = np.random.default_rng(12)
K = 32
widths = {"query": 24, "key": 24, "value": 16}
inits, nodes = [], []
for name, n in widths.items():
    inits.append(nh.from_array(rng.standard_normal((K, n)).astype(np.float32), f"{name}.weight"))
    inits.append(nh.from_array(rng.standard_normal(n).astype(np.float32), f"{name}.bias"))
    nodes.append(h.make_node("MatMul", ["x", f"{name}.weight"], [f"{name}_mm"], name=f"{name}_mm"))
    nodes.append(h.make_node("Add", [f"{name}_mm", f"{name}.bias"], [name], name=f"{name}_add"))
nodes += [h.make_node("Neg", ["query"], ["q_out"], name="q_neg"),
          h.make_node("Neg", ["key"], ["k_out"], name="k_neg"),
          h.make_node("Transpose", ["value"], ["v_out"], name="v_t", perm=[1, 0])]
g = h.make_graph(nodes, "qkv", [h.make_tensor_value_info("x", T.FLOAT, ["S", K])],
                 [h.make_tensor_value_info("q_out", T.FLOAT, ["S", 24]),
                  h.make_tensor_value_info("k_out", T.FLOAT, ["S", 24]),
                  h.make_tensor_value_info("v_out", T.FLOAT, [16, "S"])], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
onnx.checker.check_model(m)
onnx.save(m, os.path.join(out, "qkv.onnx"))
