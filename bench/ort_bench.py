#!/usr/bin/env python3
"""Times ONNX Runtime (its Python package, CPU) as kiln's peer, where Node is not at hand.

    python3 bench/ort_bench.py --model M.onnx --input name=file.npy [...]
        [--threads T] [--warmup W] [--runs R] [--json]

Same flags and JSON line as bench/ort_bench.js (median_ms, p10_ms, p90_ms), so
bench/compare.py can use either (--ort python). --profile-out F also runs ORT's own profiler
over the timed runs and writes F: mean microseconds per run of every graph node (after ORT's
fusions) with its op type, for bench/profile_compare.py. Latency is wall time around
`session.run`, intra-op threads = T, inter-op threads = 1, all graph optimisations on.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np


def percentile(sorted_ms, q):
    """Nearest-rank percentile of an ascending list."""
    k = min(len(sorted_ms) - 1, max(0, round(q / 100.0 * (len(sorted_ms) - 1))))
    return sorted_ms[k]


def write_profile_summary(trace_path, runs, out_path):
    """Sums ORT's per-node kernel events (cat "Node", name "<node>_kernel_time") per node."""
    with open(trace_path) as f:
        events = json.load(f)
    nodes = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        entry = nodes.setdefault(name, {"op": e.get("args", {}).get("op_name", "?"), "us": 0.0})
        entry["us"] += float(e.get("dur", 0))
    for entry in nodes.values():
        entry["us"] /= runs
    with open(out_path, "w") as f:
        json.dump({"runs": runs, "nodes": nodes}, f, indent=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", action="append", default=[], help="name=file.npy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile-out", help="write ORT's per-node profile summary (JSON) here")
    args = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError as e:
        sys.exit(f"ort_bench.py: cannot import onnxruntime ({e})")
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        sys.exit("ort_bench.py: --runs and --threads must be >= 1, --warmup >= 0")

    feeds = {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"ort_bench.py: --input wants name=file.npy, got '{spec}'")
        feeds[name] = np.load(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if args.profile_out:
        opts.enable_profiling = True
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    for _ in range(args.warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    if args.profile_out:
        write_profile_summary(sess.end_profiling(), args.warmup + args.runs, args.profile_out)
    result = {"median_ms": statistics.median(times), "p10_ms": percentile(times, 10),
              "p90_ms": percentile(times, 90), "runs": args.runs, "threads": args.threads,
              "ort_version": ort.__version__}
    print(json.dumps(result) if args.json else
          f"median {result['median_ms']:.3f} ms (p10 {result['p10_ms']:.3f}, "
          f"p90 {result['p90_ms']:.3f})")


if __name__ == "__main__":
    main()
