#!/usr/bin/python3
"""ONNX backend-test-suite conformance runner for kiln.

For every test directory (model.onnx + test_data_set_*/{input,output}_N.pb)
under the ONNX test data folders, this script

  1. converts the TensorProto inputs/outputs to .npy files in a temp dir,
  2. runs `kiln compile model.onnx -o model.so` (optionally --all-dims-dynamic),
  3. runs `kiln run model.so --input NAME=file.npy ... --output-dir D` for
     every data set, and
  4. compares each output with ONNX's rule
         |actual - expected| <= atol + rtol * |expected|
     (rtol 1e-3, atol 1e-7; exact for integers/bools; NaN matches NaN).

bfloat16 crosses `kiln run` as a uint16 .npy of the raw bf16 bits (numpy has
no bfloat16); bf16 outputs are compared as float32 values by the rule above,
also accepting a result one bf16 ulp away: the suite's expected bf16 data was
made by truncating float32 (onnx/onnx#3876), kiln rounds to nearest even.
float8/float4 travel as uint8 .npy files of their codes and int4/uint4/int2/uint2
as int8/uint8 values, one element per byte (kiln's layout; the TensorProto data,
packed two or four per byte, is unpacked here by small_array()); float8/float4
outputs are compared by value, exactly (NaN matches NaN).

Every test is classified as one of
  pass, fail-compile, fail-run, mismatch, crash, timeout, unsupported-io
and a deterministic Markdown report can be written (--report).

--expected DIR gates on per-test lists, DIR/expected_pass_VARIANT.txt (for
--device cuda: expected_pass_cuda_VARIANT.txt), one 'folder/test' per line:
the script exits 1 naming every listed test that did not pass, and lists new
passes (not a failure) with a hint to add them (--update-expected does).

--device cuda compiles with `--device cuda --cuda-arch ARCH` and runs with
`--device cuda`. To compile on a machine without a GPU and run on one:
  run_conformance.py --device cuda --compile-only --prebuilt-dir D ...
writes D/DEVICE/VARIANT/folder/test/{model.so,compile.json}, a copy of each
test's data under D/data, and D/bin/kiln with the shared libraries it and
libkiln_rt need under D/lib; then, on the GPU machine (python3, numpy, onnx):
  run_conformance.py --device cuda --prebuilt-dir D ...
runs the prebuilt models (D/data and D/bin/kiln by default) and reports
compile failures as recorded.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import onnx

# Siblings in this folder (on sys.path as the script's own folder).
from conformance_report import DEFAULT_DATA, SUITES, check_expected, trunc, write_report
from conformance_runner import Runner, bundle_kiln


def model_opset(path):
    """The default-domain opset a model imports."""
    m = onnx.load(path, load_external_data=False)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def discover(args):
    tests = []
    for folder in args.folders:
        root = os.path.join(args.data, folder)
        if not os.path.isdir(root):
            print("warning: no folder %s" % root, file=sys.stderr)
            continue
        for d in sorted(os.listdir(root)):
            rel = folder + "/" + d
            if not os.path.exists(os.path.join(root, d, "model.onnx")):
                continue
            if args.filter and not re.search(args.filter, rel):
                continue
            if args.min_opset and model_opset(
                    os.path.join(root, d, "model.onnx")) < args.min_opset:
                continue
            tests.append(rel)
    if args.limit:
        tests = tests[:args.limit]
    return tests


def from_json(args):
    merged = {}
    for path in args.from_json:
        with open(path) as f:
            for r in json.load(f)["results"]:
                merged[(r["test"], r["variant"])] = r
    results = sorted(merged.values(), key=lambda r: (r["test"], r["variant"]))
    variants = [v for v in ["static", "dynamic"]
                if any(r["variant"] == v for r in results)]
    return finish(args, results, variants, None)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kiln", help="the kiln binary (default: "
                    "build/release/src/kiln, or PREBUILT/bin/kiln when "
                    "running from --prebuilt-dir)")
    ap.add_argument("--data", help="test data (default: %s, or "
                    "PREBUILT/data when running from --prebuilt-dir)"
                    % DEFAULT_DATA)
    ap.add_argument("--suite", choices=sorted(SUITES), default="debian",
                    help="which test suite --data holds: its default folders, "
                    "and the tag of its expected-pass lists")
    ap.add_argument("--folders",
                    help="comma-separated folders under --data (default: "
                    "the suite's)")
    ap.add_argument("--variant", choices=["static", "dynamic", "both"],
                    default="static")
    ap.add_argument("--filter", help="regex on 'folder/test_name'")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--min-opset", type=int, default=0,
                    help="only tests whose model imports this default-domain "
                    "opset or a newer one")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--kiln-jobs", type=int, default=1,
                    help="`kiln compile -j` per test (0: kiln's default)")
    ap.add_argument("--compile-timeout", type=int, default=120)
    ap.add_argument("--run-timeout", type=int, default=60)
    ap.add_argument("--cache-dir", default=os.environ.get(
        "KILN_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                       "kiln-conformance-cache")))
    ap.add_argument("--tmp", default=None, help="parent for temp dirs")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="run --kiln in place instead of a private copy")
    ap.add_argument("--keep", action="store_true", help="keep temp dirs")
    ap.add_argument("--report", help="write a Markdown report here")
    ap.add_argument("--json", help="write all results as JSON here")
    ap.add_argument("--expected", metavar="DIR",
                    help="fail unless every test listed in "
                    "DIR/expected_pass_[DEVICE_]VARIANT.txt passes")
    ap.add_argument("--update-expected", action="store_true",
                    help="rewrite the --expected lists from this run")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="compile and run for this device")
    ap.add_argument("--cuda-arch", default="sm_90",
                    help="`kiln compile --cuda-arch` for --device cuda")
    ap.add_argument("--prebuilt-dir", metavar="D",
                    help="with --compile-only: compile into D; without: "
                    "run the models compiled there (see above)")
    ap.add_argument("--compile-only", action="store_true",
                    help="compile into --prebuilt-dir, run nothing")
    ap.add_argument("--from-json", nargs="+", metavar="RESULTS.json",
                    help="run nothing: build --report/--expected from result "
                    "files written earlier by --json (later files win)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print every result, not only failures")
    args = ap.parse_args()
    args.folders = ([f for f in args.folders.split(",") if f] if args.folders
                    else SUITES[args.suite]["folders"])
    if args.compile_only and not args.prebuilt_dir:
        ap.error("--compile-only needs --prebuilt-dir")
    args.lib_dir = None
    running_prebuilt = args.prebuilt_dir and not args.compile_only
    if running_prebuilt:
        args.prebuilt_dir = os.path.abspath(args.prebuilt_dir)
        bundled = os.path.join(args.prebuilt_dir, "bin", "kiln")
        if not args.kiln and os.path.exists(bundled):
            args.kiln = bundled
            args.lib_dir = os.path.join(args.prebuilt_dir, "lib")
            args.no_snapshot = True  # nothing rebuilds it
        if not args.data and os.path.isdir(
                os.path.join(args.prebuilt_dir, "data")):
            args.data = os.path.join(args.prebuilt_dir, "data")
    args.kiln = os.path.abspath(args.kiln or os.path.join(
        here, "..", "..", "build", "release", "src", "kiln"))
    args.data = args.data or SUITES[args.suite]["data"]
    if args.from_json:
        return from_json(args)
    if not args.data:
        sys.exit("--suite %s needs --data (where its tgz was unpacked)"
                 % args.suite)
    if not os.access(args.kiln, os.X_OK):
        sys.exit("kiln binary not found: %s" % args.kiln)
    os.makedirs(args.cache_dir, exist_ok=True)
    snapdir = None
    if not args.no_snapshot:
        # kiln is rebuilt while we run; use one consistent copy throughout.
        # (Its include/runtime paths are absolute, so a copy works.)
        snapdir = tempfile.mkdtemp(prefix="kiln-conf-bin-", dir=args.tmp)
        snap = os.path.join(snapdir, "kiln")
        for attempt in range(30):
            try:
                shutil.copy2(args.kiln, snap)
                subprocess.run([snap, "--help"], check=True,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                break
            except (OSError, subprocess.CalledProcessError):
                if attempt == 29:
                    raise
                time.sleep(2)
        args.kiln = snap

    if args.compile_only:
        args.prebuilt_dir = os.path.abspath(args.prebuilt_dir)
        os.makedirs(args.prebuilt_dir, exist_ok=True)
    variants = ["static", "dynamic"] if args.variant == "both" \
        else [args.variant]
    tests = discover(args)
    if not tests:
        sys.exit("no tests found")
    runner = Runner(args)
    jobs = [(t, v) for v in variants for t in tests]
    results = []
    lock = threading.Lock()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(runner.run_test, t, v) for t, v in jobs]
        for n, fut in enumerate(concurrent.futures.as_completed(futs), 1):
            r = fut.result()
            with lock:
                results.append(r)
                if args.verbose or r["status"] != "pass":
                    print("[%d/%d] %-8s %-14s %s  %s" % (
                        n, len(jobs), r["variant"], r["status"], r["test"],
                        trunc(r.get("reason", ""), 200)), flush=True)
                elif n % 50 == 0:
                    print("[%d/%d] ..." % (n, len(jobs)), flush=True)
    wall = time.monotonic() - t0
    if args.compile_only:
        bundle_kiln(args, args.kiln)
    if snapdir:
        shutil.rmtree(snapdir, ignore_errors=True)
    results.sort(key=lambda r: (r["test"], r["variant"]))
    return finish(args, results, variants, wall)


def finish(args, results, variants, wall):
    counts = {v: sum(1 for r in results
                     if r["variant"] == v and r["status"] == "pass")
              for v in variants}
    print()
    done = "compiled" if args.compile_only else "pass"
    for v in variants:
        n = sum(1 for r in results if r["variant"] == v)
        k = sum(1 for r in results
                if r["variant"] == v and r["status"] == done)
        print("%s: %d / %d %s" % (v, k, n, done))
    if wall is not None:
        print("wall time: %.0f s (%d jobs)" % (wall, args.jobs))

    if args.json and wall is not None:
        with open(args.json, "w") as f:
            json.dump({"wall_s": round(wall, 1), "results": results}, f,
                      indent=1, sort_keys=True)
    if args.report:
        write_report(args.report, results, variants, args.folders, args.suite)
        print("report: %s" % args.report)

    partial = bool(args.filter or args.limit or args.min_opset or
                   args.folders != SUITES[args.suite]["folders"])
    if args.compile_only:
        print("compile only: models in %s" % args.prebuilt_dir)
        return 0
    if not args.expected:
        return 0
    rc = 0
    for v in variants:
        rc |= check_expected(args, v, results, partial)
    return rc


if __name__ == "__main__":
    sys.exit(main())
