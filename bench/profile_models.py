#!/usr/bin/env python3
"""Profiles kiln and ONNX Runtime on bench/compare.py's models, node by node, on one machine.

    python3 bench/profile_models.py --kiln K --models-dir D --work-dir W --out O
        [--models resnet50,bert_base] [--threads 1,2] [--cpus 1,2] [--runs 10]

For each model and thread count: `kiln bench --profile-trace` and `bench/ort_bench.py
--profile-out` (ORT's own profiler, Python package) on the same inputs, pinned to the same
CPUs, then bench/profile_compare.py's side-by-side table into O/<model>-t<threads>.md. Profiles
add overhead to both (a timer per kernel, per node); compare shares and per-node times, not
the latencies of bench/compare.py.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (BENCH_CASES, samples.json and compile helpers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="resnet50,mobilenet_v2,bert_base,gpt2")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cpus", help="taskset -c LIST for every profiled process")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    here = os.path.dirname(os.path.abspath(__file__))
    failed = 0
    for name in [m for m in args.models.split(",") if m]:
        dir_name, tag, label = compare.BENCH_CASES[name]
        model_dir = os.path.join(args.models_dir, dir_name)
        onnx_path = os.path.join(model_dir, "model.onnx")
        manifest, sample = compare.sample_of(model_dir, tag)
        flags = compare.input_flags(model_dir, sample["inputs"])
        so = os.path.join(args.work_dir, f"{dir_name}.so")
        if not os.path.exists(so):
            compare.kiln_compile(args.kiln, onnx_path, so, manifest.get("compile_args", []),
                                 os.path.join(args.work_dir, "cache"))
        for t in [int(x) for x in args.threads.split(",") if x]:
            base = os.path.join(args.out, f"{name}-t{t}")
            steps = [
                pin + [args.kiln, "bench", so] + flags +
                ["--threads", str(t), "--runs", str(args.runs), "--warmup", "3",
                 "--profile-top", "15", "--profile-trace", base + ".kiln.json"],
                pin + [sys.executable, os.path.join(here, "ort_bench.py"), "--model",
                       onnx_path] + flags +
                ["--threads", str(t), "--runs", str(args.runs), "--warmup", "3",
                 "--profile-out", base + ".ort.json"],
                [sys.executable, os.path.join(here, "profile_compare.py"), "--kiln-trace",
                 base + ".kiln.json", "--ort-profile", base + ".ort.json", "--top",
                 str(args.top)],
            ]
            with open(base + ".md", "w") as md:
                md.write(f"# {label}, {t} thread(s)\n\n")
                for cmd in steps:
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    md.write(proc.stdout + ("\n" if proc.stdout else ""))
                    if proc.returncode != 0:
                        failed += 1
                        md.write(f"\n`{' '.join(cmd)}` failed ({proc.returncode}):\n"
                                 f"{proc.stderr[-2000:]}\n")
            print(f"{name} t{t}: {base}.md", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
