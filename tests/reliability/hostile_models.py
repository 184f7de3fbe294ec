#!/usr/bin/env python3
"""Reliability: malformed and hostile ONNX models (issue 11).

Same contract as bad_inputs.py (exit 1, a message naming what is wrong, no output file, no
temp file); the cases here are graph-structure, size and external-data attacks. The
`loop_absurd_trips` case compiles and must then fail at run time (exit 1, no hang).

Usage: hostile_models.py <kiln> <workdir> [case ...]
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import bad_inputs as base
from bad_inputs import simple_graph, valid_model, write_model

X23 = [h.make_tensor_value_info("x", T.FLOAT, [2, 3])]
Y23 = [h.make_tensor_value_info("y", T.FLOAT, [2, 3])]


def case_cycle(d):
    # a = x + b; b = relu(a): each node needs the other's output.
    m = simple_graph([h.make_node("Add", ["x", "b"], ["a"], name="add_cyc"),
                      h.make_node("Relu", ["a"], ["b"], name="relu_cyc"),
                      h.make_node("Identity", ["b"], ["y"], name="out")], X23, Y23)
    return write_model(d, m), [], ["add_cyc", "'b'", "relu_cyc", "cycle"]


def case_self_loop(d):
    m = simple_graph([h.make_node("Add", ["x", "t"], ["t"], name="self_add"),
                      h.make_node("Identity", ["t"], ["y"], name="out")], X23, Y23)
    return write_model(d, m), [], ["self_add", "its own output", "'t'"]


def case_out_of_order(d):
    # Not a cycle: the producer simply comes later (ONNX requires topological order).
    m = simple_graph([h.make_node("Relu", ["a"], ["y"], name="late_user"),
                      h.make_node("Neg", ["x"], ["a"], name="producer")], X23, Y23)
    return write_model(d, m), [], ["late_user", "'a'", "producer", "topological"]


def case_dangling_output(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], X23,
                     Y23 + [h.make_tensor_value_info("nowhere", T.FLOAT, [2, 3])])
    return write_model(d, m), [], ["'nowhere'", "not produced"]


def case_duplicate_output(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="first"),
                      h.make_node("Neg", ["x"], ["y"], name="second")], X23, Y23)
    return write_model(d, m), [], ["'y'", "more than once", "first", "second"]


def case_duplicate_input(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], X23 + X23, Y23)
    return write_model(d, m), [], ["'x'", "more than once", "graph input"]


def case_duplicate_initializer(d):
    w1 = nh.from_array(np.ones((2, 3), np.float32), "W")
    w2 = nh.from_array(np.zeros((2, 3), np.float32), "W")
    m = simple_graph([h.make_node("Add", ["x", "W"], ["y"], name="add")], X23, Y23, [w1, w2])
    return write_model(d, m), [], ["'W'", "more than once", "initializer"]


def case_output_shadows_input(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["x"], name="overwrite"),
                      h.make_node("Identity", ["x"], ["y"], name="out")], X23, Y23)
    return write_model(d, m), [], ["'x'", "more than once", "overwrite"]


def case_negative_dim(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="relu")],
                     [h.make_tensor_value_info("x", T.FLOAT, [2, -3])], Y23)
    return write_model(d, m), [], ["'x'", "-3", ">= 0"]


def case_huge_dims(d):
    # 2^40 x 2^40 float elements: the byte size does not fit in int64.
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="relu")],
                     [h.make_tensor_value_info("x", T.FLOAT, [1 << 40, 1 << 40])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1 << 40, 1 << 40])])
    return write_model(d, m), [], ["'x'", "overflows int64"]


def case_nul_in_name(d):
    # The C API hands names out as C strings: 'x\0y' would be reported as 'x'.
    xs = [h.make_tensor_value_info("x\0y", T.FLOAT, [2, 3])]
    m = simple_graph([h.make_node("Relu", ["x\0y"], ["y"], name="relu")], xs, Y23)
    return write_model(d, m), [], ["value name of graph input", "x\\0y", "NUL byte"]


def case_nul_in_stopword(d):
    # The stopword table reaches the shim as C strings: 'a\0b' would act as 'a'.
    m = simple_graph([h.make_node("StringNormalizer", ["s"], ["y"], name="norm",
                                  stopwords=["ok", "a\0b"])],
                     [h.make_tensor_value_info("s", T.STRING, [4])],
                     [h.make_tensor_value_info("y", T.STRING, None)])
    return write_model(d, m), [], ["node 'norm'", "stopword", "NUL byte"]


def raw_tensor(name, dims, raw=b"", dtype=T.FLOAT):
    t = onnx.TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def with_weight(d, t, shape=(2, 3)):
    xs = [h.make_tensor_value_info("x", T.FLOAT, list(shape))]
    ys = [h.make_tensor_value_info("y", T.FLOAT, list(shape))]
    return write_model(d, simple_graph([h.make_node("Add", ["x", "W"], ["y"], name="add_w")],
                                       xs, ys, [t]))


def float_tensor(name, dims, values):
    t = raw_tensor(name, dims)
    t.ClearField("raw_data")
    t.float_data.extend(values)
    return t


def case_numel_overflow(d):
    # 2^32 * 2^32 elements overflows int64 before any data is looked at.
    return with_weight(d, raw_tensor("W", [1 << 32, 1 << 32])), [], ["'W'", "overflows int64"]


def case_zero_product_with_data(d):
    # dims [3, 0] hold no element, yet the tensor carries 3 floats.
    t = float_tensor("W", [3, 0], [1.0, 2.0, 3.0])
    return with_weight(d, t), [], ["'W'", "3 values for 0 elements"]


def case_init_data_short(d):
    t = float_tensor("W", [2, 3], [1.0] * 5)
    return with_weight(d, t), [], ["'W'", "5 values for 6 elements"]


def case_init_data_long(d):
    t = float_tensor("W", [2, 3], [1.0] * 7)
    return with_weight(d, t), [], ["'W'", "7 values for 6 elements"]


def case_raw_data_wrong_size(d):
    t = raw_tensor("W", [2, 3], b"\0" * 20)
    return with_weight(d, t), [], ["'W'", "20 bytes", "24"]


def external(name, dims, location, offset=None, length=None):
    t = raw_tensor(name, dims)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def case_external_past_eof(d):
    np.zeros(4, np.float32).tofile(os.path.join(d, "w.bin"))  # 16 bytes, 24 needed
    t = external("W", [2, 3], "w.bin", offset=0, length=24)
    return with_weight(d, t), [], ["'W'", "w.bin", "exceeds", "16 bytes"]


def case_external_offset_past_eof(d):
    np.zeros(6, np.float32).tofile(os.path.join(d, "w.bin"))
    t = external("W", [2, 3], "w.bin", offset=999999999999999999, length=24)
    return with_weight(d, t), [], ["'W'", "w.bin", "exceeds"]


def case_external_bad_offset(d):
    np.zeros(6, np.float32).tofile(os.path.join(d, "w.bin"))
    t = external("W", [2, 3], "w.bin", offset="-8")
    return with_weight(d, t), [], ["'W'", "offset", "'-8'"]


def case_external_wrong_length(d):
    np.zeros(8, np.float32).tofile(os.path.join(d, "w.bin"))
    t = external("W", [2, 3], "w.bin", offset=0, length=32)
    return with_weight(d, t), [], ["'W'", "length 32", "24 bytes"]


def case_external_symlink_escape(d):
    outside = os.path.join(os.path.dirname(d), "secret.bin")
    np.zeros(6, np.float32).tofile(outside)
    os.symlink(outside, os.path.join(d, "innocent.bin"))
    t = external("W", [2, 3], "innocent.bin")
    return with_weight(d, t), [], ["'W'", "innocent.bin", "leaves the model directory"]


def case_external_absolute(d):
    # Even a file inside the model directory is refused when named by an absolute path.
    p = os.path.join(d, "w.bin")
    np.zeros(6, np.float32).tofile(p)
    t = external("W", [2, 3], p)
    return with_weight(d, t), [], ["'W'", "absolute"]


def case_external_directory(d):
    os.makedirs(os.path.join(d, "wdir"))
    t = external("W", [2, 3], "wdir")
    return with_weight(d, t), [], ["'W'", "wdir"]


def case_opset_missing(d):
    m = valid_model()
    del m.opset_import[:]
    return write_model(d, m), [], ["no opset_import", "model.onnx"]


def case_opset_repeated(d):
    m = valid_model()
    m.opset_import.extend([h.make_opsetid("ai.onnx", 13)])
    return write_model(d, m), [], ["more than once", "ai.onnx"]


def case_protobuf_2gib(d):
    # A sparse file just over 2 GiB: refused by its size before anything is read.
    p = os.path.join(d, "model.onnx")
    with open(p, "wb") as f:
        f.write(valid_model().SerializeToString())
        f.truncate((2 << 30) + 16)
    return p, [], ["2 GiB", "external data", "model.onnx"]


def nested_ifs(depth):
    """An If whose then-branch is an If whose then-branch ... `depth` levels deep."""
    def leaf(tag):
        return h.make_graph([h.make_node("Identity", ["x"], [f"o{tag}"], name=f"id{tag}")],
                            f"leaf{tag}", [], [h.make_tensor_value_info(f"o{tag}", T.FLOAT,
                                                                         [2, 3])])
    g = leaf(depth)
    for k in range(depth - 1, -1, -1):
        node = h.make_node("If", ["c"], [f"o{k}"], name=f"if{k}", then_branch=g,
                           else_branch=leaf(f"e{k}"))
        g = h.make_graph([node], f"g{k}", [], [h.make_tensor_value_info(f"o{k}", T.FLOAT,
                                                                       [2, 3])])
    top = h.make_graph(list(g.node) + [h.make_node("Identity", ["o0"], ["y"], name="out")], "top",
                       X23 + [h.make_tensor_value_info("c", T.BOOL, [])], Y23)
    return h.make_model(top, opset_imports=[h.make_opsetid("", 17)])


def case_nested_subgraphs(d):
    # 40 levels: parses, then refused by kiln's own nesting limit (32), naming the node.
    return write_model(d, nested_ifs(40)), [], ["nests subgraphs", "32", "if32"]


def case_nested_subgraphs_protobuf(d):
    # 400 levels: deeper than the protobuf recursion limit; refused while parsing.
    return write_model(d, nested_ifs(400)), [], ["nested more than", "model.onnx"]


def loop_model():
    # y = x + 1 repeated M times; M is a run-time input, the condition is absent (a for loop).
    body = h.make_graph(
        [h.make_node("Identity", ["cin"], ["cout"], name="keep_cond"),
         h.make_node("Add", ["vin", "one"], ["vout"], name="inc")], "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cin", T.BOOL, []),
         h.make_tensor_value_info("vin", T.FLOAT, [2, 3])],
        [h.make_tensor_value_info("cout", T.BOOL, []),
         h.make_tensor_value_info("vout", T.FLOAT, [2, 3])],
        [nh.from_array(np.ones((2, 3), np.float32), "one")])
    g = h.make_graph([h.make_node("Loop", ["M", "", "x"], ["y"], name="absurd_loop", body=body)],
                     "g", X23 + [h.make_tensor_value_info("M", T.INT64, [])], Y23)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def run_loop(trips, d, lib, timeout):
    xs = os.path.join(d, "x.npy")
    ms = os.path.join(d, "M.npy")
    np.save(xs, np.zeros((2, 3), np.float32))
    np.save(ms, np.array(trips, np.int64))
    outdir = os.path.join(d, f"out{trips}")
    os.makedirs(outdir, exist_ok=True)
    p = subprocess.run([base.KILN, "run", lib, "--input", f"x={xs}", "--input", f"M={ms}",
                        "--output-dir", outdir], capture_output=True, text=True, timeout=timeout)
    return p, outdir


def check_loop_absurd_trips():
    """Compiles a Loop with a run-time trip count; M = 3 works, M = 2^62 is refused at once."""
    d = os.path.join(base.WORK, "loop_absurd_trips")
    os.makedirs(d, exist_ok=True)
    lib = os.path.join(d, "loop.so")
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(d, "cache"))
    c = subprocess.run([base.KILN, "compile", write_model(d, loop_model()), "-o", lib],
                       capture_output=True, text=True, timeout=300, env=env)
    errors = []
    if c.returncode != 0:
        errors.append(f"compile failed: {c.stderr.strip()[:300]}")
    else:
        ok, _ = run_loop(3, d, lib, 60)
        y = os.path.join(d, "out3", "y.npy")
        if ok.returncode != 0 or not os.path.exists(y) or not np.array_equal(
                np.load(y), np.full((2, 3), 3, np.float32)):
            errors.append(f"M=3 did not give x+3: rc={ok.returncode} {ok.stderr.strip()[:200]}")
        try:
            bad, outdir = run_loop(1 << 62, d, lib, 60)
            msg = bad.stdout + bad.stderr
            if bad.returncode != 1:
                errors.append(f"M=2^62: expected exit 1, got {bad.returncode}")
            for n in ("absurd_loop", "4611686018427387904", "trip count"):
                if n not in msg:
                    errors.append(f"M=2^62: message does not mention {n!r}: {msg.strip()[:300]}")
            if os.listdir(outdir):
                errors.append(f"M=2^62 left outputs: {os.listdir(outdir)}")
        except subprocess.TimeoutExpired:
            errors.append("M=2^62: still running after 60 s (a hang)")
    print(f"[{'FAIL' if errors else 'ok'}] loop_absurd_trips")
    for e in errors:
        print(f"    - {e}")
    return not errors


CASES = [(name[5:], fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]

if __name__ == "__main__":
    if base.ONLY == {"loop_absurd_trips"}:
        sys.exit(0 if check_loop_absurd_trips() else 1)
    if base.ONLY == {"--list"}:
        print(";".join([n for n, _ in CASES] + ["loop_absurd_trips"]))
        sys.exit(0)
    sys.exit(base.main(CASES))
