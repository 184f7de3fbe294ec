#!/usr/bin/python3
"""Compile one reference model with kiln and check its outputs against PyTorch's.

    /usr/bin/python3 tests/models/check_model.py --kiln build/release/src/kiln \
        --model-dir build/models/encoder [--rtol-l2 1e-4] [--work-dir DIR]

The model directory is one written by scripts/export_models.py (or
scripts/make_example.py): model.onnx, sample .npy files and samples.json, which
lists the samples and the extra `kiln compile` flags the model needs (for example
`--dynamic seq=1:512`). The model is compiled once; every sample, whatever its
shape, runs through that one model.so:

    kiln compile model.onnx -o WORK/model.so <compile_args>
    kiln run WORK/model.so --input name=file.npy ... --output-dir WORK/sampleN

kiln run writes one <output>.npy per output (characters outside [A-Za-z0-9._-]
replaced with _). Each output must match the reference in shape and have a
relative L2 error ||got - ref|| / ||ref|| below --rtol-l2. With --ties-by scores
(detectors), detections whose reference scores differ by less than that tolerance
may come in either order. Exit status 0 on pass.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def output_file_name(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".npy"


def run(cmd):
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.stdout.strip():
        print(proc.stdout.rstrip())
    if proc.returncode != 0:
        print(proc.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"FAIL: exit status {proc.returncode} from {cmd[0]} {cmd[1]}")
    return secs


def rel_l2(got, ref):
    got = got.astype(np.float64)
    ref = ref.astype(np.float64)
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def tie_groups(scores, rtol):
    """[begin, end) runs of a descending score vector whose neighbours differ by at most
    rtol x its largest magnitude: detections whose order float rounding may swap."""
    tol = rtol * max(float(np.max(np.abs(scores))), 1e-30) if scores.size else 0.0
    groups, begin = [], 0
    for i in range(1, scores.size + 1):
        if i == scores.size or abs(float(scores[i - 1]) - float(scores[i])) > tol:
            groups.append((begin, i))
            begin = i
    return groups


def match_ties(got, ref, tie_output, rtol):
    """got's per-detection outputs (first dim = the detections of ref[tie_output]) reordered
    so that, inside each run of tied reference scores, each reference detection is paired with
    the nearest of kiln's (all outputs compared). Outside the runs nothing moves, so a wrong
    label or box still fails."""
    count = ref[tie_output].shape[0]
    per_det = [n for n in ref if ref[n].ndim >= 1 and ref[n].shape[0] == count and
               n in got and got[n].shape == ref[n].shape]
    order = np.arange(count)
    for begin, end in tie_groups(ref[tie_output].astype(np.float64), rtol):
        free = list(range(begin, end))
        for i in range(begin, end):
            cost = [sum(float(np.sum((got[n][j].astype(np.float64) -
                                      ref[n][i].astype(np.float64)) ** 2)) for n in per_det)
                    for j in free]
            order[i] = free.pop(int(np.argmin(cost)))
    return {n: (got[n][order] if n in per_det else got[n]) for n in got}


def check_sample(args, so_path, model_dir, index, sample, work_dir):
    out_dir = os.path.join(work_dir, f"sample{index}")
    shutil.rmtree(out_dir, ignore_errors=True)  # never read a stale output
    os.makedirs(out_dir)

    cmd = [args.kiln, "run", so_path]
    for name, file in sample["inputs"].items():
        cmd += ["--input", f"{name}={os.path.join(model_dir, file)}"]
    cmd += ["--output-dir", out_dir]
    run(cmd)

    ok = True
    shapes = ", ".join(f"{n}{list(np.load(os.path.join(model_dir, f)).shape)}"
                       for n, f in sample["inputs"].items())
    refs = {n: np.load(os.path.join(model_dir, f)) for n, f in sample["outputs"].items()}
    gots = {}
    for name in refs:
        got_path = os.path.join(out_dir, output_file_name(name))
        if os.path.exists(got_path):
            gots[name] = np.load(got_path)
    if args.ties_by and args.ties_by in refs and args.ties_by in gots:
        gots = match_ties(gots, refs, args.ties_by, args.rtol_l2)
    for name, ref in refs.items():
        if name not in gots:
            print(f"FAIL sample{index} ({shapes}): no {output_file_name(name)}; kiln wrote: "
                  f"{sorted(os.listdir(out_dir))}")
            ok = False
            continue
        got = gots[name]
        if got.shape != ref.shape:
            print(f"FAIL sample{index} ({shapes}): output {name} has shape {list(got.shape)}, "
                  f"expected {list(ref.shape)}")
            ok = False
            continue
        err = rel_l2(got, ref)
        passed = bool(np.isfinite(err)) and err < args.rtol_l2
        print(f"{'ok  ' if passed else 'FAIL'} sample{index} ({shapes}): output {name} "
              f"{got.dtype}{list(got.shape)} rel L2 error {err:.3e} (limit {args.rtol_l2:g})")
        ok = ok and passed
    return ok


def with_dim_ranges(compile_args, ranges):
    """compile_args with each `--dynamic NAME=...` named in ranges given that range instead."""
    wanted = dict(r.split("=", 1) for r in ranges)
    out = list(compile_args)
    for i in range(1, len(out)):
        name = out[i].split("=", 1)[0]
        if out[i - 1] == "--dynamic" and name in wanted:
            out[i] = f"{name}={wanted.pop(name)}"
    if wanted:
        raise SystemExit(f"FAIL: --dim-range names no --dynamic dim of the manifest: {wanted}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True, help="kiln executable")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--rtol-l2", type=float, default=1e-4)
    ap.add_argument("--work-dir", help="where model.so and outputs go (default: a temp dir)")
    ap.add_argument("--compile-arg", action="append", default=[],
                    help="extra `kiln compile` argument (repeatable)")
    ap.add_argument("--ties-by", metavar="OUTPUT",
                    help="a descending score output: detections whose reference scores tie "
                         "within --rtol-l2 are matched in any order (float rounding may swap "
                         "them)")
    ap.add_argument("--dim-range", action="append", default=[], metavar="NAME=LO:HI",
                    help="replace the manifest's --dynamic range of NAME (repeatable)")
    args = ap.parse_args()

    manifest_path = os.path.join(args.model_dir, "samples.json")
    if not os.path.exists(manifest_path):
        raise SystemExit(f"FAIL: no {manifest_path}; run scripts/export_models.py")
    with open(manifest_path) as f:
        manifest = json.load(f)

    own_work_dir = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="kiln-check-") if own_work_dir else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    try:
        so_path = os.path.join(work_dir, "model.so")
        if os.path.exists(so_path):
            os.remove(so_path)
        onnx_path = os.path.join(args.model_dir, manifest.get("model", "model.onnx"))
        secs = run([args.kiln, "compile", onnx_path, "-o", so_path] +
                   with_dim_ranges(manifest.get("compile_args", []), args.dim_range) +
                   args.compile_arg)
        print(f"compiled in {secs:.2f} s")

        results = [check_sample(args, so_path, args.model_dir, i + 1, s, work_dir)
                   for i, s in enumerate(manifest["samples"])]
    finally:
        if own_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    if not all(results):
        print(f"FAIL: {results.count(False)} of {len(results)} sample(s)")
        return 1
    print(f"PASS: {len(results)} sample(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
