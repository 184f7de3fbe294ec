#!/usr/bin/env python3
"""`kiln compile --autotune` on the GPU, with per-bucket run-time selection, checked.

Run on the GPU machine (numpy, onnx, a carried `kiln` compiler and runtime; no PyTorch):

    python3 tests/gpu/check_autotune.py --kiln KILN --out DIR --json REPORT

A dynamic-batch model (batch 1..4096 x 1024: an elementwise chain, a row max, a softmax and
a sum over the batch) is compiled three ways: with heuristics, with --autotune (which times
every candidate at batch 1, 64 and 4096 on this GPU and writes a tuning file), and with a
"forced" file made from the autotuned one in which each bucket's fastest config is another
candidate, so the compiled model must switch kernels at run time whatever this GPU measured.
Each model runs through `kiln run` at batch sizes in every bucket and on both sides of each
forced threshold; outputs are compared with numpy in float64 (relative L2 <= 1e-5: fp32
elementwise math is within a few ulp and the tree sums over <= 4096 terms add about
log2(4096) = 12 roundings, ~1e-6), and the kernels that ran (the runtime's
KILN_CUDA_KERNEL_TIMES) are checked against the selection the compiler printed.
The JSON report holds each bucket's fastest config per kernel, the selections, and per run
the errors and kernels that ran. Exit status: 0 all passed, 1 a check failed, 2 could not run.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

WIDTH, MAX_BATCH = 1024, 4096
TOLERANCE = 1e-5


def make_model(path):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu"),
             h.make_node("Mul", ["r", "quarter"], ["q"], name="scale"),
             h.make_node("Exp", ["q"], ["y"], name="exp"),
             h.make_node("ReduceMax", ["x"], ["m"], name="rowmax", axes=[1], keepdims=0),
             h.make_node("Softmax", ["x"], ["s"], name="softmax", axis=-1),
             h.make_node("ReduceSum", ["x", "axis0"], ["c"], name="colsum", keepdims=0)]
    g = h.make_graph(
        nodes, "tuned_dynamic", [h.make_tensor_value_info("x", T.FLOAT, ["batch", WIDTH])],
        [h.make_tensor_value_info("y", T.FLOAT, ["batch", WIDTH]),
         h.make_tensor_value_info("m", T.FLOAT, ["batch"]),
         h.make_tensor_value_info("s", T.FLOAT, ["batch", WIDTH]),
         h.make_tensor_value_info("c", T.FLOAT, [WIDTH])],
        [nh.from_array(np.array(0.25, np.float32), "quarter"),
         nh.from_array(np.array([0], np.int64), "axis0")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8  # readable by older onnx checkers too
    onnx.save(m, path)


def reference(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return {"y": np.exp(np.maximum(x, 0) * 0.25), "m": x.max(axis=1),
            "s": e / e.sum(axis=1, keepdims=True), "c": x.sum(axis=0)}


def rel_l2(got, want):
    got, want = got.astype(np.float64), want.astype(np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


SELECTION = re.compile(r"^kiln:\s+(kiln_kernel_\d+) by (.+?): (.*)$")


def parse_selections(stderr):
    """{kernel: {"measure", "variants": [{"ranges": [(lo, hi)], "config", "function"}]}} from
    the lines `kiln compile` prints for kernels that choose at run time."""
    out = {}
    for line in stderr.splitlines():
        m = SELECTION.match(line)
        if not m:
            continue
        kernel, measure, rest = m.groups()
        variants = []
        for part in rest.split("; "):
            where, config = part.split(": ", 1)
            fn = re.search(r"\(_v(\d+)\)$", config)
            ranges = []
            for r in where.split(" or "):
                if r.startswith("< "):
                    ranges.append((None, int(r[2:])))
                elif r.startswith(">= "):
                    ranges.append((int(r[3:]), None))
                else:
                    lo, hi = re.fullmatch(r"\[(-?\d+), (-?\d+)\)", r).groups()
                    ranges.append((int(lo), int(hi)))
            variants.append({"ranges": ranges, "config": re.sub(r" \(_v\d+\)$", "", config),
                             "function": kernel + (f"_v{fn.group(1)}" if fn else "")})
        out[kernel] = {"measure": measure, "variants": variants, "line": line}
    return out


def measure_at(expr, batch):
    """The printed measure (sym::toString over `batch`) at this batch, or None if it uses
    more than + - * / and parentheses."""
    text = re.sub(r"\bbatch\b", str(batch), expr)
    if not re.fullmatch(r"[0-9+\-*/() ]+", text):
        return None
    return eval(text.replace("/", "//"))  # noqa: S307 (digits and operators only)


def expected_function(sel, batch):
    w = measure_at(sel["measure"], batch)
    if w is None:
        return None
    for v in sel["variants"]:
        for lo, hi in v["ranges"]:
            if (lo is None or w >= lo) and (hi is None or w < hi):
                return v["function"]
    return "none"


class Checker:
    def __init__(self, args):
        self.args, self.env = args, dict(os.environ)
        self.report = {"compiles": {}, "runs": [], "ok": False}
        self.failed = False

    def compile(self, name, model, extra):
        so = os.path.join(self.args.out, name, "model.so")
        os.makedirs(os.path.dirname(so), exist_ok=True)
        cmd = [self.args.kiln, "compile", model, "-o", so, "--device", "cuda", "--cuda-arch",
               self.args.cuda_arch, "--dynamic", f"batch=1:{MAX_BATCH}"] + extra
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=1800)
        entry = {"cmd": " ".join(cmd), "rc": p.returncode,
                 "seconds": round(time.perf_counter() - t0, 2),
                 "stderr_tail": p.stderr[-3000:]}
        entry["selections"] = parse_selections(p.stderr)
        self.report["compiles"][name] = entry
        print(f"compile {name}: rc={p.returncode} in {entry['seconds']} s; "
              f"{len(entry['selections'])} kernel(s) choosing at run time", file=sys.stderr)
        return so if p.returncode == 0 else None

    def run(self, name, so, batch, selections):
        d = os.path.join(self.args.out, name, f"b{batch}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        x = np.random.default_rng(batch).standard_normal((batch, WIDTH)).astype(np.float32)
        np.save(os.path.join(d, "x.npy"), x)
        times = os.path.join(d, "times.json")
        p = subprocess.run([self.args.kiln, "run", so, "--input", f"x={d}/x.npy",
                            "--output-dir", os.path.join(d, "out")], capture_output=True,
                           text=True, env=dict(self.env, KILN_CUDA_KERNEL_TIMES=times),
                           timeout=600)
        row = {"so": name, "batch": batch, "rc": p.returncode}
        if p.returncode != 0:
            row.update(ok=False, error=p.stderr[-2000:])
            return self.add(row)
        want = reference(x)
        row["rel_l2"] = {}
        for k in want:
            got = np.load(os.path.join(d, "out", f"{k}.npy"))
            row["rel_l2"][k] = (rel_l2(got, want[k]) if got.shape == want[k].shape
                                else f"shape {got.shape}, want {want[k].shape}")
        ok = all(isinstance(e, float) and e <= TOLERANCE for e in row["rel_l2"].values())
        ran = sorted(json.load(open(times))["kernels"]) if os.path.exists(times) else []
        row["ran"] = ran
        row["expected"] = {}
        for kernel, sel in selections.items():
            fn = expected_function(sel, batch)
            row["expected"][kernel] = fn
            others = {v["function"] for v in sel["variants"]} - {fn}
            if fn is not None and (fn not in ran or others & set(ran)):
                ok = False
                row.setdefault("wrong_kernel", []).append(kernel)
        row["ok"] = ok
        return self.add(row)

    def add(self, row):
        self.report["runs"].append(row)
        self.failed |= not row["ok"]
        print(f"  {row['so']} batch {row['batch']}: {'ok' if row['ok'] else 'FAILED'} "
              f"{row.get('rel_l2', row.get('error', ''))}", file=sys.stderr)

    def tuning_summary(self, path):
        """Per kernel key: each bucket's fastest config and its time."""
        t = json.load(open(path))
        buckets = [",".join(f"{k}={v}" for k, v in b.items()) for b in t["buckets"]]
        kernels = {}
        for key, k in t["kernels"].items():
            kernels[key] = [{"bucket": buckets[b], "best": {n: k["configs"][i][n] for n in
                                                             ("block", "vector", "rows_per_warp")},
                             "ms": k["configs"][i]["ms"][b],
                             "all_ms": [c["ms"][b] for c in k["configs"]]}
                            for b, i in enumerate(k["best"])]
        return {"format": t["format"], "buckets": buckets, "kernels": kernels}


def forced_file(src, dst):
    """The autotuned file with each bucket's fastest config rotated through the candidates
    from the last (times: 1.0 for the bucket's pick, 2.0 for the others), so every kernel with
    two or more candidates must choose at run time; the smallest bucket takes the last
    candidate, for elementwise kernels the scalar-lane one: another function than the rest."""
    t = json.load(open(src))
    for k in t["kernels"].values():
        n = len(k["configs"])
        k["best"] = [(n - 1 - b) % n for b in range(len(t["buckets"]))]
        for i, c in enumerate(k["configs"]):
            c["ms"] = [1.0 if k["best"][b] == i else 2.0 for b in range(len(t["buckets"]))]
    with open(dst, "w") as f:
        json.dump(t, f, indent=1)


def batches_around(selections):
    """Batch sizes in every bucket plus both sides of every threshold the selections print."""
    out = {1, 2, 64, 65, MAX_BATCH}
    for sel in selections.values():
        for v in sel["variants"]:
            for lo, hi in v["ranges"]:
                for t in (lo, hi):
                    if t is None:
                        continue
                    first = next((b for b in range(1, MAX_BATCH + 1)
                                  if (measure_at(sel["measure"], b) or -1) >= t), None)
                    if first:
                        out |= {first, max(first - 1, 1)}
    return sorted(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True, help="the kiln compiler")
    ap.add_argument("--out", required=True, help="work directory (models, outputs)")
    ap.add_argument("--json", required=True, help="the JSON report to write")
    ap.add_argument("--cuda-arch", default="sm_90")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    c = Checker(args)
    try:
        status = check(c, args)
    except Exception as e:  # a bug here must still leave a report
        c.report["error"] = f"{type(e).__name__}: {e}"
        status = 2
    c.report["ok"] = status == 0
    with open(args.json, "w") as f:
        json.dump(c.report, f, indent=1)
    print(f"autotune check: {'ok' if status == 0 else 'FAILED'} (report {args.json})",
          file=sys.stderr)
    return status


def check(c, args):
    if not os.access(args.kiln, os.X_OK):
        c.report["error"] = f"--kiln {args.kiln} is not an executable"
        return 2
    model = os.path.join(args.out, "tuned_dynamic.onnx")
    make_model(model)
    heuristic = c.compile("heuristic", model, [])
    tfile = os.path.join(args.out, "tuning.json")
    tuned = c.compile("autotuned", model, ["--autotune", "--tuning-file", tfile])
    if not tuned:
        c.report["error"] = ("kiln compile --autotune failed (is there a usable GPU?): " +
                             c.report["compiles"]["autotuned"]["stderr_tail"][-600:])
        return 2
    c.report["tuning"] = c.tuning_summary(tfile)
    ffile = os.path.join(args.out, "forced.json")
    forced_file(tfile, ffile)
    forced = c.compile("forced", model, ["--tuning-file", ffile])
    if not heuristic or not forced:
        c.report["error"] = "a compile failed (see compiles)"
        return 2
    fsel = c.report["compiles"]["forced"]["selections"]
    if not fsel:
        c.report["error"] = "the forced tuning file gave no run-time selection"
        c.failed = True
    batches = batches_around(fsel)
    c.report["batches"] = batches
    for name, so in (("heuristic", heuristic), ("autotuned", tuned), ("forced", forced)):
        sel = c.report["compiles"][name]["selections"]
        for b in batches if name == "forced" else batches_around(sel):
            c.run(name, so, b, sel)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
