#!/usr/bin/env python3
"""Reliability (issue 11): a file size limit (RLIMIT_FSIZE, what a full disk looks like to a
writer) while kiln writes model.so, its .weights file or its object cache must give exit 1, a
message that names the file and says why, and leave no output and no temp file anywhere.

Cases: embedded (the 4 MB weights cannot be appended to the linked model.so), external (the
.weights file cannot be written), link (the linked library already cached: its copy to
model.so fails).
Usage: limits.py <kiln> <workdir> <case>
"""
import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN, WORK, CASE = sys.argv[1:4]
LIMIT = 1 << 20  # 1 MiB; the model's weights are 4 MiB


def model(path):
    w = np.arange(1024 * 1024, dtype=np.float32).reshape(1024, 1024) / 1e6
    g = h.make_graph([h.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 1024])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 1024])], [nh.from_array(w, "W")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)


def limited():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def compile_(src, out, cache, extra, limit):
    env = dict(os.environ, KILN_CACHE_DIR=cache)
    return subprocess.run([KILN, "compile", src, "-o", out, *extra], capture_output=True,
                          text=True, timeout=300, env=env, preexec_fn=limited if limit else None)


def main():
    base = os.path.join(WORK, CASE)
    shutil.rmtree(base, ignore_errors=True)
    out_dir, cache = os.path.join(base, "out"), os.path.join(base, "cache")
    os.makedirs(out_dir)
    src = os.path.join(base, "model.onnx")
    model(src)
    out = os.path.join(out_dir, "model.so")
    extra = ["--weights", "external"] if CASE == "external" else []
    if CASE == "link":  # fill the cache first, without a limit
        p = compile_(src, out, cache, extra, False)
        if p.returncode != 0:
            print("unlimited compile failed:", p.stderr)
            return 1
        os.remove(out)
    p = compile_(src, out, cache, extra, True)
    msg = p.stdout + p.stderr
    errors = []
    if p.returncode != 1:
        errors.append(f"expected exit 1, got {p.returncode}")
    if "file size limit" not in msg:
        errors.append("message does not say 'file size limit'")
    want = {"embedded": "model.so", "external": "model.so.weights", "link": "model.so"}[CASE]
    if want not in msg:
        errors.append(f"message does not name {want!r}")
    if os.listdir(out_dir):
        errors.append(f"left in the output directory: {os.listdir(out_dir)}")
    tmp = [os.path.join(r, f) for r, _, fs in os.walk(cache) for f in fs if ".tmp" in f]
    if tmp:
        errors.append(f"temp files left in the cache: {tmp}")
    print(f"[{'FAIL' if errors else 'ok'}] {CASE}: rc={p.returncode} msg={msg.strip()[:400]!r}")
    for e in errors:
        print("    -", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
