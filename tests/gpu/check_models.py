#!/usr/bin/env python3
"""Real models on the GPU: kiln (--device cuda) against PyTorch on the same GPU.

Run on the GPU machine (PyTorch with CUDA, a carried `kiln` compiler and runtime):

    python3 tests/gpu/check_models.py --kiln KILN --out DIR [--only resnet50,bert]
                                      [--bench] [--json REPORT]

For each model: build it in PyTorch with seeded random weights, export ONNX (opset 17),
compile with `kiln compile --device cuda`, load model.so through its C API (ctypes,
DLPack tensors pointing at torch CUDA memory: no copies), run it on torch's current
stream with kiln_run_v2 and compare with PyTorch fp32 (TF32 off) by relative L2 (gate
1e-4). With --bench, time kiln, PyTorch eager and torch.compile at batch 1 and 32 with
CUDA events (median of 20 after 5 warm-ups).
"""

import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from model_specs import Encoder, make_cnn  # noqa: E402  (seeded model definitions)

KILN_OK = 0


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class ContainerOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("num_runners", ctypes.c_int32),
                ("threads_per_run", ctypes.c_int32), ("device", ctypes.c_char_p),
                ("weights_path", ctypes.c_char_p), ("flags", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32 * 7)]


class RunOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("stream", ctypes.c_void_p),
                ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 5)]


DL_CODES = {torch.float32: (2, 32), torch.int64: (0, 64), torch.int32: (0, 32)}


def dl_tensor(t, keep):
    """A DLTensor viewing contiguous CUDA tensor t; `keep` holds the shape array alive."""
    assert t.is_cuda and t.is_contiguous()
    shape = (ctypes.c_int64 * max(t.dim(), 1))(*t.shape)
    keep.append(shape)
    code, bits = DL_CODES[t.dtype]
    return DLTensor(t.data_ptr(), DLDevice(2, t.device.index or 0), t.dim(),
                    DLDataType(code, bits, 1), shape, None, 0)


class KilnModel:
    """A compiled model.so on one GPU, run through the C API on torch's current stream."""

    def __init__(self, path, runners=2, device="cuda:0"):
        self.lib = ctypes.CDLL(path)
        self.lib.kiln_last_error.restype = ctypes.c_char_p
        self.device = torch.device(device)
        opts = ContainerOptions()
        self.lib.kiln_container_options_init(ctypes.byref(opts))
        opts.device = device.encode()
        opts.num_runners = runners
        self.c = ctypes.c_void_p()
        self.check(self.lib.kiln_container_create(ctypes.byref(opts), ctypes.byref(self.c)))

    def check(self, st):
        if st != KILN_OK:
            raise RuntimeError(f"kiln status {st}: {self.lib.kiln_last_error().decode()}")

    def __call__(self, inputs, outputs):
        keep = []
        ins = (DLTensor * len(inputs))(*[dl_tensor(t, keep) for t in inputs])
        outs = (DLTensor * len(outputs))(*[dl_tensor(t, keep) for t in outputs])
        ro = RunOptions()
        self.lib.kiln_run_options_init(ctypes.byref(ro))
        ro.stream = torch.cuda.current_stream(self.device).cuda_stream
        self.check(self.lib.kiln_run_v2(self.c, ctypes.byref(ro), ins, len(inputs), outs,
                                        len(outputs)))
        return outputs

    def close(self):
        self.lib.kiln_container_destroy(self.c)


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def bert_base():
    # BERT-base shape: 12 layers, d 768, 12 heads, d_ff 3072 (post-norm, GELU).
    return Encoder(vocab=30522, d_model=768, max_len=512, heads=12, d_ff=3072, layers=12)


MODELS = {
    # name: (builder, input maker(batch, seq), dynamic axes, compile args, check shapes)
    "resnet50": (lambda: make_cnn("resnet50"), lambda b, s: torch.randn(b, 3, 224, 224),
                 {"x": {0: "batch"}, "y": {0: "batch"}}, ["--dynamic", "batch=1:64"],
                 [(1, 0), (32, 0)]),
    "mobilenet_v2": (lambda: make_cnn("mobilenet_v2"), lambda b, s: torch.randn(b, 3, 224, 224),
                     {"x": {0: "batch"}, "y": {0: "batch"}}, ["--dynamic", "batch=1:64"],
                     [(1, 0), (8, 0)]),
    "encoder": (Encoder, lambda b, s: torch.randint(0, 1000, (b, s)),
                {"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}},
                ["--dynamic", "batch=1:64", "--dynamic", "seq=1:512"], [(2, 9), (3, 17), (1, 128)]),
    "bert": (bert_base, lambda b, s: torch.randint(0, 30522, (b, s)),
             {"x": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}},
             ["--dynamic", "batch=1:64", "--dynamic", "seq=1:512"], [(1, 128), (32, 128)]),
}


def median_ms(fn, warmup=5, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def check_model(name, args, report):
    build, make_input, axes, cargs, shapes = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    onnx_path, so_path = os.path.join(d, "model.onnx"), os.path.join(d, "model.so")
    entry = {"model": name}
    t0 = time.perf_counter()
    example = make_input(*shapes[0])
    with torch.no_grad():
        torch.onnx.export(model, (example,), onnx_path, input_names=["x"], output_names=["y"],
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True,
                          dynamo=False)
    entry["export_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    r = subprocess.run([args.kiln, "compile", onnx_path, "-o", so_path, "--device", "cuda",
                        "--cuda-arch", "sm_90"] + cargs, capture_output=True, text=True)
    entry["compile_s"] = round(time.perf_counter() - t0, 2)
    if r.returncode != 0:
        entry["error"] = "compile: " + r.stderr[-2000:]
        report.append(entry)
        return
    km = KilnModel(so_path)
    model = model.cuda()
    entry["checks"] = []
    ok = True
    with torch.no_grad():
        for b, s in shapes:
            x = make_input(b, s).cuda()
            ref = model(x)
            out = torch.full_like(ref, float("nan"))  # poison: every element must be written
            km([x], [out])
            torch.cuda.synchronize()
            err = rel_l2(out, ref)
            good = math.isfinite(err) and err < 1e-4
            ok = ok and good
            entry["checks"].append({"shape": [b, s], "rel_l2": err, "ok": good})
        if args.bench and name in ("resnet50", "bert"):
            entry["bench"] = bench(model, km, make_input, name)
        if args.autotune and name in ("resnet50", "bert"):
            ok = autotuned(args, entry, model, km, make_input, onnx_path, cargs, shapes) and ok
    entry["ok"] = ok
    km.close()
    report.append(entry)


def autotuned(args, entry, model, km, make_input, onnx_path, cargs, shapes):
    """kiln compile --autotune on this GPU: the tuned model must match PyTorch like the
    heuristic one; both are timed in the same run (median of 20 after warm-up)."""
    d = os.path.dirname(onnx_path)
    tuned, tfile = os.path.join(d, "tuned.so"), os.path.join(d, "tuning.json")
    t0 = time.perf_counter()
    r = subprocess.run([args.kiln, "compile", onnx_path, "-o", tuned, "--device", "cuda",
                        "--cuda-arch", "sm_90", "--autotune", "--tuning-file", tfile] + cargs,
                       capture_output=True, text=True)
    entry["autotune_s"] = round(time.perf_counter() - t0, 2)
    if r.returncode != 0:
        entry["autotune_error"] = r.stderr[-2000:]
        return False
    with open(tfile) as f:
        entry["tuning_kernels"] = len(json.load(f)["kernels"])
    kt = KilnModel(tuned)
    ok, rows = True, []
    for b, s in shapes:
        x = make_input(b, s).cuda()
        ref = model(x)
        out = torch.full_like(ref, float("nan"))
        kt([x], [out])
        torch.cuda.synchronize()
        err = rel_l2(out, ref)
        ok = ok and math.isfinite(err) and err < 1e-4
        rows.append({"shape": [b, s], "rel_l2": err})
    entry["tuned_checks"] = rows
    times = []
    for b in (1, 32):
        x = make_input(b, 128).cuda()
        out = torch.empty_like(model(x))
        times.append({"batch": b, "kiln_ms": median_ms(lambda: km([x], [out])),
                      "kiln_tuned_ms": median_ms(lambda: kt([x], [out]))})
    entry["tuned_bench"] = times
    kt.close()
    return ok


def bench(model, km, make_input, name):
    rows = []
    compiled = torch.compile(model)
    for b in (1, 32):
        x = make_input(b, 128).cuda()
        ref = model(x)
        out = torch.empty_like(ref)
        row = {"batch": b}
        row["kiln_ms"] = median_ms(lambda: km([x], [out]))
        row["eager_ms"] = median_ms(lambda: model(x))
        try:
            row["compile_ms"] = median_ms(lambda: compiled(x))
        except Exception as e:  # noqa: BLE001  (reported, not fatal)
            row["compile_error"] = str(e)[:300]
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--autotune", action="store_true",
                    help="also compile resnet50/bert with --autotune and compare")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 on both sides
    torch.backends.cudnn.allow_tf32 = False
    names = [n for n in args.only.split(",") if n] or list(MODELS)
    report = []
    for n in names:
        try:
            check_model(n, args, report)
        except Exception as e:  # noqa: BLE001  (one model's failure must not hide the others)
            report.append({"model": n, "error": repr(e)[:2000]})
        print(json.dumps(report[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                       "models": report}, f, indent=1)
    return 0 if all(e.get("ok") for e in report) else 1


if __name__ == "__main__":
    sys.exit(main())
