#!/usr/bin/python3
"""DeformConv and antialiased Resize beyond the four node-suite cases each: small models built
here with onnx.helper are compiled with kiln (as given and with --all-dims-dynamic), run, and
compared with PyTorch in float64:

  - DeformConv against torchvision.ops.deform_conv2d (stride, dilation, padding, groups,
    offset groups, mask, bias; offsets large enough to move taps outside the input);
  - Resize antialias=1 (linear and cubic, downsampling by scales and by sizes) against
    torch.nn.functional.interpolate(antialias=True), which drops the taps outside the input
    and renormalises, as ONNX does with exclude_outside=1 (cubic with cubic_coeff_a=-0.5,
    PyTorch's coefficient).

    /usr/bin/python3 tests/models/deform_resize_check.py <kiln> <work dir> [name filter]

Exit status 0 when every case passes. About 30 s (eight small compiles, two variants each).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto as T
from onnx import helper as h
from torchvision.ops import deform_conv2d

KILN = sys.argv[1]
OUT = sys.argv[2]
only = sys.argv[3] if len(sys.argv) > 3 else None
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(11)


def model(name, node, feeds, out_shape, opset):
    ins = [h.make_tensor_value_info(k, T.FLOAT, list(v.shape)) for k, v in feeds.items()]
    outs = [h.make_tensor_value_info("y", T.FLOAT, list(out_shape))]
    m = h.make_model(h.make_graph([node], name, ins, outs),
                     opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def run_case(name, m, feeds, want):
    if only and only not in name:
        return True
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(d, k + ".npy"), v)
        args += ["--input", f"{k}={os.path.join(d, k + '.npy')}"]
    ok = True
    for variant in ["static", "dynamic"]:
        so = os.path.join(d, variant + ".so")
        flags = ["--all-dims-dynamic"] if variant == "dynamic" else []
        p = subprocess.run([KILN, "compile", path, "-o", so] + flags, capture_output=True,
                           text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] compile: {p.stderr.strip()}")
            ok = False
            continue
        od = os.path.join(d, variant + "_out")
        os.makedirs(od, exist_ok=True)
        p = subprocess.run([KILN, "run", so, "--output-dir", od] + args, capture_output=True,
                           text=True)
        if p.returncode:
            print(f"FAIL {name} [{variant}] run: {p.stderr.strip()}")
            ok = False
            continue
        got = np.load(os.path.join(od, "y.npy"))
        # float32 inputs, float32 accumulation in kiln over at most ~100 terms of size ~1,
        # against float64: a few float32 ulps of the largest partial sums.
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-5):
            err = np.abs(got.astype(np.float64) - want).max() if got.shape == want.shape else -1
            print(f"FAIL {name} [{variant}]: got {got.shape} want {want.shape}, max err {err}")
            ok = False
            continue
        print(f"ok   {name} [{variant}]")
    return ok


def deform_case(name, n, c, hw, oc, k, stride, pad, dil, group, og, mask, bias):
    kh, kw = k
    oh = (hw[0] + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (hw[1] + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    feeds = {
        "x": rng.standard_normal((n, c, *hw)).astype(np.float32),
        "w": rng.standard_normal((oc, c // group, kh, kw)).astype(np.float32),
        # offsets up to +-3 pixels: many taps land partly or wholly outside the input
        "offset": (3 * rng.standard_normal((n, og * kh * kw * 2, oh, ow))).astype(np.float32),
    }
    inputs = ["x", "w", "offset"]
    if bias:
        feeds["b"] = rng.standard_normal((oc,)).astype(np.float32)
    inputs.append("b" if bias else "")
    if mask:
        feeds["mask"] = rng.random((n, og * kh * kw, oh, ow)).astype(np.float32)
        inputs.append("mask")
    while inputs[-1] == "":
        inputs.pop()
    node = h.make_node("DeformConv", inputs, ["y"], kernel_shape=[kh, kw], strides=[stride] * 2,
                       pads=[pad] * 4, dilations=[dil] * 2, group=group, offset_group=og)
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in feeds.items()}
    want = deform_conv2d(t["x"], t["offset"], t["w"], t.get("b"), stride=stride, padding=pad,
                         dilation=dil, mask=t.get("mask")).numpy()
    return run_case(name, model(name, node, feeds, want.shape, 22), feeds, want)


def resize_case(name, mode, in_hw, scales=None, sizes=None):
    x = rng.standard_normal((1, 2, *in_hw)).astype(np.float32)
    feeds = {"x": x}
    tmode = {"linear": "bilinear", "cubic": "bicubic"}[mode]
    xt = torch.from_numpy(x.astype(np.float64))
    if scales is not None:
        out_hw = [int(np.floor(i * s)) for i, s in zip(in_hw, scales)]
        want = F.interpolate(xt, scale_factor=scales, mode=tmode, align_corners=False,
                             antialias=True, recompute_scale_factor=False).numpy()
        inits = [h.make_tensor("scales", T.FLOAT, [4], [1.0, 1.0] + list(scales))]
        ins = ["x", "", "scales"]
    else:
        out_hw = list(sizes)
        want = F.interpolate(xt, size=sizes, mode=tmode, align_corners=False,
                             antialias=True).numpy()
        inits = [h.make_tensor("sizes", T.INT64, [4], [1, 2] + list(sizes))]
        ins = ["x", "", "", "sizes"]
    node = h.make_node("Resize", ins, ["y"], mode=mode, antialias=1, exclude_outside=1,
                       cubic_coeff_a=-0.5)
    m = model(name, node, feeds, [1, 2] + out_hw, 19)
    m.graph.initializer.extend(inits)
    return run_case(name, m, feeds, want)


ok = True
ok &= deform_case("deform_basic", 1, 3, (7, 6), 4, (3, 3), 1, 1, 1, 1, 1, False, False)
ok &= deform_case("deform_stride_dil", 2, 2, (9, 8), 3, (3, 2), 2, 2, 2, 1, 1, True, True)
ok &= deform_case("deform_groups", 1, 4, (6, 6), 6, (2, 2), 1, 0, 1, 2, 2, True, False)
ok &= deform_case("deform_offset_groups", 1, 6, (5, 7), 2, (3, 3), 1, 1, 1, 1, 3, False, True)
ok &= resize_case("resize_aa_linear_scales", "linear", (12, 10), scales=[0.5, 0.6])
ok &= resize_case("resize_aa_cubic_scales", "cubic", (12, 10), scales=[0.25, 0.75])
ok &= resize_case("resize_aa_linear_sizes", "linear", (11, 9), sizes=[4, 5])
ok &= resize_case("resize_aa_cubic_sizes", "cubic", (11, 9), sizes=[3, 7])
sys.exit(0 if ok else 1)
