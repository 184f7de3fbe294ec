#!/usr/bin/env python3
"""Reliability: `kiln compile` on bad models must fail cleanly.

For each case: exit status exactly 1 (not a crash: no signal, no code >= 70), a message
that names what is wrong (file, node, op, opset, input as applicable), and no output
file left behind -- neither the -o path nor any temp file next to it.

Usage: bad_inputs.py <kiln> <workdir> [case ...]
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

KILN, WORK = sys.argv[1], sys.argv[2]
ONLY = set(sys.argv[3:])


def valid_model(opset=17):
    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 1000.0
    g = h.make_graph(
        [h.make_node("MatMul", ["x", "W"], ["t"], name="mm"),
         h.make_node("Relu", ["t"], ["y"], name="relu")],
        "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 64])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 64])], [nh.from_array(w, "W")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def simple_graph(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def write_model(d, m):
    p = os.path.join(d, "model.onnx")
    with open(p, "wb") as f:
        f.write(m.SerializeToString())
    return p


def case_not_onnx(d):
    p = os.path.join(d, "model.onnx")
    with open(p, "w") as f:
        f.write("this is not an ONNX model, just some text\n" * 20)
    return p, [], ["model.onnx"]


def case_truncated(d):
    data = valid_model().SerializeToString()
    p = os.path.join(d, "model.onnx")
    with open(p, "wb") as f:
        f.write(data[: len(data) // 2])
    return p, [], ["model.onnx"]


def case_empty_file(d):
    p = os.path.join(d, "model.onnx")
    open(p, "wb").close()
    return p, [], ["model.onnx"]


def case_unknown_op(d):
    m = simple_graph([h.make_node("FrobnicateTensor", ["x"], ["y"], name="mystery_node")],
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    return write_model(d, m), [], ["mystery_node", "FrobnicateTensor", "17"]


def case_unsupported_dtype(d):
    m = simple_graph([h.make_node("Identity", ["z"], ["y"], name="ident")],
                     [h.make_tensor_value_info("z", T.COMPLEX64, [2, 3])],
                     [h.make_tensor_value_info("y", T.COMPLEX64, [2, 3])])
    # kiln names the input; the dtype appears as its ONNX number (14 = COMPLEX64).
    return write_model(d, m), [], ["'z'", "model.onnx", ("complex64", "14")]


def case_undefined_input(d):
    m = simple_graph([h.make_node("Add", ["x", "ghost_bias"], ["y"], name="add_ghost")],
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    return write_model(d, m), [], ["add_ghost", "Add", "ghost_bias", "model.onnx"]


def case_external_data_escape(d):
    # The file exists, so the only thing wrong is that it lies outside the model's dir.
    outside = os.path.join(os.path.dirname(d), "outside.bin")
    np.zeros(6, np.float32).tofile(outside)
    t = onnx.TensorProto()
    t.name = "W"
    t.data_type = T.FLOAT
    t.dims.extend([2, 3])
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "../outside.bin"), ("offset", "0"), ("length", "24")):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = simple_graph([h.make_node("Add", ["x", "W"], ["y"], name="add_w")],
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])], [t])
    return write_model(d, m), [], ["'W'", "../outside.bin", "model.onnx"]


def case_external_data_missing(d):
    t = onnx.TensorProto()
    t.name = "W"
    t.data_type = T.FLOAT
    t.dims.extend([2, 3])
    t.data_location = onnx.TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "weights_that_do_not_exist.bin"
    m = simple_graph([h.make_node("Add", ["x", "W"], ["y"], name="add_w")],
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])], [t])
    return write_model(d, m), [], ["weights_that_do_not_exist.bin"]


def case_bad_broadcast(d):
    m = simple_graph([h.make_node("Add", ["a", "b"], ["y"], name="add_mismatch")],
                     [h.make_tensor_value_info("a", T.FLOAT, [2, 3]),
                      h.make_tensor_value_info("b", T.FLOAT, [4, 5])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    return write_model(d, m), [], ["add_mismatch", "Add"]


def case_opset_too_new(d):
    m = valid_model(opset=99)
    return write_model(d, m), [], ["99"]


def case_missing_file(d):
    return os.path.join(d, "no_such_model.onnx"), [], ["no_such_model.onnx"]


def case_dynamic_unknown_name(d):
    return write_model(d, valid_model()), ["--dynamic", "nonexistent_dim=1:8"], ["nonexistent_dim"]


def case_dynamic_bad_range(d):
    m = simple_graph([h.make_node("Relu", ["x"], ["y"], name="relu")],
                     [h.make_tensor_value_info("x", T.FLOAT, ["batch", 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["batch", 3])])
    return write_model(d, m), ["--dynamic", "batch=8:2"], ["batch"]


def case_output_dir_missing(d):
    # -o inside a directory that does not exist.
    return write_model(d, valid_model()), ["-o", os.path.join(d, "nodir", "m.so")], ["nodir"]


def case_output_is_directory(d):
    # -o names an existing directory: the final rename fails; no temp file may remain.
    os.makedirs(os.path.join(d, "out_dir.so"))
    return write_model(d, valid_model()), ["-o", os.path.join(d, "out_dir.so")], ["out_dir.so"]


CASES = [
    ("not_onnx", case_not_onnx),
    ("empty_file", case_empty_file),
    ("truncated", case_truncated),
    ("unknown_op", case_unknown_op),
    ("unsupported_dtype", case_unsupported_dtype),
    ("undefined_input", case_undefined_input),
    ("external_data_escape", case_external_data_escape),
    ("external_data_missing", case_external_data_missing),
    ("bad_broadcast", case_bad_broadcast),
    ("opset_too_new", case_opset_too_new),
    ("missing_file", case_missing_file),
    ("dynamic_unknown_name", case_dynamic_unknown_name),
    ("dynamic_bad_range", case_dynamic_bad_range),
    ("output_dir_missing", case_output_dir_missing),
    ("output_is_directory", case_output_is_directory),
]


def run_case(name, fn):
    base = os.path.join(WORK, name)
    shutil.rmtree(base, ignore_errors=True)
    d = os.path.join(base, "model_dir")
    os.makedirs(d)
    model, extra, needles = fn(d)
    out = os.path.join(d, "out.so")
    args = [KILN, "compile", model]
    if "-o" in extra:
        i = extra.index("-o")
        out = extra[i + 1]
        args += extra
    else:
        args += ["-o", out] + extra
    before = set(os.listdir(d))
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(base, "cache"))
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    msg = p.stdout + p.stderr
    errors = []
    if p.returncode != 1:
        what = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        errors.append(f"expected exit 1, got {what}")
    if "internal error" in msg.lower():
        errors.append("reported as an internal error, not a user error")
    if not msg.strip():
        errors.append("no message")
    for n in needles:
        alts = n if isinstance(n, tuple) else (n,)
        if not any(a.lower() in msg.lower() for a in alts):
            errors.append(f"message does not mention {' or '.join(map(repr, alts))}")
    if os.path.isfile(out):
        errors.append(f"output file {out} exists")
    after = set(os.listdir(d))
    leftover = sorted(after - before)
    if leftover:
        errors.append(f"left files next to the output: {leftover}")
    status = "FAIL" if errors else "ok"
    print(f"[{status}] {name}: rc={p.returncode} msg={msg.strip()[:300]!r}")
    for e in errors:
        print(f"    - {e}")
    return not errors


def main(cases=None):
    cases = CASES if cases is None else cases
    if ONLY == {"--list"}:
        print(";".join(name for name, _ in cases))
        return 0
    os.makedirs(WORK, exist_ok=True)
    ok = True
    ran = 0
    for name, fn in cases:
        if ONLY and name not in ONLY:
            continue
        ran += 1
        ok &= run_case(name, fn)
    if ran == 0:
        print("no such case")
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
