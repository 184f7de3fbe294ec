#!/usr/bin/env python3
"""Generated CUDA kernel shapes on the GPU: the vectorised, tiled and split paths.

Run on the GPU machine:  python3 tests/gpu/check_kernels.py --kiln KILN --out DIR --json R

Each case is a tiny PyTorch module exported to ONNX and compiled with
`kiln compile --device cuda`. The cases are chosen to land on one schedule each
(sched/device_schedule.cpp, sched/split_reductions.cpp): 16-byte vector loads with aligned
and misaligned addresses, 32x32 shared-memory transpose tiles with ragged edges, and
deterministic split reductions, and the fused attention kernel (ragged tiles, a head dim
that is not a multiple of 32, dynamic query and key lengths). Outputs are compared with PyTorch on the CPU in float64:
permutes and pointwise copies must be exact; sums within rel L2 1e-6 (float32 rounding of
up to 10^6 terms in a tree order); each split reduction runs twice and must give the same
bits. With two GPUs, one case also runs on cuda:1.
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from check_models import KilnModel, rel_l2  # noqa: E402


class Fn(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, *xs):
        return self.f(*xs)


def attention(scale):
    def f(q, k, v):
        return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1) @ v
    return f


# name: (function, input shapes, exact?, dynamic axes or None, extra shapes to run)
# Extra shapes: one shape (first input only) or a list with a shape per input.
# Attention (the fused kernel, codegen/cuda/cuda_attention.cpp): float32 sums of D products
# and a softmax over Skv terms, compared in float64: rel L2 1e-5 leaves 10x margin over the
# ~1e-6 that float32 rounding of 64-term dot products and expf give.
ATTN_DYN = {"x0": {2: "sq"}, "x1": {2: "skv"}, "x2": {2: "skv"}}
CASES = {
    "permute_0231_ragged": (lambda x: x.permute(0, 2, 3, 1), [(2, 40, 33, 70)], True, None, []),
    "transpose_plus_add": (lambda x, y: x.t() + y, [(100, 200), (200, 100)], True, None, []),
    "bias_relu_vec4": (lambda x, b: torch.relu(x + b), [(64, 256), (256,)], True, None, []),
    "misaligned_slice_relu": (lambda x: torch.relu(x[:, 1:257]), [(64, 258)], True, None, []),
    "permute_dynamic_batch": (lambda x: x.permute(0, 2, 1) * 2.0, [(3, 64, 96)], True,
                              {"x": {0: "b"}}, [(1, 64, 96), (5, 64, 96)]),
    "sum_few_long": (lambda x: x.sum(dim=(1, 2)), [(3, 512, 700)], False, None, []),
    "max_all": (lambda x: x.amax(dim=1), [(1, 1 << 20)], True, None, []),
    "mean_two_rows": (lambda x: x.mean(dim=1), [(2, 200000)], False, None, []),
    "attention_ragged_dv48": (attention(0.125), [(2, 3, 77, 64), (2, 3, 77, 64), (2, 3, 77, 48)],
                              False, None, []),
    "attention_dynamic_seq": (attention(0.17), [(1, 4, 50, 32), (1, 4, 40, 32), (1, 4, 40, 32)],
                              False, ATTN_DYN,
                              [[(1, 4, 1, 32), (1, 4, 200, 32), (1, 4, 200, 32)],
                               [(1, 4, 129, 32), (1, 4, 33, 32), (1, 4, 33, 32)]]),
    "attention_padding_mask": (lambda q, k, v, m: torch.softmax(
        (q @ k.transpose(-1, -2)) * 0.125 + m, dim=-1) @ v,
        [(2, 3, 77, 64), (2, 3, 77, 64), (2, 3, 77, 64), (2, 1, 1, 77)], False, None, []),
    "attention_head128": (attention(1.0), [(4, 2, 16, 128), (4, 2, 300, 128), (4, 2, 300, 128)],
                          False, None, []),
}


# Transformer MLP epilogues (passes/fuse_epilogues.cpp -> kiln_shim_cuda_matmul_v2): y = x +
# fc2(gelu(fc1(x))) with 2-D x, so torch exports each Linear as Gemm(transB=1). The tanh GELU
# (GPT-2's formula, and F.gelu(approximate="tanh")) becomes cuBLASLt's GELU_BIAS epilogue and
# the residual its C input; the erf GELU must stay a generated kernel (cuBLASLt's GELU is the
# tanh form). Checked against numpy float64 with TF32 off (kiln's default): rel L2 1e-5 covers
# float32 sums of 256 products and float32 tanh/erf; the cases also report whether the GELU
# was fused (the wrapper's post_op), so a pattern the exporter changed shows up.
MLP_D, MLP_FF = 128, 256
_gen = torch.Generator().manual_seed(5)
MLP_W = {k: torch.randn(*shape, generator=_gen) * scale for k, shape, scale in [
    ("w1", (MLP_FF, MLP_D), 1 / math.sqrt(MLP_D)), ("b1", (MLP_FF,), 0.5),
    ("w2", (MLP_D, MLP_FF), 1 / math.sqrt(MLP_FF)), ("b2", (MLP_D,), 0.5)]}


def gelu_tanh_formula(h):
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))


def mlp(act):
    def f(x):
        w = {k: v.to(x.dtype) for k, v in MLP_W.items()}
        h = torch.nn.functional.linear(x, w["w1"], w["b1"])
        return x + torch.nn.functional.linear(act(h), w["w2"], w["b2"])
    return f


def mlp_numpy(kind):
    """The same block in numpy float64 (an independent reference)."""
    from math import erf  # noqa: PLC0415

    def f(x):
        w = {k: v.double().numpy() for k, v in MLP_W.items()}
        x = x.double().numpy()
        h = x @ w["w1"].T + w["b1"]
        if kind == "tanh":
            g = 0.5 * h * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (h + 0.044715 * h ** 3)))
        else:
            g = 0.5 * h * (1.0 + np.vectorize(erf)(h / np.sqrt(2.0)))
        return torch.from_numpy(x + g @ w["w2"].T + w["b2"]).float()
    return f


MLP_CASES = {
    # name: (activation, numpy reference kind, post_op the CUDA wrapper must show)
    "mlp_gelu_tanh_formula_residual": (gelu_tanh_formula, "tanh", 4),
    "mlp_gelu_tanh_op_residual": (lambda h: torch.nn.functional.gelu(h, approximate="tanh"),
                                  "tanh", None),
    "mlp_gelu_erf_residual": (torch.nn.functional.gelu, "erf", 0),
}
for _name, (_act, _kind, _post) in MLP_CASES.items():
    CASES[_name] = (mlp(_act), [(100, MLP_D)], False, {"x": {0: "rows"}},
                    [(1, MLP_D), (7, MLP_D)])
NUMPY_REFS = {name: mlp_numpy(kind) for name, (_, kind, _) in MLP_CASES.items()}

# Symbol ranges for --dynamic, by the names used in the dynamic axes above.
RANGES = {"b": "1:8", "sq": "1:512", "skv": "1:512", "rows": "1:512"}


def run_case(name, args, report):
    fn, shapes, exact, dyn, more = CASES[name]
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    onnx_path, so = os.path.join(d, "model.onnx"), os.path.join(d, "model.so")
    torch.manual_seed(0)
    xs = [torch.randn(*s) for s in shapes]
    if name == "attention_padding_mask":  # HF-style additive mask: 0 kept, -1e4 padded
        xs[3] = torch.where(torch.arange(77) < 60, 0.0, -1e4).reshape(1, 1, 1, 77).repeat(2, 1, 1, 1)
    names = [f"x{i}" for i in range(len(xs))] if len(xs) > 1 else ["x"]
    torch.onnx.export(Fn(fn), tuple(xs), onnx_path, input_names=names, output_names=["y"],
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    cmd = [args.kiln, "compile", onnx_path, "-o", so, "--device", "cuda", "--cuda-arch", "sm_90"]
    if args.keep or name in MLP_CASES:
        cmd.append("--keep-sources")
    if dyn:
        for sym in sorted({n for axes in dyn.values() for n in axes.values()}):
            cmd += ["--dynamic", f"{sym}={RANGES[sym]}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    entry = {"case": name, "checks": []}
    if r.returncode != 0:
        entry.update(ok=False, error="compile: " + r.stderr[-1500:])
        report.append(entry)
        return
    fusion_ok = True
    if name in MLP_CASES:  # which epilogues the compiler fused (the wrapper's shim calls)
        text = "".join(open(f).read() for f in glob.glob(so + ".src/*wrapper*"))
        posts = [int(v) for v in __import__("re").findall(r"p\.mm\.post_op = (\d+);", text)]
        entry["post_ops"] = posts
        entry["matmul_v2_calls"] = text.count("kiln_shim_cuda_matmul_v2(")
        want = MLP_CASES[name][2]
        fusion_ok = want is None or (want in posts and (want != 0 or 3 not in posts))
    devices = ["cuda:0"] + (["cuda:1"] if torch.cuda.device_count() > 1 and
                            name == "bias_relu_vec4" else [])
    ok = True
    for dev in devices:
        km = KilnModel(so, device=dev)
        extra = [[torch.randn(*t) for t in s] if isinstance(s, list) else [torch.randn(*s)]
                 for s in more]
        for inputs in [xs] + extra:
            ref = (NUMPY_REFS[name](*inputs) if name in NUMPY_REFS else
                   fn(*[x.double() for x in inputs]).float())
            gpu_in = [x.to(dev) for x in inputs]
            outs = []
            for _ in range(2):  # twice: split reductions must be deterministic
                out = torch.full(ref.shape, float("nan"), device=dev)
                km(gpu_in, [out])
                torch.cuda.synchronize(dev)
                outs.append(out.cpu())
            same = torch.equal(outs[0], outs[1])
            if exact:
                err = float((outs[0] - ref).abs().max())
                good = err == 0.0 and same
            else:
                err = rel_l2(outs[0], ref)
                tol = 1e-5 if name.startswith(("attention", "mlp")) else 1e-6
                good = err < tol and same
            ok = ok and good
            entry["checks"].append({"device": dev, "shape": list(inputs[0].shape), "err": err,
                                    "deterministic": same, "ok": good})
        km.close()
    entry["ok"] = ok and fusion_ok
    if not fusion_ok:
        entry["error"] = "unexpected epilogue fusion (post_ops %s)" % entry.get("post_ops")
    report.append(entry)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep generated sources")
    args = ap.parse_args()
    report = []
    for name in CASES:
        try:
            run_case(name, args, report)
        except Exception as e:  # noqa: BLE001  (report and go on with the next case)
            report.append({"case": name, "ok": False, "error": repr(e)[-1500:]})
        print(json.dumps(report[-1]), file=sys.stderr)
    passed = sum(1 for e in report if e.get("ok"))
    summary = {"passed": passed, "total": len(report), "cases": report}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"kernels: {passed}/{len(report)} passed", file=sys.stderr)
    return 0 if passed == len(report) else 1


if __name__ == "__main__":
    sys.exit(main())
