#!/usr/bin/env python3
"""Writes types.onnx (opset 26) for types_test.c: the element types numpy and Debian's onnx
1.12 lack, through the C API.
  rt   = Cast(Cast(x -> bfloat16) -> float)        x float32 [8]   (must round: RNE)
  q8   = Cast(x -> float8e4m3fn)                   saturating (the default)
  q8ns = Cast(x -> float8e5m2, saturate=0)         overflow to inf
  i4   = Cast(x -> int4)                           wraps; one element per byte
  ef   = Cast(e -> float)                          e float8e5m2 [4]
  uf   = Cast(u -> float)                          u int4 [5] (an odd count)
  hb   = BitCast(h -> int16)                       h float16 [3]
  hbf  = BitCast(hb -> bfloat16)                   the same bits as bfloat16
onnx 1.12's checker rejects types above 16, so the model is written unchecked; the
expected values are constants in types_test.c, worked out by hand from the formats.
"""
import os
import sys

import onnx
from onnx import TensorProto as T
from onnx import helper as h

BF16, F8E4M3FN, F8E5M2, INT4 = 16, 17, 19, 22
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
vi = h.make_tensor_value_info
nodes = [
    h.make_node("Cast", ["x"], ["b"], name="to_bf16", to=BF16),
    h.make_node("Cast", ["b"], ["rt"], name="from_bf16", to=T.FLOAT),
    h.make_node("Cast", ["x"], ["q8"], name="to_e4m3fn", to=F8E4M3FN),
    h.make_node("Cast", ["x"], ["q8ns"], name="to_e5m2", to=F8E5M2, saturate=0),
    h.make_node("Cast", ["x"], ["i4"], name="to_int4", to=INT4),
    h.make_node("Cast", ["e"], ["ef"], name="from_e5m2", to=T.FLOAT),
    h.make_node("Cast", ["u"], ["uf"], name="from_int4", to=T.FLOAT),
    h.make_node("BitCast", ["h"], ["hb"], name="half_bits", to=T.INT16),
    h.make_node("BitCast", ["hb"], ["hbf"], name="as_bf16", to=BF16),
]
g = h.make_graph(nodes, "types",
                 [vi("x", T.FLOAT, [8]), vi("e", F8E5M2, [4]), vi("u", INT4, [5]),
                  vi("h", T.FLOAT16, [3])],
                 [vi("rt", T.FLOAT, [8]), vi("q8", F8E4M3FN, [8]), vi("q8ns", F8E5M2, [8]),
                  vi("i4", INT4, [8]), vi("ef", T.FLOAT, [4]), vi("uf", T.FLOAT, [5]),
                  vi("hb", T.INT16, [3]), vi("hbf", BF16, [3])])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 26)])
m.ir_version = 10
onnx.save(m, os.path.join(out, "types.onnx"))
