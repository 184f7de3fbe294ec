#!/usr/bin/env python3
"""A compile's output depends on the model and the flags only, not on what the cache held.

For each exported model directory (scripts/export_models.py: model.onnx + samples.json with its
compile_args), compiles it twice into a fresh object cache, keeping the generated sources:
the second compile must find every object in the cache ("0 compiled") and generate the same
sources byte for byte. Session 52 found the memory planner assigning buffers to scratch slots
in heap-address order, which a warm cache changed, so every warm compile of a transformer
rebuilt its wrapper (BERT-base: 1.9 s instead of 0.3 s).

    reproducible_compile.py --kiln build/release/src/kiln --work-dir DIR MODEL_DIR...
"""
import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys


def compile_once(kiln, model_dir, out, cache):
    with open(os.path.join(model_dir, "samples.json")) as f:
        extra = json.load(f).get("compile_args", [])
    cmd = [kiln, "compile", os.path.join(model_dir, "model.onnx"), "-o", out,
           "--keep-sources", "--cache-dir", cache] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    m = re.search(r"(\d+) compiled, (\d+) cached", proc.stderr)
    if not m:
        sys.exit(f"FAIL: no 'N compiled, M cached' in kiln's report:\n{proc.stderr}")
    return int(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("model_dirs", nargs="+")
    args = ap.parse_args()
    failures = []
    for model_dir in args.model_dirs:
        name = os.path.basename(os.path.normpath(model_dir))
        work = os.path.join(args.work_dir, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        cache = os.path.join(work, "cache")
        cold = compile_once(args.kiln, model_dir, os.path.join(work, "cold.so"), cache)
        warm = compile_once(args.kiln, model_dir, os.path.join(work, "warm.so"), cache)
        cmp = filecmp.dircmp(os.path.join(work, "cold.so.src"), os.path.join(work, "warm.so.src"))
        differing = cmp.diff_files + cmp.left_only + cmp.right_only
        ok = cold[0] > 0 and warm[0] == 0 and not differing
        print(f"{'ok  ' if ok else 'FAIL'} {name}: cold {cold[0]} compiled, warm {warm[0]} "
              f"compiled / {warm[1]} cached; sources differing: {differing or 'none'}")
        if not ok:
            failures.append(name)
    if failures:
        sys.exit(f"FAIL: {', '.join(failures)}")


if __name__ == "__main__":
    main()
