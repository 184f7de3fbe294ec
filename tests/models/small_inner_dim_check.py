#!/usr/bin/python3
"""Kernels whose innermost output dim has 2-4 elements, which the CPU printer unrolls inside
a simd loop over the dim above (sched/device_schedule.cpp, unrollInnerExtent): an NCHW ->
NHWC copy of an RGB image, box arithmetic on [N, 4], a [N, 2] cast, a select on [N, 3] with a
broadcast row. Each model is built twice, with static dims and with symbolic outer dims (the
tiny inner dim stays static, so both are unrolled), run with `kiln run` on inputs of several
sizes (the next dim below, at and above the 8 the unrolling needs), and compared with numpy. Copies, casts and selects must match exactly; the multiply-add may be
contracted into one FMA (one rounding instead of numpy's two), so it is held to 2 float32 ulps
of a float64 reference.

    /usr/bin/python3 tests/models/small_inner_dim_check.py <kiln> <work dir>

Exit status 0 when every case passes.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN, OUT = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
vi = h.make_tensor_value_info
rng = np.random.default_rng(7)


def model(name, nodes, inputs, outputs):
    """inputs/outputs: (name, dtype, static shape, symbolic shape). Returns both models."""
    return {variant: build(f"{name}_{variant}", nodes,
                           [vi(n, t, shapes[i]) for n, t, *shapes in inputs],
                           [vi(n, t, shapes[i]) for n, t, *shapes in outputs])
            for i, variant in enumerate(["static", "symbolic"])}


def build(name, nodes, inputs, outputs):
    g = h.make_graph(nodes, name, inputs, outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(m, path)
    return path


def exact(got, ref):
    return got.shape == ref.shape and got.dtype == ref.dtype and np.array_equal(got, ref)


def within_ulps(got, ref64):
    ref = ref64.astype(np.float32)
    ulp = np.spacing(np.abs(ref))
    return (got.shape == ref.shape and got.dtype == ref.dtype
            and bool(np.all(np.abs(got.astype(np.float64) - ref64) <= 2 * ulp)))


def run(name, paths, cases, same=exact):
    ok = True
    for variant, path in paths.items():
        so = os.path.join(OUT, f"{name}_{variant}.so")
        p = subprocess.run([KILN, "compile", path, "-o", so], capture_output=True, text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] compile: {p.stderr.strip()}")
            ok = False
            continue
        for i, (feeds, ref) in enumerate(cases):
            if variant == "static" and i > 0:
                break  # the static model takes only its declared shape
            rd = os.path.join(OUT, f"{name}_{variant}_{i}")
            os.makedirs(rd, exist_ok=True)
            args = []
            for k, v in feeds.items():
                np.save(os.path.join(rd, k + ".npy"), v)
                args += ["--input", f"{k}={os.path.join(rd, k + '.npy')}"]
            p = subprocess.run([KILN, "run", so, "--output-dir", rd] + args,
                               capture_output=True, text=True)
            tag = f"{name} [{variant}] {list(next(iter(feeds.values())).shape)}"
            if p.returncode:
                print(f"FAIL {tag}: {p.stderr.strip()}")
                ok = False
                continue
            got = np.load(os.path.join(rd, "y.npy"))
            good = same(got, ref)
            print(f"{'ok  ' if good else 'FAIL'} {tag}")
            ok &= good
    return ok


ok = True

# NCHW -> NHWC of an RGB image: inner dim 3 (the channels), next dim the image width.
path = model("nchw_to_nhwc", [h.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
             [("x", T.FLOAT, [2, 3, 17, 9], ["N", 3, "H", "W"])],
             [("y", T.FLOAT, [2, 17, 9, 3], ["N", "H", "W", 3])])
cases = []
for shape in [(2, 3, 17, 9), (1, 3, 5, 7), (3, 3, 4, 8), (1, 3, 33, 65)]:
    x = rng.standard_normal(shape, dtype=np.float32)
    cases.append(({"x": x}, x.transpose(0, 2, 3, 1).copy()))
ok &= run("nchw_to_nhwc", path, cases)

# Boxes [N, 4]: scaled and shifted per coordinate (a broadcast [4] row).
scale = np.array([0.5, 2.0, -1.0, 3.0], np.float32)
shift = np.array([1.0, -2.0, 0.25, 8.0], np.float32)
path = model("box_affine",
             [h.make_node("Constant", [], ["s"], value=nh.from_array(scale)),
              h.make_node("Constant", [], ["t"], value=nh.from_array(shift)),
              h.make_node("Mul", ["x", "s"], ["m"]), h.make_node("Add", ["m", "t"], ["y"])],
             [("x", T.FLOAT, [37, 4], ["N", 4])], [("y", T.FLOAT, [37, 4], ["N", 4])])
cases = []
for n in [37, 3, 8, 1000]:
    x = rng.standard_normal((n, 4), dtype=np.float32)
    cases.append(({"x": x}, x.astype(np.float64) * scale + shift))
ok &= run("box_affine", path, cases, within_ulps)

# int64 [N, 2] -> float (a cast between element sizes).
path = model("cast_pairs", [h.make_node("Cast", ["x"], ["y"], to=T.FLOAT)],
             [("x", T.INT64, [20, 2], ["N", 2])], [("y", T.FLOAT, [20, 2], ["N", 2])])
cases = []
for n in [20, 7, 129]:
    x = rng.integers(-1000, 1000, (n, 2), dtype=np.int64)
    cases.append(({"x": x}, x.astype(np.float32)))
ok &= run("cast_pairs", path, cases)

# A select on [N, 3] with a bool condition and a broadcast row.
path = model("select_rows", [h.make_node("Where", ["c", "x", "r"], ["y"])],
             [("c", T.BOOL, [16, 3], ["N", 3]), ("x", T.FLOAT, [16, 3], ["N", 3]),
              ("r", T.FLOAT, [3], [3])],
             [("y", T.FLOAT, [16, 3], ["N", 3])])
cases = []
for n in [16, 5, 77]:
    c = rng.integers(0, 2, (n, 3)).astype(bool)
    x = rng.standard_normal((n, 3), dtype=np.float32)
    r = rng.standard_normal(3, dtype=np.float32)
    cases.append(({"c": c, "x": x, "r": r}, np.where(c, x, r).astype(np.float32)))
ok &= run("select_rows", path, cases)

print("PASS" if ok else "FAILED")
sys.exit(0 if ok else 1)
