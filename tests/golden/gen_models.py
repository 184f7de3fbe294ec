#!/usr/bin/env python3
"""Writes the small ONNX models whose generated C++ the golden tests check.
Usage: gen_models.py <outdir>"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def save(name, nodes, inputs, outputs, inits=()):
    g = h.make_graph(nodes, name, inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name + ".onnx"))


# 1. A pointwise chain of five ops: one fused kernel.
save("pointwise_chain",
     [h.make_node("Relu", ["x"], ["a"], name="relu"),
      h.make_node("Mul", ["a", "two"], ["b"], name="mul"),
      h.make_node("Sigmoid", ["b"], ["c"], name="sigmoid"),
      h.make_node("Add", ["c", "one"], ["d"], name="add"),
      h.make_node("Tanh", ["d"], ["y"], name="tanh")],
     [h.make_tensor_value_info("x", T.FLOAT, [512, 64])],
     [h.make_tensor_value_info("y", T.FLOAT, [512, 64])],
     [nh.from_array(np.array(2.0, np.float32), "two"),
      nh.from_array(np.array(1.0, np.float32), "one")])

# 2. Softmax over the last axis: reductions (max, sum) with a pointwise epilogue.
save("softmax",
     [h.make_node("Softmax", ["x"], ["y"], name="softmax", axis=-1)],
     [h.make_tensor_value_info("x", T.FLOAT, [256, 128])],
     [h.make_tensor_value_info("y", T.FLOAT, [256, 128])])

# 3. Dynamic batch: sizes come from the symbol, never a hard-coded batch.
save("dynamic_batch",
     [h.make_node("Relu", ["x"], ["a"], name="relu"),
      h.make_node("Exp", ["a"], ["y"], name="exp")],
     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 48])],
     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 48])])

# 4. Views: Transpose then Reshape feeding a Relu is one kernel with remapped indices,
#    not a copy kernel per view.
save("views",
     [h.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[1, 0]),
      h.make_node("Reshape", ["t", "shape"], ["r"], name="reshape"),
      h.make_node("Relu", ["r"], ["y"], name="relu")],
     [h.make_tensor_value_info("x", T.FLOAT, [8, 12])],
     [h.make_tensor_value_info("y", T.FLOAT, [4, 24])],
     [nh.from_array(np.array([4, 24], np.int64), "shape")])

# 5. MatMul goes to the shim; bias + relu become its epilogue or one pointwise kernel.
save("matmul_bias_relu",
     [h.make_node("MatMul", ["x", "W"], ["t"], name="mm"),
      h.make_node("Add", ["t", "b"], ["u"], name="bias"),
      h.make_node("Relu", ["u"], ["y"], name="relu")],
     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 32])],
     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 16])],
     [nh.from_array(np.ones((32, 16), np.float32), "W"),
      nh.from_array(np.ones(16, np.float32), "b")])

# 6. Control flow: a Loop with a run-time trip count, a loop-carried value and a scan
#    output. The wrapper runs the body (its own function, own kernels) in a real C++ loop.
body = h.make_graph(
    [h.make_node("Identity", ["cond"], ["cond_out"], name="keep"),
     h.make_node("Cast", ["i"], ["fi"], name="cast", to=T.FLOAT),
     h.make_node("Mul", ["v_in", "fi"], ["t"], name="scale"),
     h.make_node("Add", ["t", "w"], ["v_out"], name="add"),
     h.make_node("Relu", ["v_out"], ["s"], name="relu")],
    "body",
    [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond", T.BOOL, []),
     h.make_tensor_value_info("v_in", T.FLOAT, [64])],
    [h.make_tensor_value_info("cond_out", T.BOOL, []),
     h.make_tensor_value_info("v_out", T.FLOAT, [64]),
     h.make_tensor_value_info("s", T.FLOAT, [64])])
save("loop_scan",
     [h.make_node("Loop", ["M", "", "v"], ["v_final", "ss"], name="loop", body=body)],
     [h.make_tensor_value_info("M", T.INT64, []), h.make_tensor_value_info("v", T.FLOAT, [64]),
      h.make_tensor_value_info("w", T.FLOAT, [64])],
     [h.make_tensor_value_info("v_final", T.FLOAT, [64]),
      h.make_tensor_value_info("ss", T.FLOAT, ["M", 64])])

# 7. A permute [4, 96, 80] -> [4, 80, 96] (CUDA: shared-memory transpose tiles).
save("permute",
     [h.make_node("Transpose", ["x"], ["y"], name="perm", perm=[0, 2, 1])],
     [h.make_tensor_value_info("x", T.FLOAT, [4, 96, 80])],
     [h.make_tensor_value_info("y", T.FLOAT, [4, 80, 96])])

# 8. Sums of two long rows [2, 65536] (CUDA: a deterministic split into chunk partials).
save("reduce_long",
     [h.make_node("ReduceSum", ["x", "axes"], ["y"], name="rowsum", keepdims=0)],
     [h.make_tensor_value_info("x", T.FLOAT, [2, 65536])],
     [h.make_tensor_value_info("y", T.FLOAT, [2])],
     [nh.from_array(np.array([1], np.int64), "axes")])

# 9. Attention: MatMul(q, kt) * 0.125 -> Softmax -> MatMul(., v) on [2, 4, 50, 64] (fused:
#    the CPU's SDPA shim, one generated kernel on CUDA).
save("attention",
     [h.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
      h.make_node("Mul", ["s", "scale"], ["ss"], name="scale"),
      h.make_node("Softmax", ["ss"], ["p"], name="softmax", axis=-1),
      h.make_node("MatMul", ["p", "v"], ["y"], name="pv")],
     [h.make_tensor_value_info("q", T.FLOAT, [2, 4, 50, 64]),
      h.make_tensor_value_info("kt", T.FLOAT, [2, 4, 64, 50]),
      h.make_tensor_value_info("v", T.FLOAT, [2, 4, 50, 64])],
     [h.make_tensor_value_info("y", T.FLOAT, [2, 4, 50, 64])],
     [nh.from_array(np.array(0.125, np.float32), "scale")])

# 10. TopK with k computed by the model: k = min(5, number of x > 0.5) is a value kernel
#     whose result the wrapper reads to the host after it ran, checks against the axis
#     length and stores in a late symbol the TopK kernels take as their extent.
save("topk_computed",
     [h.make_node("Greater", ["x", "thr"], ["above"], name="gt"),
      h.make_node("Cast", ["above"], ["ai"], name="cast", to=T.INT64),
      h.make_node("ReduceSum", ["ai"], ["count"], name="count", keepdims=1),
      h.make_node("Min", ["count", "K"], ["k"], name="mink"),
      h.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk")],
     [h.make_tensor_value_info("x", T.FLOAT, [64])],
     [h.make_tensor_value_info("values", T.FLOAT, ["k"]),
      h.make_tensor_value_info("indices", T.INT64, ["k"])],
     [nh.from_array(np.array(0.5, np.float32), "thr"),
      nh.from_array(np.array([5], np.int64), "K")])

# 11. Dynamic batch with two kernels for tuning tests (tuned_batch_cuda.check, the mock
#     driver's tuned-selection test, tests/gpu): exp(relu(x)) elementwise and a row max.
save("tuned_batch",
     [h.make_node("Relu", ["x"], ["a"], name="relu"),
      h.make_node("Exp", ["a"], ["y"], name="exp"),
      h.make_node("ReduceMax", ["x"], ["m"], name="rowmax", axes=[1], keepdims=0)],
     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 256])],
     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 256]),
      h.make_tensor_value_info("m", T.FLOAT, ["batch"])])
# 12. A transformer MLP block on [batch, 32]: Gemm(transB) + bias -> GPT-2's tanh GELU
#     written out (Pow, Tanh, ...) -> Gemm + bias -> + x (residual). Both GELU and residual
#     become matmul epilogues (level-7 shims) on the CPU and, through cuBLASLt, on CUDA.
rng = np.random.default_rng(11)
save("mlp_gelu_residual",
     [h.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
      h.make_node("Pow", ["h", "three"], ["cube"], name="cube"),
      h.make_node("Mul", ["cube", "kappa"], ["kc"], name="kappa_mul"),
      h.make_node("Add", ["h", "kc"], ["inner"], name="inner"),
      h.make_node("Mul", ["inner", "beta"], ["arg"], name="beta_mul"),
      h.make_node("Tanh", ["arg"], ["t"], name="tanh"),
      h.make_node("Add", ["t", "one"], ["p"], name="one_plus"),
      h.make_node("Mul", ["half", "h"], ["hh"], name="half_mul"),
      h.make_node("Mul", ["hh", "p"], ["g"], name="gelu"),
      h.make_node("Gemm", ["g", "W2", "b2"], ["o"], name="fc2", transB=1),
      h.make_node("Add", ["x", "o"], ["y"], name="residual")],
     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 32])],
     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 32])],
     [nh.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W1"),
      nh.from_array(rng.standard_normal(64).astype(np.float32), "b1"),
      nh.from_array(rng.standard_normal((32, 64)).astype(np.float32), "W2"),
      nh.from_array(rng.standard_normal(32).astype(np.float32), "b2"),
      nh.from_array(np.array(3.0, np.float32), "three"),
      nh.from_array(np.array(0.044715, np.float32), "kappa"),
      nh.from_array(np.array(0.7978845608028654, np.float32), "beta"),
      nh.from_array(np.array(1.0, np.float32), "one"),
      nh.from_array(np.array(0.5, np.float32), "half")])

# 13. MatMul + bias + torch's erf GELU (Div, Erf, Add, Mul, Mul): a CPU matmul epilogue; on
#     CUDA the bias fuses into cuBLASLt but the erf GELU stays a generated kernel.
save("matmul_gelu_erf",
     [h.make_node("MatMul", ["x", "W"], ["t"], name="mm"),
      h.make_node("Add", ["b", "t"], ["u"], name="bias"),
      h.make_node("Div", ["u", "sqrt2"], ["d"], name="div"),
      h.make_node("Erf", ["d"], ["e"], name="erf"),
      h.make_node("Add", ["e", "one"], ["p"], name="one_plus"),
      h.make_node("Mul", ["u", "p"], ["q"], name="mul"),
      h.make_node("Mul", ["q", "half"], ["y"], name="half")],
     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 32])],
     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 16])],
     [nh.from_array(rng.standard_normal((32, 16)).astype(np.float32), "W"),
      nh.from_array(rng.standard_normal(16).astype(np.float32), "b"),
      nh.from_array(np.array(1.4142135623730951, np.float32), "sqrt2"),
      nh.from_array(np.array(1.0, np.float32), "one"),
      nh.from_array(np.array(0.5, np.float32), "half")])

# ResNet's stem MaxPool (3x3, stride 2, pad 1): the padded window reads become selects whose
# conditions are loop-invariant in the channel loop; vectorize_check.sh wants packed max.
save("maxpool_pad",
     [h.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                  pads=[1, 1, 1, 1])],
     [h.make_tensor_value_info("x", T.FLOAT, [1, 64, 28, 28])],
     [h.make_tensor_value_info("y", T.FLOAT, [1, 64, 14, 14])])

# 14. NCHW -> NHWC of an RGB image [2, 3, 64, 48]: the 3 channels are unrolled inside a simd
# loop over the width (a 3-trip simd loop of strided loads ran scalar).
save("nchw_to_nhwc",
     [h.make_node("Transpose", ["x"], ["y"], name="to_nhwc", perm=[0, 2, 3, 1])],
     [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 64, 48])],
     [h.make_tensor_value_info("y", T.FLOAT, [2, 64, 48, 3])])

# 15. Two embedding lookups summed and reduced over the row (BERT's embedding LayerNorm): the
# gathered rows' indices are read once before the simd reduction, so its loads are contiguous
# (read inside, GCC gathered every element).
save("embedding_reduce",
     [h.make_node("Gather", ["W", "ids"], ["e"], name="word", axis=0),
      h.make_node("Gather", ["P", "types"], ["f"], name="type", axis=0),
      h.make_node("Add", ["e", "f"], ["s"], name="add"),
      h.make_node("ReduceMean", ["s"], ["y"], name="mean", axes=[-1], keepdims=0)],
     [h.make_tensor_value_info("ids", T.INT64, [4, 16]),
      h.make_tensor_value_info("types", T.INT64, [4, 16])],
     [h.make_tensor_value_info("y", T.FLOAT, [4, 16])],
     [nh.from_array(rng.standard_normal((1000, 96)).astype(np.float32), "W"),
      nh.from_array(rng.standard_normal((2, 96)).astype(np.float32), "P")])

# 16. A spatial mean of channels-last data [2, 7, 7, 96] (a global average pool after kiln's
# convs) and a ReLU: the reduction steps across rows, so the channel loop is the simd loop,
# cut into blocks that the threads share, and the reduction loops inside it are plain.
save("channels_last_mean",
     [h.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[1, 2], keepdims=0),
      h.make_node("Relu", ["m"], ["y"], name="relu")],
     [h.make_tensor_value_info("x", T.FLOAT, [2, 7, 7, 96])],
     [h.make_tensor_value_info("y", T.FLOAT, [2, 96])])
