#!/usr/bin/env python3
"""How kiln's and ONNX Runtime's latencies spread process after process, on one machine.

    python3 bench/latency_spread.py --kiln K [--models-dir build/models] [--work-dir W]
        [--models mobilenet_v2,resnet18] [--threads 1,2] [--cpus 1,2] [--reps 4]
        [--runs 30] [--ort node|python] [--json-out F]

bench/compare.py gives one median per round; a round that lands on a slow process moves the
ratio. This starts a fresh process per measurement, --reps times for each model, thread count
and runtime, and prints each process's median (the JSON keeps its p10 / p90 too), so a runtime
whose processes are bimodal (some fast, some slow) shows as such. kiln runs twice: its model.so
for this CPU (`native`), and one compiled for x86-64-v3 run with ONEDNN_MAX_CPU_ISA=AVX2
(kiln's AVX2 paths), which on an AVX-512 machine tells the wider paths' share of any spread
apart.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (BENCH_CASES, samples.json, compile and timing helpers)


def variants(args, name):
    """(label, model.so, extra environment) for kiln's builds of one model."""
    dir_name, tag, _ = compare.BENCH_CASES[name]
    model_dir = os.path.join(args.models_dir, dir_name)
    onnx_path = os.path.join(model_dir, "model.onnx")
    manifest, sample = compare.sample_of(model_dir, tag)
    extra = manifest.get("compile_args", [])
    cache = os.path.join(args.work_dir, "cache")
    out = []
    for label, cpu, env in (("kiln", [], None),
                            ("kiln-avx2", ["--cpu=x86-64-v3"], {"ONEDNN_MAX_CPU_ISA": "AVX2"})):
        so = os.path.join(args.work_dir, f"{dir_name}.spread-{label}.so")
        compare.kiln_compile(args.kiln, onnx_path, so, extra + cpu, cache)
        out.append((label, so, env))
    return onnx_path, compare.input_flags(model_dir, sample["inputs"]), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models-dir", default=os.path.join(compare.REPO, "build", "models"))
    ap.add_argument("--work-dir", default=os.path.join(compare.REPO, "build", "bench-spread"))
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cpus", help="taskset -c LIST for every timed process")
    ap.add_argument("--reps", type=int, default=4, help="processes per runtime and case")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--ort", choices=["node", "python"], default="node")
    ap.add_argument("--node", default="node")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",") if t]
    results = {}
    for name in [m for m in args.models.split(",") if m]:
        onnx_path, flags, builds = variants(args, name)
        for rep in range(args.reps):
            for t in threads:
                for label, so, env in builds:
                    r = compare.time_kiln(args, so, flags, t, env_extra=env)
                    results.setdefault(f"{name} {t}t {label}", []).append(r)
                r = compare.time_ort(args, onnx_path, flags, t)
                results.setdefault(f"{name} {t}t ort", []).append(r)
    print("| case | processes | p50 of each process, ms | spread (max / min p50) |")
    print("| --- | ---: | --- | ---: |")
    for case, runs in results.items():
        p50 = [r["median_ms"] for r in runs]
        print(f"| {case} | {len(runs)} | {' '.join(f'{x:.2f}' for x in p50)} | "
              f"{max(p50) / min(p50):.2f} |")
        results[case] = {"p50_ms": p50, "median_of_p50_ms": statistics.median(p50),
                         "runs": runs}
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
