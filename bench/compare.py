#!/usr/bin/python3
"""Compare kiln's latency with ONNX Runtime's on the exported reference models.

    /usr/bin/python3 bench/compare.py [--kiln build/release/src/kiln]
        [--models-dir build/models] [--models resnet50,bert_base,...]
        [--threads 1,2] [--runs 30] [--warmup 5] [--rounds 3]
        [--peer-only] [--json-out results.json] [--ort node|python] [--cpus 0,1]
        [--baseline-kiln OLD/kiln [--baseline-label "before"]]
        [--write-docs docs/perf.md] [--plot docs/perf_ratios.png] [--hide-avx512]

Models come from scripts/export_models.py. For each model, kiln compiles it twice
with the compile flags its samples.json asks for: once "cold", against an empty
temporary cache directory (KILN_CACHE_DIR), then "warm", against the cache the first
compile filled. Then, for each thread count, the two runtimes are timed alternately
for --rounds rounds (kiln, ORT, kiln, ORT, ...), so drift in machine load hits both;
the reported latency is the median over rounds of each round's median.

kiln:  <kiln> run model.so --input name=file.npy --bench R --warmup W --threads T --json
ORT:   node bench/ort_bench.js --model model.onnx --input ... --threads T --json
Both print one JSON line with median_ms, p10_ms and p90_ms. Each timed run is a fresh
process; its peak RSS (ru_maxrss from wait4, in MiB) is the "kiln RSS MB / ORT RSS MB"
column, the largest over the rounds (JSON: kiln_rss_mb, ort_rss_mb). It is the whole
process: for ORT that includes Node's own (or Python's), for kiln the CLI's.

Every row carries the sample's direct-method FLOPs (conv + matmul multiply-adds x 2, from
samples.json) and "% of peak": FLOPs / latency / (threads x the fp32 FMA peak of one core),
the peak measured by bench/peak/fma_peak.cpp (built here with g++; AVX-512 or AVX2 as cpuid
says). --write-docs replaces the generated section of docs/perf.md (between its compare.py
markers) with the tables; --plot draws kiln/ORT per model (needs python3-matplotlib).

--peer-only times ONNX Runtime alone (for when kiln is not built).
--ort python times ORT through its Python package (bench/ort_bench.py, same JSON) where
Node is not installed. --cpus pins every timed process to those CPUs (taskset), so runs
on a big machine use the same cores each time. --baseline-kiln adds a second kiln (e.g.
a build of an older commit) to the alternation: each row then also has its latency and
kiln/baseline, a same-run before/after. --baseline-env VAR=VALUE makes the baseline this
same kiln with those environment switches (compiled and run with them), e.g. a new kernel
turned off.
--hide-avx512 times both on their AVX2 kernels on an AVX-512 machine: every child process
(compiles, runs, the peak probe) gets bench/cpuid_mask's LD_PRELOAD library, which hides
AVX-512 and AMX from CPUID (ORT has no ISA switch of its own), and ONEDNN_MAX_CPU_ISA=AVX2
(oneDNN inside kiln's runtime). The peak is then the AVX2 peak; the JSON and the tables say
AVX-512 was hidden.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_BENCH = os.path.join(REPO, "bench", "ort_bench.js")
ORT_BENCH_PY = os.path.join(REPO, "bench", "ort_bench.py")

# What is timed: case -> (model directory, sample tag in its samples.json, table label).
BENCH_CASES = {
    "resnet50": ("resnet50", "", "ResNet-50"),
    "resnet18": ("resnet18", "", "ResNet-18"),
    "mobilenet_v2": ("mobilenet_v2", "", "MobileNetV2"),
    "encoder": ("encoder", "_b1s128", "encoder (2 layers, d 128), seq 128"),
    "bert_base": ("bert_base", "_b1s128", "BERT-base, batch 1, seq 128"),
    "bert_base_b8": ("bert_base", "_b8s128", "BERT-base, batch 8, seq 128"),
    "vit_b16": ("vit_b16", "", "ViT-B/16"),
    "gpt2": ("gpt2", "_s128", "GPT-2-small, seq 128"),
}
PEAK_SRC = os.path.join(REPO, "bench", "peak", "fma_peak.cpp")


class BenchError(Exception):
    pass


def run_json(cmd, env=None):
    """Runs cmd and returns the JSON object on the last line of its stdout, with the child's
    peak RSS added as "peak_rss_mb" (MiB; see peak_rss_of)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{stderr.strip()}")
    lines = [l for l in stdout.splitlines() if l.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"`{' '.join(cmd)}` printed no JSON line:\n{stdout.strip()}")
    result["peak_rss_mb"] = peak_rss_of(usage)
    return result


def peak_rss_of(usage):
    """The child's peak resident set in MiB from its wait4 rusage, or None when it cannot be
    told apart from this process's own.

    Linux keeps a process's RSS high-water mark across execve, and Python starts children
    with vfork, so a child's ru_maxrss is at least this process's RSS at the time. That floor
    (compare.py's own few tens of MiB) is far below any model's peak; a figure at or below
    it is not the child's and is dropped."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if usage.ru_maxrss <= own:
        print(f"  warning: a child's peak RSS ({usage.ru_maxrss} KiB) is not above compare.py's "
              f"own ({own} KiB); not reported", file=sys.stderr)
        return None
    return usage.ru_maxrss / 1024.0


def sample_of(model_dir, tag):
    """samples.json of a model and its sample whose files carry `tag` (input<tag>_x.npy)."""
    manifest = os.path.join(model_dir, "samples.json")
    if not os.path.exists(manifest):
        raise BenchError(f"missing {manifest}; run /usr/bin/python3 scripts/export_models.py")
    with open(manifest) as f:
        m = json.load(f)
    for sample in m["samples"]:
        if all(file == f"input{tag}_{name}.npy" for name, file in sample["inputs"].items()):
            return m, sample
    raise BenchError(f"{manifest} has no sample tagged '{tag}'; export the model again "
                     "(scripts/export_models.py --force --only ...)")


def input_flags(model_dir, inputs):
    flags = []
    for name, file in inputs.items():
        path = os.path.join(model_dir, file)
        if not os.path.exists(path):
            raise BenchError(f"missing {path}; run scripts/export_models.py")
        flags += ["--input", f"{name}={path}"]
    return flags


def cpu_has_flag(flag):
    """Whether /proc/cpuinfo lists `flag` for this CPU (False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return False


def measure_peak(work_dir, threads):
    """Per-core fp32 FMA peak in GFLOP/s and its ISA (bench/peak/fma_peak.cpp)."""
    os.makedirs(work_dir, exist_ok=True)
    exe = os.path.join(work_dir, "fma_peak")
    proc = subprocess.run(["g++", "-O2", "-pthread", PEAK_SRC, "-o", exe],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"building {PEAK_SRC} failed:\n{proc.stderr}")
    j = run_json([exe, "--threads", str(threads), "--seconds", "2", "--json"])
    # On a shared machine one timing may lose its core for a while: the best per-thread
    # figure is the core's peak.
    return max(j["per_core_gflops"], j["all_threads_gflops"] / j["threads"]), j["isa"]


def kiln_compile(kiln, onnx_path, so_path, extra, cache_dir, env_extra=None):
    env = dict(os.environ, KILN_CACHE_DIR=cache_dir, **(env_extra or {}))
    cmd = [kiln, "compile", onnx_path, "-o", so_path] + extra
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return secs


def pinned(args, cmd):
    return (["taskset", "-c", args.cpus] if args.cpus else []) + cmd


def time_kiln(args, so_path, flags, threads, kiln=None, env_extra=None):
    return run_json(pinned(args, [kiln or args.kiln, "run", so_path]) + flags +
                    ["--bench", str(args.runs), "--warmup", str(args.warmup),
                     "--threads", str(threads), "--json"],
                    env=dict(os.environ, **env_extra) if env_extra else None)


def time_ort(args, onnx_path, flags, threads):
    runner = [args.node, ORT_BENCH] if args.ort == "node" else [sys.executable, ORT_BENCH_PY]
    return run_json(pinned(args, runner + ["--model", onnx_path]) + flags +
                    ["--runs", str(args.runs), "--warmup", str(args.warmup),
                     "--threads", str(threads), "--json"])


def has_baseline(args):
    return bool(args.baseline_kiln or args.baseline_env)


def base_path(args, dir_name):
    return os.path.join(args.work_dir, f"{dir_name}.baseline.so")


def bench_model(args, name):
    dir_name, tag, label = BENCH_CASES[name]
    model_dir = os.path.join(args.models_dir, dir_name)
    onnx_path = os.path.join(model_dir, "model.onnx")
    if not os.path.exists(onnx_path):
        raise BenchError(f"missing {onnx_path}; run /usr/bin/python3 scripts/export_models.py")
    manifest, sample = sample_of(model_dir, tag)
    flags = input_flags(model_dir, sample["inputs"])
    result = {"model": name, "label": label, "flops": sample.get("flops"), "compile": None,
              "timings": []}

    so_path = None
    if not args.peer_only:
        os.makedirs(args.work_dir, exist_ok=True)
        so_path = os.path.join(args.work_dir, f"{dir_name}.so")
        if dir_name not in args.compiled:  # bert_base serves two cases
            cache = tempfile.mkdtemp(prefix="kiln-cache-")
            try:
                extra = manifest.get("compile_args", []) + args.compile_arg
                cold = kiln_compile(args.kiln, onnx_path, so_path, extra, cache)
                warm = kiln_compile(args.kiln, onnx_path, so_path, extra, cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            args.compiled[dir_name] = {"cold_s": cold, "warm_s": warm}
            result["compile"] = args.compiled[dir_name]
            print(f"  {dir_name}: compiled cold {cold:.2f} s, warm {warm:.2f} s",
                  file=sys.stderr)
            if has_baseline(args):
                cache = tempfile.mkdtemp(prefix="kiln-cache-")
                try:
                    kiln_compile(args.baseline_kiln or args.kiln, onnx_path,
                                 base_path(args, dir_name), manifest.get("compile_args", []),
                                 cache, args.baseline_env)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)

    for threads in args.threads:
        kiln_rounds, ort_rounds, base_rounds = [], [], []
        for _ in range(args.rounds):
            if so_path:
                kiln_rounds.append(time_kiln(args, so_path, flags, threads))
            if so_path and has_baseline(args):
                base_rounds.append(time_kiln(args, base_path(args, dir_name), flags, threads,
                                             args.baseline_kiln, args.baseline_env))
            ort_rounds.append(time_ort(args, onnx_path, flags, threads))
        med = lambda rounds, key: statistics.median(r[key] for r in rounds) if rounds else None
        row = {"threads": threads}
        if base_rounds:
            row["base_median_ms"] = med(base_rounds, "median_ms")
            row["kiln_over_base"] = med(kiln_rounds, "median_ms") / row["base_median_ms"]
        for who, rounds in (("kiln", kiln_rounds), ("ort", ort_rounds)):
            for key in ("median_ms", "p10_ms", "p90_ms"):
                row[f"{who}_{key}"] = med(rounds, key)
            ms = row[f"{who}_median_ms"]
            row[f"{who}_peak_pct"] = (100.0 * result["flops"] / (ms * 1e-3) /
                                      (threads * args.peak * 1e9)
                                      if ms and result["flops"] else None)
        row["kiln_over_ort"] = row["kiln_median_ms"] / row["ort_median_ms"] if so_path else None
        # Each round's kiln/ORT (kiln's round and the ORT round after it): their spread shows
        # how far the machine moved between rounds, which the ratio of medians hides.
        row["round_ratios"] = ([k["median_ms"] / o["median_ms"]
                                for k, o in zip(kiln_rounds, ort_rounds)] if so_path else [])
        # Peak RSS of each runtime's process (the largest over its rounds: a fresh process each).
        for who, rounds in (("kiln", kiln_rounds), ("ort", ort_rounds)):
            rss = [r["peak_rss_mb"] for r in rounds if r.get("peak_rss_mb")]
            row[f"{who}_rss_mb"] = max(rss) if rss else None
        print(f"  {name} x{threads}: kiln {report.fmt_ms(row['kiln_median_ms'])} ms, "
              f"ORT {report.fmt_ms(row['ort_median_ms'])} ms; peak RSS kiln "
              f"{report.fmt_mb(row['kiln_rss_mb'])} MiB, ORT {report.fmt_mb(row['ort_rss_mb'])} "
              "MiB", file=sys.stderr)
        result["timings"].append(row)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default="build/release/src/kiln", help="kiln executable")
    ap.add_argument("--node", default="node", help="node executable")
    ap.add_argument("--models-dir", default="build/models")
    ap.add_argument("--work-dir", default="build/bench", help="where compiled .so files go")
    ap.add_argument("--models", default=",".join(BENCH_CASES))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating kiln/ORT rounds")
    ap.add_argument("--compile-arg", action="append", default=[],
                    help="extra argument for `kiln compile` (repeatable)")
    ap.add_argument("--peer-only", action="store_true", help="time ONNX Runtime only")
    ap.add_argument("--ort", choices=("node", "python"), default="node",
                    help="time ORT through onnxruntime-node or the Python package")
    ap.add_argument("--cpus", help="pin timed processes to these CPUs (taskset -c LIST)")
    ap.add_argument("--baseline-kiln", help="a second kiln executable timed in the same "
                    "alternation (before/after)")
    ap.add_argument("--baseline-env", action="append", default=[], metavar="VAR=VALUE",
                    help="environment of the baseline's compile and runs (repeatable); "
                    "without --baseline-kiln the baseline is this kiln with these switches "
                    "(e.g. KILN_CONV_WINOGRAD=0): a same-run on/off A/B")
    ap.add_argument("--baseline-label", default="baseline", help="its name in the tables")
    ap.add_argument("--hide-avx512", action="store_true",
                    help="time kiln and ORT on their AVX2 kernels (bench/cpuid_mask)")
    ap.add_argument("--avx2-only-lib", help="the library --hide-avx512 preloads (default: "
                    "bench/cpuid_mask/libkiln_avx2_only.so in kiln's build tree)")
    ap.add_argument("--json-out", help="also write all results to this JSON file")
    ap.add_argument("--write-docs", help="replace the generated tables of this file "
                    "(docs/perf.md)")
    ap.add_argument("--plot", help="write a PNG of kiln/ORT per model here")
    ap.add_argument("--peak-gflops", type=float,
                    help="per-core fp32 FMA peak to use instead of measuring it")
    ap.add_argument("--from-json", help="render the tables, docs and plot from a --json-out "
                    "file of an earlier run instead of timing (with --peak-gflops: %% of peak "
                    "against that peak)")
    args = ap.parse_args()
    if args.from_json:
        return render_saved(args)

    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in BENCH_CASES]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(BENCH_CASES)}")
    args.threads = [int(t) for t in args.threads.split(",") if t]
    if args.runs < 1 or args.warmup < 0 or args.rounds < 1:
        ap.error("--runs and --rounds must be >= 1, --warmup >= 0")
    if not args.peer_only and not (os.path.isfile(args.kiln) and os.access(args.kiln, os.X_OK)):
        ap.error(f"kiln executable '{args.kiln}' not found; build it, pass --kiln, "
                 "or use --peer-only")
    try:
        args.baseline_env = dict(kv.split("=", 1) for kv in args.baseline_env)
    except ValueError:
        ap.error("--baseline-env takes VAR=VALUE")
    if args.baseline_kiln and not os.access(args.baseline_kiln, os.X_OK):
        ap.error(f"baseline kiln '{args.baseline_kiln}' is not an executable")
    if args.ort == "node" and not os.path.isdir(
            os.path.join(REPO, "bench", "node_modules", "onnxruntime-node")):
        ap.error("onnxruntime-node is not installed; run "
                 "`cd bench && npm install onnxruntime-node@1.30.0 --ignore-scripts`")

    if args.hide_avx512:
        lib = args.avx2_only_lib or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(args.kiln))), "bench", "cpuid_mask",
            "libkiln_avx2_only.so")
        if not os.path.isfile(lib):
            ap.error(f"--hide-avx512: '{lib}' not found; build kiln's tests (it is built with "
                     "them) or pass --avx2-only-lib")
        if not cpu_has_flag("cpuid_fault"):
            ap.error("--hide-avx512 needs CPUID faulting (the `cpuid_fault` flag in /proc/cpuinfo), "
                     "which this CPU or VM lacks (AMD CPUs and VMs on them); without it ORT would "
                     "still see AVX-512. Compare on an AVX2 machine instead, or cap kiln alone "
                     "(ONEDNN_MAX_CPU_ISA=AVX2, --compile-arg=--cpu=x86-64-v3; bench/README.md)")
        os.environ["LD_PRELOAD"] = os.path.abspath(lib)
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"

    args.compiled = {}
    if args.peak_gflops:
        args.peak, args.peak_isa = args.peak_gflops, "given with --peak-gflops"
    else:
        args.peak, args.peak_isa = measure_peak(args.work_dir, max(args.threads))
    if args.hide_avx512:
        args.peak_isa += ", AVX-512 hidden by bench/cpuid_mask"
    print(f"fp32 FMA peak: {args.peak:.1f} GFLOP/s per core ({args.peak_isa})", file=sys.stderr)
    results = []
    for name in args.models:
        try:
            results.append(bench_model(args, name))
        except BenchError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            results.append({"model": name, "error": str(e)})
        if args.json_out:  # after every model, so a run cut short keeps what it measured
            write_json(args, results)

    return finish(args, results)


def render_saved(args):
    """--from-json: the saved results, % of peak recomputed when --peak-gflops is given."""
    with open(args.from_json) as f:
        saved = json.load(f)
    for key in ("runs", "warmup", "rounds"):
        setattr(args, key, saved[key])
    args.peak, args.peak_isa = saved["peak_gflops_per_core"], saved["peak_isa"]
    args.baseline_label = saved.get("baseline_label")
    args.hide_avx512 = saved.get("avx512_hidden", False)
    if args.peak_gflops:
        args.peak, args.peak_isa = args.peak_gflops, "given with --peak-gflops"
    results = saved["results"]
    args.threads = sorted({t["threads"] for r in results for t in r.get("timings", [])})
    for r in results:
        for t in r.get("timings", []):
            for who in ("kiln", "ort"):
                ms = t[f"{who}_median_ms"]
                t[f"{who}_peak_pct"] = (100.0 * r["flops"] / (ms * 1e-3) /
                                        (t["threads"] * args.peak * 1e9)
                                        if ms and r.get("flops") else None)
    args.json_out = None
    return finish(args, results)


def write_json(args, results):
    tmp = args.json_out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
                   "cpus": getattr(args, "cpus", None), "ort": getattr(args, "ort", "node"),
                   "baseline_label": getattr(args, "baseline_label", None),
                   "peak_gflops_per_core": args.peak, "peak_isa": args.peak_isa,
                   "avx512_hidden": bool(getattr(args, "hide_avx512", False)),
                   "machine": report.machine(), "results": results}, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.json_out)


def finish(args, results):
    text = report.tables(results, args)
    print("\n" + text)
    if args.json_out:
        write_json(args, results)
    try:
        if args.write_docs:
            report.write_docs(args.write_docs, text, args)
        if args.plot:
            report.plot(args.plot, results)
    except report.ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
