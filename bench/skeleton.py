#!/usr/bin/env python3
"""Ships benchmark models without their weights, for machines a model cannot be copied to.

    python3 bench/skeleton.py strip   MODELS_DIR OUT_DIR [--models a,b]
    python3 bench/skeleton.py restore SKELETON_DIR MODELS_DIR

`strip` copies each model directory of scripts/export_models.py (model.onnx, its input
.npy files and samples.json) with every large, finite floating-point initializer removed
from model.onnx and recorded in weights.json by shape, dtype, mean and standard deviation.
`restore` puts random weights of the same shape, dtype, mean and spread back (seeded by the
tensor's name), giving the same graph with the same sizes and value ranges: what latency
depends on. The outputs are not the reference outputs any more, so reference files are not
copied. Small initializers (shape constants, indices, masks) stay verbatim.
"""

import argparse
import json
import os
import shutil
import sys
import zlib

import numpy as np
import onnx
from onnx import numpy_helper

KEEP_BELOW = 4096  # elements: smaller initializers are shape data, kept exactly
FLOAT_TYPES = (np.float16, np.float32, np.float64)


def strip_model(src, dst):
    model = onnx.load(os.path.join(src, "model.onnx"))
    kept, removed = [], {}
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype.type in FLOAT_TYPES and a.size >= KEEP_BELOW and np.isfinite(a).all():
            a64 = a.astype(np.float64)
            removed[init.name] = {"dims": list(a.shape), "dtype": str(a.dtype),
                                  "mean": float(a64.mean()), "std": float(a64.std())}
        else:
            kept.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    os.makedirs(dst, exist_ok=True)
    onnx.save(model, os.path.join(dst, "model.skel.onnx"))
    with open(os.path.join(dst, "weights.json"), "w") as f:
        json.dump(removed, f)
    for name in os.listdir(src):
        if name == "samples.json" or (name.startswith("input") and name.endswith(".npy")):
            shutil.copy(os.path.join(src, name), dst)
    return len(removed)


def restore_model(src, dst):
    model = onnx.load(os.path.join(src, "model.skel.onnx"))
    with open(os.path.join(src, "weights.json")) as f:
        removed = json.load(f)
    for name, w in removed.items():
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        a = rng.normal(w["mean"], w["std"], size=w["dims"]).astype(w["dtype"])
        model.graph.initializer.append(numpy_helper.from_array(a, name))
    os.makedirs(dst, exist_ok=True)
    # Large models need the protobuf's 2 GiB limit only; they are written in one piece.
    onnx.save(model, os.path.join(dst, "model.onnx"))
    for name in os.listdir(src):
        if name.endswith(".npy") or name == "samples.json":
            shutil.copy(os.path.join(src, name), dst)
    return len(removed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("strip", "restore"))
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--models", help="comma-separated model directories (default: all)")
    args = ap.parse_args()
    names = (args.models.split(",") if args.models else
             sorted(d for d in os.listdir(args.src) if os.path.isdir(os.path.join(args.src, d))))
    for name in names:
        src, dst = os.path.join(args.src, name), os.path.join(args.dst, name)
        want = "model.onnx" if args.action == "strip" else "model.skel.onnx"
        if not os.path.exists(os.path.join(src, want)):
            sys.exit(f"skeleton.py: {src} has no {want}")
        n = (strip_model if args.action == "strip" else restore_model)(src, dst)
        print(f"{args.action} {name}: {n} initializer(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
