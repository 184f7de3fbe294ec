#!/usr/bin/env python3
"""Writes the AOT models whose shapes depend on input values (checked by values_test.c):
  select.onnx   idx = NonZero(x), x float32 [3, 4]     (output size known only after the run)
  reshape.onnx  y = Reshape(x, shape), x [2, 3, 4], shape an int64 [3] input (0 / -1 allowed)
  reduce.onnx   y = ReduceSum(x, axes, keepdims=0), x [2, 3, 4], axes an int64 [1] input
  strings.onnx  s = Cast(x -> string), x float32 [4]; f = Cast(t -> float), t string [3]
Expected values are computed by the C host itself from the definitions (nonzero scan,
row-major reshape, sums, decimal text), not by kiln.
"""
import os
import sys

import onnx
from onnx import TensorProto as T
from onnx import helper as h

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def save(name, nodes, inputs, outputs, opset=17):
    g = h.make_graph(nodes, name, inputs, outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name + ".onnx"))


vi = h.make_tensor_value_info
save("select", [h.make_node("NonZero", ["x"], ["idx"], name="nz")],
     [vi("x", T.FLOAT, [3, 4])], [vi("idx", T.INT64, [2, "n"])])
save("reshape", [h.make_node("Reshape", ["x", "shape"], ["y"], name="rs")],
     [vi("x", T.FLOAT, [2, 3, 4]), vi("shape", T.INT64, [3])],
     [vi("y", T.FLOAT, ["a", "b", "c"])])
save("reduce", [h.make_node("ReduceSum", ["x", "axes"], ["y"], name="rsum", keepdims=0)],
     [vi("x", T.FLOAT, [2, 3, 4]), vi("axes", T.INT64, [1])],
     [vi("y", T.FLOAT, ["a", "b"])])
save("strings", [h.make_node("Cast", ["x"], ["s"], name="tostr", to=T.STRING),
                 h.make_node("Cast", ["t"], ["f"], name="fromstr", to=T.FLOAT)],
     [vi("x", T.FLOAT, [4]), vi("t", T.STRING, [3])],
     [vi("s", T.STRING, [4]), vi("f", T.FLOAT, [3])])
