#!/usr/bin/env python3
"""Code injection (issue 11): names from the model reach generated C++ as string literals and
comments. Every name here is hostile (quotes, backslashes, newlines, `*/`, trigraphs, format
directives, non-UTF-8 bytes, C++ reserved words, kiln's own local names). The model must
compile, run with the right numbers, and report every name byte-for-byte through the C API
(read with ctypes), including inside a shape error.

Usage: hostile_names.py <kiln> <libkiln_rt.so> <workdir>
"""
import ctypes as C
import os
import subprocess
import sys

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN, RT, WORK = sys.argv[1:4]
NON_UTF8 = b"\xff\xfe\x80"
PLACEHOLDER = b"QZQ"  # replaced by NON_UTF8 in the serialized model (same length)

NAMES = {
    "input": 'x"); abort(); ("',
    "dim": 'b"at\\ch */ \n??/',
    "cond": "int",
    "init": "W\\",
    "node_add": "add */ int evil; /* \\\n#error injected",
    "node_relu": "??= ??/ %s%n%s%n",
    "node_if": "if\nreturn 1;//",
    "mid": "return",
    "then_out": "ctx",
    "else_out": "S",
    "output": "y QZQ \t\r\v\f \"end\"",
}


def model_bytes():
    n = NAMES
    then_g = h.make_graph([h.make_node("Neg", [n["mid"]], [n["then_out"]], name="neg */\n")],
                          "then */ \"\n", [], [h.make_tensor_value_info(n["then_out"], T.FLOAT,
                                                                        [n["dim"], 3])])
    else_g = h.make_graph([h.make_node("Identity", [n["mid"]], [n["else_out"]], name="id\\")],
                          "else\\", [], [h.make_tensor_value_info(n["else_out"], T.FLOAT,
                                                                  [n["dim"], 3])])
    g = h.make_graph(
        [h.make_node("Add", [n["input"], n["init"]], ["t"], name=n["node_add"]),
         h.make_node("Relu", ["t"], [n["mid"]], name=n["node_relu"]),
         h.make_node("If", [n["cond"]], [n["output"]], name=n["node_if"], then_branch=then_g,
                     else_branch=else_g)], "g ??/",
        [h.make_tensor_value_info(n["input"], T.FLOAT, [n["dim"], 3]),
         h.make_tensor_value_info(n["cond"], T.BOOL, [])],
        [h.make_tensor_value_info(n["output"], T.FLOAT, [n["dim"], 3])],
        [nh.from_array(np.array([1, -2, 3], np.float32), n["init"])])
    data = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()
    assert data.count(PLACEHOLDER) >= 2
    return data.replace(PLACEHOLDER, NON_UTF8)


def real(name):
    return name.encode().replace(PLACEHOLDER, NON_UTF8)


class DLDevice(C.Structure):
    _fields_ = [("device_type", C.c_int32), ("device_id", C.c_int32)]


class DLDataType(C.Structure):
    _fields_ = [("code", C.c_uint8), ("bits", C.c_uint8), ("lanes", C.c_uint16)]


class DLTensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("device", DLDevice), ("ndim", C.c_int32),
                ("dtype", DLDataType), ("shape", C.POINTER(C.c_int64)),
                ("strides", C.POINTER(C.c_int64)), ("byte_offset", C.c_uint64)]


class TensorInfo(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("name", C.c_char_p), ("dtype", DLDataType),
                ("ndim", C.c_int32), ("dims", C.POINTER(C.c_int64)),
                ("dim_names", C.POINTER(C.c_char_p)), ("dim_min", C.POINTER(C.c_int64)),
                ("dim_max", C.POINTER(C.c_int64))]


def tensor(a):
    shape = (C.c_int64 * a.ndim)(*a.shape)
    code = 1 if a.dtype.kind != "b" else 6
    t = DLTensor(a.ctypes.data, DLDevice(1, 0), a.ndim, DLDataType(code if a.dtype.kind == "b"
                                                                   else 2, a.itemsize * 8, 1),
                 shape, None, 0)
    t._keep = (a, shape)
    return t


def main():
    os.makedirs(WORK, exist_ok=True)
    src = os.path.join(WORK, "hostile_names.onnx")
    lib = os.path.join(WORK, "hostile_names.so")
    with open(src, "wb") as f:
        f.write(model_bytes())
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(WORK, "cache"))
    p = subprocess.run([KILN, "compile", src, "-o", lib, "--dynamic", NAMES["dim"] + "=1:16"],
                       capture_output=True, env=env)
    if p.returncode != 0:
        print("compile failed:", p.stderr.decode(errors="replace")[-3000:])
        return 1
    C.CDLL(RT, mode=C.RTLD_GLOBAL)
    m = C.CDLL(lib)
    m.kiln_last_error.restype = C.c_char_p
    c = C.c_void_p()
    if m.kiln_container_create(None, C.byref(c)) != 0:
        print("create:", m.kiln_last_error())
        return 1
    errors = []
    for kind, idx, want in (("input", 0, NAMES["input"]), ("input", 1, NAMES["cond"]),
                            ("output", 0, NAMES["output"])):
        info = TensorInfo(C.sizeof(TensorInfo))
        getattr(m, f"kiln_{kind}_info")(c, idx, C.byref(info))
        if info.name != real(want):
            errors.append(f"{kind} {idx} name {info.name!r}, want {real(want)!r}")
        if kind == "input" and idx == 0 and info.dim_names[0] != real(NAMES["dim"]):
            errors.append(f"dim name {info.dim_names[0]!r}, want {real(NAMES['dim'])!r}")
    x = np.array([[0.5, 1, -4], [-2, 3, 0]], np.float32)
    relu = np.maximum(x.astype(np.float64) + [1, -2, 3], 0)
    for cond, want in ((True, -relu), (False, relu)):
        y = np.zeros((2, 3), np.float32)
        ins = (DLTensor * 2)(tensor(x), tensor(np.array(cond)))
        outs = (DLTensor * 1)(tensor(y))
        st = m.kiln_run(c, ins, 2, outs, 1)
        if st != 0 or not np.allclose(y, want, rtol=0, atol=1e-6):
            errors.append(f"cond={cond}: status {st} {m.kiln_last_error()!r}, y={y.tolist()}")
    # A dim outside the compiled range: the error message carries the names unchanged.
    big = np.zeros((17, 3), np.float32)
    ins = (DLTensor * 2)(tensor(big), tensor(np.array(True)))
    outs = (DLTensor * 1)(tensor(np.zeros((17, 3), np.float32)))
    st = m.kiln_run(c, ins, 2, outs, 1)
    msg = m.kiln_last_error()
    if st != 2 or real(NAMES["input"]) not in msg or real(NAMES["dim"]) not in msg:
        errors.append(f"range error: status {st}, message {msg!r}")
    m.kiln_container_destroy(c)
    print("[FAIL]" if errors else "[ok]", "hostile names: compiled, ran, names round-trip")
    for e in errors:
        print("    -", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
