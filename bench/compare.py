#!/usr/bin/python3
"""Compare kiln's latency with ONNX Runtime's on the exported reference models.

    /usr/bin/python3 bench/compare.py [--kiln build/release/src/kiln]
        [--models-dir build/models] [--models resnet50,mobilenet_v2,encoder]
        [--threads 1,2] [--runs 30] [--warmup 5] [--rounds 3]
        [--peer-only] [--json-out results.json]

Models come from scripts/export_models.py. For each model, kiln compiles it twice
with the compile flags its samples.json asks for: once "cold", against an empty
temporary cache directory (KILN_CACHE_DIR), then "warm", against the cache the first
compile filled. Then, for each thread count, the two runtimes are timed alternately
for --rounds rounds (kiln, ORT, kiln, ORT, ...), so drift in machine load hits both;
the reported latency is the median over rounds of each round's median.

kiln:  <kiln> run model.so --input name=file.npy --bench R --warmup W --threads T --json
ORT:   node bench/ort_bench.js --model model.onnx --input ... --threads T --json
Both print one JSON line with median_ms, p10_ms and p90_ms.

--peer-only times ONNX Runtime alone (for when kiln is not built).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")

# The input sample each model is timed on.
BENCH_INPUTS = {
    "resnet50": {"x": "input_x.npy"},
    "mobilenet_v2": {"x": "input_x.npy"},
    "encoder": {"tokens": "input_b1s128_tokens.npy"},  # batch 1, seq 128
}


class BenchError(Exception):
    pass


def run_json(cmd, env=None):
    """Runs cmd and returns the JSON object on the last line of its stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr.strip()}")
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"`{' '.join(cmd)}` printed no JSON line:\n{proc.stdout.strip()}")


def input_flags(model_dir, inputs):
    flags = []
    for name, file in inputs.items():
        path = os.path.join(model_dir, file)
        if not os.path.exists(path):
            raise BenchError(f"missing {path}; run scripts/export_models.py")
        flags += ["--input", f"{name}={path}"]
    return flags


def compile_args(model_dir):
    manifest = os.path.join(model_dir, "samples.json")
    if not os.path.exists(manifest):
        return []
    with open(manifest) as f:
        return json.load(f).get("compile_args", [])


def kiln_compile(kiln, onnx_path, so_path, extra, cache_dir):
    env = dict(os.environ, KILN_CACHE_DIR=cache_dir)
    cmd = [kiln, "compile", onnx_path, "-o", so_path] + extra
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return secs


def time_kiln(args, so_path, flags, threads):
    return run_json([args.kiln, "run", so_path] + flags +
                    ["--bench", str(args.runs), "--warmup", str(args.warmup),
                     "--threads", str(threads), "--json"])


def time_ort(args, onnx_path, flags, threads):
    return run_json([args.node, ORT_BENCH, "--model", onnx_path] + flags +
                    ["--runs", str(args.runs), "--warmup", str(args.warmup),
                     "--threads", str(threads), "--json"])


def fmt_ms(x):
    return "—" if x is None else f"{x:.2f}"


def bench_model(args, name):
    model_dir = os.path.join(args.models_dir, name)
    onnx_path = os.path.join(model_dir, "model.onnx")
    if not os.path.exists(onnx_path):
        raise BenchError(f"missing {onnx_path}; run /usr/bin/python3 scripts/export_models.py")
    flags = input_flags(model_dir, BENCH_INPUTS[name])
    result = {"model": name, "compile": None, "timings": []}

    so_path = None
    if not args.peer_only:
        os.makedirs(args.work_dir, exist_ok=True)
        so_path = os.path.join(args.work_dir, f"{name}.so")
        cache = tempfile.mkdtemp(prefix="kiln-cache-")
        try:
            extra = compile_args(model_dir) + args.compile_arg
            cold = kiln_compile(args.kiln, onnx_path, so_path, extra, cache)
            warm = kiln_compile(args.kiln, onnx_path, so_path, extra, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        result["compile"] = {"cold_s": cold, "warm_s": warm}
        print(f"  {name}: compiled cold {cold:.2f} s, warm {warm:.2f} s", file=sys.stderr)

    for threads in args.threads:
        kiln_rounds, ort_rounds = [], []
        for _ in range(args.rounds):
            if so_path:
                kiln_rounds.append(time_kiln(args, so_path, flags, threads))
            ort_rounds.append(time_ort(args, onnx_path, flags, threads))
        med = lambda rounds, key: statistics.median(r[key] for r in rounds) if rounds else None
        row = {"threads": threads}
        for tag, rounds in (("kiln", kiln_rounds), ("ort", ort_rounds)):
            for key in ("median_ms", "p10_ms", "p90_ms"):
                row[f"{tag}_{key}"] = med(rounds, key)
        row["ratio"] = (row["ort_median_ms"] / row["kiln_median_ms"]) if so_path else None
        print(f"  {name} x{threads}: kiln {fmt_ms(row['kiln_median_ms'])} ms, "
              f"ORT {fmt_ms(row['ort_median_ms'])} ms", file=sys.stderr)
        result["timings"].append(row)
    return result


def print_tables(results, args):
    print(f"\nLatency, median of {args.rounds} round(s) × {args.runs} runs after "
          f"{args.warmup} warm-up; ratio = ORT / kiln (> 1: kiln faster)\n")
    print("| model | threads | kiln ms | ORT ms | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        if "error" in r:
            print(f"| {r['model']} | | error | error | |")
            continue
        for t in r["timings"]:
            ratio = "—" if t["ratio"] is None else f"{t['ratio']:.2f}"
            print(f"| {r['model']} | {t['threads']} | {fmt_ms(t['kiln_median_ms'])} | "
                  f"{fmt_ms(t['ort_median_ms'])} | {ratio} |")
    compiled = [r for r in results if r.get("compile")]
    if not compiled:
        return
    print("\n| model | cold compile s | warm compile s |")
    print("| --- | ---: | ---: |")
    for r in compiled:
        print(f"| {r['model']} | {r['compile']['cold_s']:.2f} | {r['compile']['warm_s']:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default="build/release/src/kiln", help="kiln executable")
    ap.add_argument("--node", default="node", help="node executable")
    ap.add_argument("--models-dir", default="build/models")
    ap.add_argument("--work-dir", default="build/bench", help="where compiled .so files go")
    ap.add_argument("--models", default=",".join(BENCH_INPUTS))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating kiln/ORT rounds")
    ap.add_argument("--compile-arg", action="append", default=[],
                    help="extra argument for `kiln compile` (repeatable)")
    ap.add_argument("--peer-only", action="store_true", help="time ONNX Runtime only")
    ap.add_argument("--json-out", help="also write all results to this JSON file")
    args = ap.parse_args()

    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in BENCH_INPUTS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(BENCH_INPUTS)}")
    args.threads = [int(t) for t in args.threads.split(",") if t]
    if args.runs < 1 or args.warmup < 0 or args.rounds < 1:
        ap.error("--runs and --rounds must be >= 1, --warmup >= 0")
    if not args.peer_only and not (os.path.isfile(args.kiln) and os.access(args.kiln, os.X_OK)):
        ap.error(f"kiln executable '{args.kiln}' not found; build it, pass --kiln, "
                 "or use --peer-only")
    if not os.path.isdir(os.path.join(REPO, "bench", "node_modules", "onnxruntime-node")):
        ap.error("onnxruntime-node is not installed; run "
                 "`cd bench && npm install onnxruntime-node@1.30.0 --ignore-scripts`")

    results = []
    for name in args.models:
        try:
            results.append(bench_model(args, name))
        except BenchError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            results.append({"model": name, "error": str(e)})

    print_tables(results, args)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
                       "results": results}, f, indent=2)
            f.write("\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
