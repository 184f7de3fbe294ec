#!/usr/bin/python3
"""NaN propagates through kiln's max/min: MaxPool, Max, Min, ReduceMax, ReduceMin and Clip of
an input holding NaN give NaN exactly where ONNX says (a NaN anywhere in the window / pair /
reduced row), and the other values unchanged. Guards the vectorizable select forms of
kiln_max/kiln_min and kiln_select (issue 12), whose NaN handling is easy to lose.

    nan_test.py KILN WORKDIR

Expected values come from plain Python loops over the definitions below (a NaN operand makes
the result NaN), not from kiln or numpy's reductions. About 3 s (one tiny compile).
"""
import math
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

KILN, WORK = sys.argv[1], sys.argv[2]
C, H, W = 16, 7, 7  # 16 channels: whole vector lanes; 7x7 with pad 1: both borders padded
OH, OW = 4, 4
ZR, ZC = 4, 100


def build_model(path):
    vi = h.make_tensor_value_info
    nodes = [
        h.make_node("MaxPool", ["x"], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                    pads=[1, 1, 1, 1]),
        h.make_node("Max", ["x", "y"], ["mx"]),
        h.make_node("Min", ["x", "y"], ["mn"]),
        h.make_node("ReduceMax", ["x"], ["rmax"], axes=[3], keepdims=0),
        h.make_node("ReduceMin", ["x"], ["rmin"], axes=[3], keepdims=0),
        h.make_node("Clip", ["x", "lo", "hi"], ["clip"]),
        # A 100-long row: SIMD lanes plus a scalar tail, a NaN in one lane of the main loop.
        h.make_node("ReduceMax", ["z"], ["zmax"], axes=[1], keepdims=0),
        h.make_node("ReduceMin", ["z"], ["zmin"], axes=[1], keepdims=0),
    ]
    inits = [h.make_tensor("lo", T.FLOAT, [], [0.0]), h.make_tensor("hi", T.FLOAT, [], [6.0])]
    shape = [1, C, H, W]
    outs = [vi("pool", T.FLOAT, [1, C, OH, OW]), vi("mx", T.FLOAT, shape),
            vi("mn", T.FLOAT, shape), vi("rmax", T.FLOAT, [1, C, H]),
            vi("rmin", T.FLOAT, [1, C, H]), vi("clip", T.FLOAT, shape),
            vi("zmax", T.FLOAT, [ZR]), vi("zmin", T.FLOAT, [ZR])]
    ins = [vi("x", T.FLOAT, shape), vi("y", T.FLOAT, shape), vi("z", T.FLOAT, [ZR, ZC])]
    g = h.make_graph(nodes, "nan", ins, outs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def inputs():
    rng = np.random.default_rng(12)
    x = rng.uniform(-8, 8, (1, C, H, W)).astype(np.float32)
    y = rng.uniform(-8, 8, (1, C, H, W)).astype(np.float32)
    # NaN first in a padded corner window, in the middle of a window, last in a row and
    # window, and in y alone (Max/Min must take it from either side).
    for c, i, j in [(0, 0, 0), (1, 3, 3), (2, 6, 6), (15, 2, 5), (7, 6, 0)]:
        x[0, c, i, j] = np.nan
    for c, i, j in [(3, 1, 1), (0, 4, 4), (9, 0, 6)]:
        y[0, c, i, j] = np.nan
    z = rng.uniform(-8, 8, (ZR, ZC)).astype(np.float32)
    for r, j in [(0, 37), (1, 0), (2, 99)]:  # row 3 keeps no NaN
        z[r, j] = np.nan
    return x, y, z


def nanmax(vals):  # ONNX/numpy semantics written out: any NaN wins
    return math.nan if any(math.isnan(v) for v in vals) else max(vals)


def nanmin(vals):
    return math.nan if any(math.isnan(v) for v in vals) else min(vals)


def expected(x, y, z):
    zl = z.tolist()
    x, y = x[0].tolist(), y[0].tolist()
    pool = [[[nanmax([x[c][i][j] for i in range(2 * a - 1, 2 * a + 2) if 0 <= i < H
                      for j in range(2 * b - 1, 2 * b + 2) if 0 <= j < W])
              for b in range(OW)] for a in range(OH)] for c in range(C)]
    mx = [[[nanmax([x[c][i][j], y[c][i][j]]) for j in range(W)] for i in range(H)]
          for c in range(C)]
    mn = [[[nanmin([x[c][i][j], y[c][i][j]]) for j in range(W)] for i in range(H)]
          for c in range(C)]
    rmax = [[nanmax(x[c][i]) for i in range(H)] for c in range(C)]
    rmin = [[nanmin(x[c][i]) for i in range(H)] for c in range(C)]
    clip = [[[nanmin([nanmax([v, 0.0]), 6.0]) for v in row] for row in x[c]] for c in range(C)]
    out = {k: np.array([v], np.float32) for k, v in
           dict(pool=pool, mx=mx, mn=mn, rmax=rmax, rmin=rmin, clip=clip).items()}
    out["zmax"] = np.array([nanmax(row) for row in zl], np.float32)
    out["zmin"] = np.array([nanmin(row) for row in zl], np.float32)
    return out


def main():
    os.makedirs(WORK, exist_ok=True)
    model, so = os.path.join(WORK, "nan.onnx"), os.path.join(WORK, "nan.so")
    build_model(model)
    x, y, z = inputs()
    for name, value in dict(x=x, y=y, z=z).items():
        np.save(os.path.join(WORK, name + ".npy"), value)
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(WORK, "cache"))
    subprocess.run([KILN, "compile", model, "-o", so], check=True, env=env)
    outdir = os.path.join(WORK, "out")
    subprocess.run([KILN, "run", so, "--input", f"x={WORK}/x.npy", "--input", f"y={WORK}/y.npy",
                    "--input", f"z={WORK}/z.npy",
                    "--output-dir", outdir, "--threads", "1"], check=True, env=env)
    want = expected(x, y, z)
    assert math.isnan(want["pool"][0, 0, 0, 0]) and math.isnan(want["mx"][0, 3, 1, 1])
    for name, ref in want.items():
        got = np.load(os.path.join(outdir, name + ".npy"))
        assert got.shape == ref.shape, f"{name}: shape {got.shape}, expected {ref.shape}"
        nan_got, nan_ref = np.isnan(got), np.isnan(ref)
        assert nan_ref.any(), f"{name}: the test inputs put no NaN in the expected output"
        bad = np.argwhere(nan_got != nan_ref)
        assert bad.size == 0, f"{name}: NaN mismatch at {bad[:5].tolist()} (got {got[tuple(bad[0])]})"
        np.testing.assert_array_equal(got[~nan_ref], ref[~nan_ref], err_msg=name)
        print(f"{name}: {int(nan_ref.sum())} NaN of {ref.size}, others exact")
    print("PASS")


main()
