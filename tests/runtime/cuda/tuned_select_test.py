#!/usr/bin/env python3
"""Tuned run-time selection on the mock CUDA driver (no GPU): a dynamic-batch model compiled
with a per-bucket tuning file runs at batch sizes in every bucket and on both sides of each
threshold; the mock's launch log (KILN_MOCK_LAUNCH_LOG) says which function ran with which
grid and block. Then `kiln compile --autotune` itself runs on the mock with its time model
(KILN_MOCK_TIME_MODEL=1), which favours 128-thread blocks on small grids and 512 on large
ones: the file must record that per bucket and the compiled model must follow it.

Usage: tuned_select_test.py KILN MOCK_DRIVER_SO MODEL_ONNX TEMPLATE_JSON WORK_DIR
"""
import json
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "golden"))
from tuning_template import fill_template  # noqa: E402

import numpy as np  # noqa: E402

kiln, mock, model, template, work = sys.argv[1:6]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, KILN_CACHE_DIR=os.path.join(work, "cache"), KILN_CUDA_DRIVER_MOCK=mock)
env.pop("KILN_MOCK_TIME_MODEL", None)
flags = ["--device", "cuda", "--cuda-arch", "sm_90", "--dynamic", "batch=1:64"]


def run(args, extra_env=None, **kw):
    p = subprocess.run(args, capture_output=True, text=True, env=dict(env, **(extra_env or {})),
                       timeout=600, **kw)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(args)}\n{p.stdout}{p.stderr}")
    return p


def launches(so, batch):
    """[(name, grid, block, shared)] of one `kiln run` of `so` at this batch size."""
    d = os.path.join(work, f"run_{os.path.basename(so)}_{batch}")
    os.makedirs(d)
    np.save(os.path.join(d, "x.npy"), np.ones((batch, 256), np.float32))
    log = os.path.join(d, "launches.txt")
    run([kiln, "run", so, "--input", f"x={d}/x.npy", "--output-dir", os.path.join(d, "out")],
        {"KILN_MOCK_LAUNCH_LOG": log})
    out = []
    for line in open(log):
        name, *n = line.split()
        n = [int(v) for v in n]
        out.append((name, tuple(n[0:3]), tuple(n[3:6]), n[6]))
    return out


failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got}, want {want}")


# 1. The template's per-bucket bests (tests/golden/tuned_batch_tuning.json): work = 256*batch
#    (256, 2048, 16384 at batch 1, 8, 64), thresholds round(sqrt(256*2048)) = 724 and
#    round(sqrt(2048*16384)) = 5793, i.e. batch <= 2, 3..22, >= 23.
#    Kernel 0 (row max, a block per row): 256 threads | 128 | 256 again. Kernel 1
#    (exp(relu(x))): scalar, 256 threads (one element each) | 4 elements per thread, 256
#    threads | the same function, 512 threads.
tuned = os.path.join(work, "tuned.so")
fill_template(kiln, model, flags, template, os.path.join(work, "tuning.json"), work, env)
p = run([kiln, "compile", model, "-o", tuned, *flags, "--tuning-file",
         os.path.join(work, "tuning.json")])
print(p.stderr, end="")


def ceil(a, b):
    return -(-a // b)


def want_template(b):
    if 256 * b < 724:
        k1 = ("kiln_kernel_1", (b, 1, 1), (256, 1, 1), 0)
    elif 256 * b < 5793:
        k1 = ("kiln_kernel_1_v1", (ceil(64 * b, 256), 1, 1), (256, 1, 1), 0)
    else:
        k1 = ("kiln_kernel_1_v1", (ceil(64 * b, 512), 1, 1), (512, 1, 1), 0)
    k0_block = 128 if 724 <= 256 * b < 5793 else 256
    return [("kiln_kernel_0", (b, 1, 1), (k0_block, 1, 1), 0), k1]


for b in (1, 2, 3, 8, 22, 23, 64):
    expect(f"template file, batch {b}", sorted(launches(tuned, b)), sorted(want_template(b)))

# 2. --autotune on the mock with its time model (tests/runtime/cuda/mock_driver.cpp): a launch
#    of G blocks of B threads "takes" B/128 + 2G us. The exp(relu) kernel (64*batch 4-element
#    threads): at batch 1 block 128 is fastest (3 us vs 4 and 6), at 8 block 256 ties 512
#    (6 us), at 64 block 512 (20 us vs 34 and 65). Kept for all sizes: 512 (relative sum 4.0
#    vs 4.03 for 256); batch 1 switches to 128 (2x faster there); batch 8's 256 is no faster
#    than 512. The row max (a block per row): 128 threads wins everywhere (B/128 + 2*batch).
auto_so, auto_file = os.path.join(work, "auto.so"), os.path.join(work, "auto.json")
p = run([kiln, "compile", model, "-o", auto_so, *flags, "--autotune", "--tuning-file", auto_file],
        {"KILN_MOCK_TIME_MODEL": "1"})
print(p.stderr, end="")
table = json.load(open(auto_file))
expect("autotune format", table["format"], "kiln-tuning-2")
expect("autotune buckets", table["buckets"], [{"batch": 1}, {"batch": 8}, {"batch": 64}])
by_first_block = {}
for key, k in table["kernels"].items():
    best_blocks = [k["configs"][i]["block"] for i in k["best"]]
    by_first_block[k["configs"][0]["block"], k["configs"][0]["vector"]] = best_blocks
    for c in k["configs"]:
        expect(f"kernel {key} config {c} times per bucket", len(c["ms"]), 3)
# The exp(relu) kernel's heuristic is 256 threads x 4 elements; the row max's 256 x 1.
expect("autotune per-bucket bests of exp(relu)", by_first_block.get((256, 4)), [128, 256, 512])
expect("autotune per-bucket bests of the row max", by_first_block.get((256, 1)), [128, 128, 128])
for b in (1, 2, 3, 64):
    k1 = (("kiln_kernel_1", (ceil(64 * b, 128), 1, 1), (128, 1, 1), 0) if 256 * b < 724 else
          ("kiln_kernel_1", (ceil(64 * b, 512), 1, 1), (512, 1, 1), 0))
    want = [("kiln_kernel_0", (b, 1, 1), (128, 1, 1), 0), k1]
    expect(f"autotuned, batch {b}", sorted(launches(auto_so, b)), sorted(want))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("tuned selection on the mock driver: ok")
