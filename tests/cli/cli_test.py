#!/usr/bin/python3
"""The kiln command as a user meets it: one case per behaviour (issue 10, section 3).

    cli_test.py KILN WORKDIR CASE

`models` (the ctest fixture) writes small ONNX models with onnx.helper and compiles them
into WORKDIR; every other case uses them. Each case fails with an assertion naming what the
command printed.
"""
import json
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

KILN, WORK, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(WORK, "cache")
ENV = dict(os.environ, KILN_CACHE_DIR=CACHE)
C = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)  # the constant of add.onnx


def kiln(*args, rc=0, env=None):
    p = subprocess.run([KILN, *args], capture_output=True, text=True, env=env or ENV)
    where = f"kiln {' '.join(args)}\n--- stdout:\n{p.stdout}\n--- stderr:\n{p.stderr}"
    assert rc is None or p.returncode == rc, f"exit {p.returncode}, expected {rc}: {where}"
    return p


def env_without(*names):
    return {k: v for k, v in ENV.items() if k not in names}


def expect(p, stream, *patterns):
    text = p.stdout if stream == "out" else p.stderr
    for pat in patterns:
        assert re.search(pat, text, re.M), f"/{pat}/ not in {stream}:\n{text}"


def path(name):
    return os.path.join(WORK, name)


def case_models():
    os.makedirs(WORK, exist_ok=True)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    c = helper.make_tensor("c", TensorProto.FLOAT, [4], C.tolist())
    g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "add", [x], [y], [c])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path("add.onnx"))
    bad = helper.make_graph([helper.make_node("NotAnOnnxOp", ["x"], ["y"])], "bad", [x], [y])
    onnx.save(helper.make_model(bad, opset_imports=[helper.make_opsetid("", 13)]),
              path("unsupported.onnx"))
    np.save(path("x.npy"), np.arange(8, dtype=np.float32).reshape(2, 4))
    kiln("compile", path("add.onnx"), "-o", path("add.so"), "--dynamic", "batch=1:16")
    kiln("compile", path("add.onnx"), "-o", path("add_ext.so"), "--dynamic", "batch=1:16",
         "--weights", "external")


def case_version():
    p = kiln("--version")
    expect(p, "out", r"^kiln \d+\.\d+\.\d+ \(C ABI \d+, shim level \d+\)")


def case_run_onnx_says_compile_first():
    p = kiln("run", path("add.onnx"), rc=1)
    expect(p, "err", r"is an ONNX model; compile it first: kiln compile")
    p = kiln("bench", path("add.onnx"), rc=1)
    expect(p, "err", r"compile it first")


def case_directory_reported():
    expect(kiln("run", WORK, rc=1), "err", r"is a directory")
    expect(kiln("compile", WORK, "-o", path("d.so"), rc=1), "err", r"is a directory")
    expect(kiln("compile", path("add.onnx"), "-o", WORK, rc=1), "err", r"is a directory")
    expect(kiln("inspect", WORK, rc=1), "err", r"is a directory")
    expect(kiln("run", path("add.so"), "--input", f"x={WORK}", rc=1), "err",
           r"is a directory, not a \.npy file")
    expect(kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--weights", WORK, rc=1),
           "err", r"--weights .* is a directory")


def case_inspect_compiled():
    p = kiln("inspect", path("add.so"))
    expect(p, "out", r"device: +cpu", r"built for: +CPU native", r"this CPU: +can run it",
           r"kernels: +\d+ generated", r"ABI: +\d+ \(shim level \d+\)",
           r"input +x: float32 \[batch=1\.\.16, 4\]", r"output y: float32 \[batch=1\.\.16, 4\]")
    j = json.loads(kiln("inspect", path("add.so"), "--json").stdout)
    assert j["device"] == "cpu" and j["cpu_isa"].startswith("native"), j
    assert j["inputs"][0]["dims"] == [{"name": "batch", "min": 1, "max": 16}, 4], j
    assert j["kernels"] >= 1 and j["runs_on_this_cpu"] is True, j
    assert isinstance(j["shim_level"], int) and isinstance(j["abi_version"], int), j
    assert j["weights"] == "embedded", j


def case_inspect_unsupported_exit_code():
    p = kiln("inspect", path("unsupported.onnx"), rc=3)
    expect(p, "out", r"NotAnOnnxOp .*NOT SUPPORTED", r"1 op type\(s\) not supported")
    j = json.loads(kiln("inspect", path("unsupported.onnx"), "--json", rc=3).stdout)
    assert j["unsupported_op_types"] == 1, j
    assert [o["supported"] for o in j["ops"]] == [False], j
    j = json.loads(kiln("inspect", path("add.onnx"), "--json").stdout)
    assert j["unsupported_op_types"] == 0, j


def case_unknown_input_lists_inputs():
    p = kiln("run", path("add.so"), "--input", f"z={path('x.npy')}", rc=1)
    expect(p, "err", r"no input named 'z'; its inputs are 'x \[batch=1\.\.16, 4\]'")
    p = kiln("run", path("add.so"), rc=1)
    expect(p, "err", r"model input 'x' .* has no --input x=file\.npy")


def case_errors_name_flags():
    os.replace(path("add_ext.so.weights"), path("moved.weights"))
    try:
        p = kiln("run", path("add_ext.so"), "--input", f"x={path('x.npy')}", rc=1)
        expect(p, "err", r"--weights FILE")
        assert "kiln_container_options" not in p.stderr and "weights_path" not in p.stderr, p.stderr
        kiln("run", path("add_ext.so"), "--input", f"x={path('x.npy')}", "--weights",
             path("moved.weights"))
    finally:
        os.replace(path("moved.weights"), path("add_ext.so.weights"))
    expect(kiln("run", path("add.so"), "--weights", path("none.weights"), rc=1), "err",
           r"--weights .*: no such file")
    expect(kiln("run", path("add.so"), "--threads", "-1", rc=2), "err", r"--threads")
    # Input shapes outside the compiled range: the model's message, no internal jargon.
    np.save(path("x20.npy"), np.zeros((20, 4), dtype=np.float32))
    p = kiln("run", path("add.so"), "--input", f"x={path('x20.npy')}", rc=1)
    expect(p, "err", r"the inputs do not fit the model: input 'x' dim 0 \(batch\): expected 1\.\.16, got 20")
    assert "computing output dims" not in p.stderr, p.stderr


def case_dynamic_validated():
    for value, pattern in [("batch=abc:4", "is not a whole number"),
                           ("batch=1", "expected NAME=MIN:MAX"),
                           ("batch=5:1", "MIN 5 is larger than MAX 1"),
                           ("batch=-1:3", "is not a whole number|is negative"),
                           ("batch=1:99999999999999999999", "too large"),
                           ("batch=1:4294967296", "at most")]:
        p = kiln("compile", path("add.onnx"), "-o", path("bad.so"), "--dynamic", value, rc=1)
        expect(p, "err", "--dynamic", pattern)
    assert not os.path.exists(path("bad.so"))


def case_negative_counts_rejected():
    for args in [("compile", path("add.onnx"), "-o", path("n.so"), "--jobs", "-1"),
                 ("run", path("add.so"), "--bench", "-1"),
                 ("run", path("add.so"), "--warmup", "-2"),
                 ("bench", path("add.so"), "--runs", "0"),
                 ("bench", path("add.so"), "--threads", "-4")]:
        p = kiln(*args, rc=2)
        expect(p, "err", re.escape(args[-2]) + r": .* (too small|not a whole number)")
    p = kiln("bench", path("add.so"), "--shape", "x=2x-4", rc=1)
    expect(p, "err", r"--shape .*is not a whole number|is negative")


def case_repeated_flags():
    p = kiln("run", path("add.so"), "--threads", "1", "--threads", "2", rc=2)
    expect(p, "err", r"--threads")
    p = kiln("compile", path("add.onnx"), "-o", path("r.so"), "--dynamic", "batch=1:2",
             "--dynamic", "batch=1:3", rc=1)
    expect(p, "err", r"--dynamic given twice for 'batch'")
    p = kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--input",
             f"x={path('x.npy')}", rc=1)
    expect(p, "err", r"--input given twice for 'x'")
    p = kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--json", "--json")
    expect(p, "err", r"warning: --json is given more than once")


def case_all_dims_dynamic_with_dynamic():
    kiln("compile", path("add.onnx"), "-o", path("all.so"), "--all-dims-dynamic", "--dynamic",
         "batch=2:8", "--dynamic", "x_d1=4:4")
    j = json.loads(kiln("inspect", path("all.so"), "--json").stdout)
    assert j["inputs"][0]["dims"] == [{"name": "batch", "min": 2, "max": 8},
                                      {"name": "x_d1", "min": 4, "max": 4}], j


def case_unknown_dim_lists_dims():
    p = kiln("compile", path("add.onnx"), "-o", path("u.so"), "--dynamic", "seq=1:4", rc=1)
    expect(p, "err", r"no symbolic input dim named 'seq'; its symbolic dims are: batch")


def case_run_prints_outputs():
    p = kiln("run", path("add.so"), "--input", f"x={path('x.npy')}")
    m = re.search(r"^y: float32 \[2, 4\] = \[([^\]]*)\]", p.stdout, re.M)
    assert m, p.stdout
    got = np.array([float(v) for v in m.group(1).split(",")[:8]])
    want = (np.arange(8, dtype=np.float64).reshape(2, 4) + C).ravel()
    assert np.allclose(got, want, rtol=1e-6), (got, want)
    expect(p, "out", r"latency: .* ms .* on \d+ thread")
    out = path("outdir")
    p = kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--output-dir", out)
    assert "y: float32" not in p.stdout, p.stdout
    assert np.allclose(np.load(os.path.join(out, "y.npy")), want.reshape(2, 4))


def case_threads_default_and_warning():
    cpus = len(os.sched_getaffinity(0))
    j = json.loads(kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--json").stdout)
    assert j["threads"] == cpus, (j, cpus)
    p = kiln("run", path("add.so"), "--input", f"x={path('x.npy')}", "--threads", str(cpus + 7))
    expect(p, "err", rf"warning: --threads {cpus + 7} is more than the {cpus} CPU")


def case_bench():
    j = json.loads(kiln("bench", path("add.so"), "--runs", "7", "--warmup", "2", "--shape",
                        "x=3x4", "--json").stdout)
    for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "runs_per_s"):
        assert isinstance(j[k], (int, float)) and j[k] > 0, (k, j)
    assert j["min_ms"] <= j["p50_ms"] <= j["p90_ms"] <= j["p99_ms"] <= j["max_ms"], j
    assert j["inputs"] == {"x": [3, 4]} and j["runs"] == 7 and j["synthetic_inputs"], j
    # libgomp's barrier spin, set by time from the measured PAUSE unless the user set one.
    p = kiln("bench", path("add.so"), "--runs", "2",
             env=env_without("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"))
    m = re.search(r"openmp: +GOMP_SPINCOUNT=(\d+) \(a ~50 us spin at ([\d.]+) ns per PAUSE\)",
                  p.stdout)
    assert m, p.stdout
    count, pause_ns = int(m.group(1)), float(m.group(2))
    assert pause_ns > 0 and 100 <= count <= 300000, m.group(0)
    assert count in (100, 300000) or 25e3 <= count * pause_ns <= 100e3, m.group(0)
    p = kiln("bench", path("add.so"), "--runs", "2", "--json",
             env={**env_without("OMP_WAIT_POLICY"), "GOMP_SPINCOUNT": "777"})
    assert json.loads(p.stdout)["openmp_spin"] == "GOMP_SPINCOUNT=777", p.stdout
    j = json.loads(kiln("bench", path("add.so"), "--runs", "2", "--json").stdout)
    assert j["inputs"] == {"x": [1, 4]}, j  # batch at its smallest
    p = kiln("bench", path("add.so"), "--runs", "3", "--input", f"x={path('x.npy')}")
    expect(p, "out", r"latency ms: p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +mean [\d.]+ +min [\d.]+ "
           r"+max [\d.]+", r"throughput: [\d.]+ runs/s", r"x=2x4 \(from --input\)")
    expect(kiln("bench", path("add.so"), "--shape", "z=1x4", rc=1), "err",
           r"no input named 'z'")
    expect(kiln("bench", path("add.so"), "--shape", "x=40x4", rc=1), "err",
           r"do not fit the model")


def case_profile():
    # x @ W (a oneDNN shim call), softmax and a mean over rows (generated kernels).
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 16],
                           np.linspace(-1, 1, 128, dtype=np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Softmax", ["h"], ["s"], axis=1, name="sm"),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1, name="mean"),
             helper.make_node("Mul", ["s", "m"], ["y"], name="scale")]
    g = helper.make_graph(nodes, "prof", [x], [y], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
              path("prof.onnx"))
    kiln("compile", path("prof.onnx"), "-o", path("prof.so"), "--dynamic", "batch=1:16")
    info = json.loads(kiln("inspect", path("prof.so"), "--json").stdout)
    assert info["kernels"] >= 2 and info["extern_calls"] >= 1, info
    trace_path = path("prof_trace.json")
    if os.path.exists(trace_path):
        os.remove(trace_path)
    p = kiln("bench", path("prof.so"), "--runs", "5", "--warmup", "1", "--shape", "x=4x8",
             "--profile", "--profile-trace", trace_path)
    expect(p, "out", r"^profile: 5 runs, [\d.]+ ms in all; (\d+) call sites",
           r"^ +1  kiln_\w+ +(kernel|extern) +5 +[\d.]+ +[\d.]+ +[\d.]+%",
           r"^ +\d+  kiln_shim_matmul_v\d +extern +5 .*\bmm\b",
           r"^generated kernels: [\d.]+ ms \([\d.]+%\); library calls: [\d.]+ ms")
    sites = int(re.search(r"ms in all; (\d+) call sites", p.stdout).group(1))
    assert sites == info["kernels"] + info["extern_calls"], (sites, info)
    trace = json.load(open(trace_path))  # must parse
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    kernels = {e["name"] for e in events if e["cat"] == "kernel"}
    externs = {e["args"]["site"] for e in events if e["cat"] == "extern"}
    assert len(kernels) == info["kernels"], (kernels, info)  # every kernel named
    assert all(re.fullmatch(r"kiln_kernel_\d+", k) for k in kernels), kernels
    assert len(externs) == info["extern_calls"], (externs, info)
    assert sum(e["cat"] == "run" for e in events) == 5
    assert all(e["dur"] >= 0 for e in events)
    origins = {e["args"]["origin"] for e in events if e["cat"] != "run"}
    assert any("sm" in o.split(",") for o in origins), origins
    # A kernel lies inside its run.
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in events if e["cat"] == "run"]
    for e in events:
        if e["cat"] != "run":
            assert any(a - 1 <= e["ts"] and e["ts"] + e["dur"] <= b + 1 for a, b in runs), e
    # kiln run profiles its one run (or the --bench runs); --json carries the table.
    np.save(path("x8.npy"), np.linspace(-2, 2, 24, dtype=np.float32).reshape(3, 8))
    j = json.loads(kiln("run", path("prof.so"), "--input", f"x={path('x8.npy')}", "--profile",
                        "--json").stdout)
    assert j["profile"]["runs"] == 1 and j["profile"]["sites"] == sites, j
    assert {r["calls"] for r in j["profile"]["top"]} == {1}, j
    p = kiln("run", path("prof.so"), "--input", f"x={path('x8.npy')}", "--bench", "3",
             "--profile-top", "2", "--profile")
    expect(p, "out", r"^profile: 3 runs", r"\(2 shown\)")
    assert len(re.findall(r"^ +\d+  kiln_", p.stdout, re.M)) == 2, p.stdout
    # Off: no table.
    assert "profile:" not in kiln("bench", path("prof.so"), "--runs", "2").stdout


def case_compile_timings_and_progress():
    p = kiln("compile", path("add.onnx"), "-o", path("timings.so"), "--timings")
    for stage in ("import", "optimize", "lower", "schedule", "generate", "build", "total"):
        expect(p, "err", rf"^{stage} +\d+\.\d+$")
    # On a terminal (script gives one) the stages are shown as they start.
    shutil.rmtree(path("cold"), ignore_errors=True)  # a cold cache: sources are compiled
    cmd = f"{KILN} compile {path('add.onnx')} -o {path('p.so')} --cache-dir {path('cold')}"
    s = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                       env=ENV)
    assert s.returncode == 0, s.stdout + s.stderr
    for text in ("kiln: import...", "kiln: build...", "kiln: build: compiled 1/"):
        assert text in s.stdout, s.stdout


def case_cache_info_clean():
    cache = path("cache2")
    kiln("compile", path("add.onnx"), "-o", path("c.so"), "--cache-dir", cache)
    j = json.loads(kiln("cache", "--cache-dir", cache, "info", "--json").stdout)
    assert j["objects"] >= 2 and j["bytes"] > 0 and j["dir"] == cache, j
    # What a SIGKILLed compile leaves: a build dir of a dead process and a temp object.
    os.makedirs(os.path.join(cache, "build-999999999-deadbeef"))
    open(os.path.join(cache, "objects", "x.o.tmp999999999_0"), "w").close()
    p = kiln("cache", "--cache-dir", cache, "info")
    expect(p, "out", r"objects: \d+ ", r"1 temp file\(s\), 1 build dir\(s\)")
    assert os.listdir(os.path.join(cache, "pch")) and os.listdir(os.path.join(cache, "probes"))
    kiln("cache", "--cache-dir", cache, "clean")
    j = json.loads(kiln("cache", "--cache-dir", cache, "info", "--json").stdout)
    assert j["objects"] == 0 and j["temp_files"] == 0 and j["stale_builds"] == 0, j
    assert j["bytes"] == 0, j  # precompiled headers and probe answers went too
    expect(kiln("cache", rc=2), "err", r"subcommand")


def case_link_cache():
    # A warm compile of the same model to the same name copies the linked library from the
    # cache (the link is most of a large model's warm compile); another name links again,
    # since the name is the library's SONAME. The weights' intermediate .bin is not kept.
    cache = path("cache3")
    shutil.rmtree(cache, ignore_errors=True)
    first = kiln("compile", path("add.onnx"), "-o", path("l1.so"), "--cache-dir", cache)
    assert "link cached" not in first.stderr, first.stderr
    data = open(path("l1.so"), "rb").read()
    stamp = os.stat(path("l1.so")).st_mtime_ns
    # The cache keeps the fresh library as a hard link to it (no second copy of the weights)
    # beside a sidecar with the hash of its bytes.
    objects = os.path.join(cache, "objects")
    entries = [os.path.join(objects, f) for f in os.listdir(objects) if f.endswith(".so")]
    assert len(entries) == 1, entries
    assert os.path.samefile(entries[0], path("l1.so")), entries
    assert re.fullmatch(r"[0-9a-f]{16}\n", open(entries[0] + ".xxh3").read())
    second = kiln("compile", path("add.onnx"), "-o", path("l1.so"), "--cache-dir", cache)
    # Already holding that library byte for byte, l1.so is only touched, not rewritten.
    expect(second, "err", r"link cached, output unchanged")
    assert open(path("l1.so"), "rb").read() == data
    assert os.stat(path("l1.so")).st_mtime_ns > stamp
    # l1.so changed in place (one byte, same size) changes the cache entry it shares an inode
    # with: its hash no longer matches, so the entry is dropped and the library linked again.
    with open(path("l1.so"), "r+b") as f:
        f.seek(len(data) // 2)
        f.write(bytes([data[len(data) // 2] ^ 0xFF]))
    third = kiln("compile", path("add.onnx"), "-o", path("l1.so"), "--cache-dir", cache)
    assert "link cached" not in third.stderr, third.stderr
    assert open(path("l1.so"), "rb").read() == data
    # Replaced by a fresh file, l1.so is written again from the cache.
    os.remove(path("l1.so"))
    with open(path("l1.so"), "wb") as f:
        f.write(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) +
                data[len(data) // 2 + 1:])
    fourth = kiln("compile", path("add.onnx"), "-o", path("l1.so"), "--cache-dir", cache)
    expect(fourth, "err", r"link cached")
    assert "output unchanged" not in fourth.stderr, fourth.stderr
    assert open(path("l1.so"), "rb").read() == data
    other = kiln("compile", path("add.onnx"), "-o", path("l2.so"), "--cache-dir", cache)
    assert "link cached" not in other.stderr, other.stderr
    for so in ("l1.so", "l2.so"):
        kiln("inspect", path(so))
    objects = os.listdir(os.path.join(cache, "objects"))
    assert not [f for f in objects if f.endswith(".bin")], objects
    assert len([f for f in objects if f.endswith(".so")]) == 2, objects


def case_precompiled_headers():
    # A cold cache compiles the model without precompiled headers and precompiles the two
    # kiln headers its sources include first (kernels: kiln/prelude.h, wrapper:
    # kiln/wrapper_includes.h); the next compile of another model compiles against them. The
    # objects must be byte for byte those of a compile without them, and the model must run.
    warm, cold = path("pch_warm"), path("pch_cold")
    for d in (warm, cold):
        shutil.rmtree(d, ignore_errors=True)
    kiln("compile", path("add.onnx"), "-o", path("pch_first.so"), "--cache-dir", warm)
    gch = sorted(os.path.relpath(os.path.join(r, f), os.path.join(warm, "pch")).split(os.sep, 1)[1]
                 for r, _, fs in os.walk(os.path.join(warm, "pch")) for f in fs)
    assert gch == ["kiln/prelude.h.gch", "kiln/wrapper_includes.h.gch"], gch
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    c = helper.make_tensor("c", TensorProto.FLOAT, [4], C.tolist())
    g = helper.make_graph([helper.make_node("Tanh", ["x"], ["t"]),
                           helper.make_node("Mul", ["t", "c"], ["y"])], "tanh_mul", [x], [y], [c])
    model = path("tanh_mul.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), model)
    second = kiln("compile", model, "-o", path("pch_warm.so"), "--cache-dir", warm,
                  "--keep-sources")
    expect(second, "err", r"[1-9]\d* compiled")
    kiln("compile", model, "-o", path("pch_cold.so"), "--cache-dir", cold)
    objs = lambda d: {f: open(os.path.join(d, "objects", f), "rb").read()
                      for f in os.listdir(os.path.join(d, "objects")) if f.endswith(".o")}
    w, c = objs(warm), objs(cold)
    shared = set(w) & set(c)
    assert len(shared) >= 3, (sorted(w), sorted(c))  # kernels, wrapper, entry
    for f in shared:
        assert w[f] == c[f], f
    src = path("pch_warm.so.src")
    for name in os.listdir(src):
        if name.endswith(".cpp"):
            first = open(os.path.join(src, name)).readline()
            assert first.startswith('#include "kiln/'), (name, first)
    # KILN_PRECOMPILED_HEADERS=0: nothing precompiled, the same objects.
    off = path("pch_off")
    shutil.rmtree(off, ignore_errors=True)
    kiln("compile", model, "-o", path("pch_off.so"), "--cache-dir", off,
         env=dict(ENV, KILN_PRECOMPILED_HEADERS="0"))
    assert not os.path.exists(os.path.join(off, "pch")), os.listdir(off)
    assert objs(off) == c
    want = np.tanh(np.arange(8, dtype=np.float64).reshape(2, 4)) * C
    for so in ("pch_warm.so", "pch_cold.so", "pch_off.so"):
        out = path("pch_out_" + so[:-3])
        kiln("run", path(so), "--input", f"x={path('x.npy')}", "--output-dir", out)
        assert np.allclose(np.load(os.path.join(out, "y.npy")), want, rtol=1e-6, atol=1e-7)


def weights_section(so):
    """(offset, size) of model.so's .kiln.weights section as readelf reads it, or None."""
    out = subprocess.run(["readelf", "-SW", so], capture_output=True, text=True).stdout
    m = re.search(r"\.kiln\.weights\s+PROGBITS\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", out)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def case_weights_section():
    # The embedded weights are a section appended to model.so after the link: the constant's
    # bytes first, page aligned. External weights leave the library without one.
    at = weights_section(path("add.so"))
    assert at and at[0] % 4096 == 0, at  # KILN_WEIGHTS_ALIGN
    with open(path("add.so"), "rb") as f:
        f.seek(at[0])
        assert np.array_equal(np.frombuffer(f.read(16), np.float32), C)
    assert weights_section(path("add_ext.so")) is None
    want = np.arange(8, dtype=np.float32).reshape(2, 4) + C

    def run(so, rc=0):
        out = path("wsec_out")
        shutil.rmtree(out, ignore_errors=True)
        p = kiln("run", so, "--input", f"x={path('x.npy')}", "--output-dir", out, rc=rc)
        if rc == 0:
            assert np.array_equal(np.load(os.path.join(out, "y.npy")), want)
        return p

    # Tools that rewrite the library keep the section: strip, and a copy elsewhere.
    stripped = path("wsec_stripped.so")
    shutil.copy(path("add.so"), stripped)
    subprocess.run(["strip", stripped], check=True)
    run(stripped)
    # Without the section, or with another model's weights in it, the library still loads but
    # no container is created, and the error says why.
    removed = path("wsec_removed.so")
    subprocess.run(["objcopy", "--remove-section", ".kiln.weights", path("add.so"), removed],
                   check=True)
    expect(run(removed, rc=1), "err", r"has no \.kiln\.weights section")
    expect(kiln("inspect", removed), "out",
           r"^weights: +embedded, not loaded \(1 constants\): .*has no \.kiln\.weights")
    expect(kiln("inspect", path("add.so")), "out", r"^weights: +embedded \(1 constants\)$")
    other = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("c", TensorProto.FLOAT, [4], (C + 1).tolist())])
    onnx.save(helper.make_model(other, opset_imports=[helper.make_opsetid("", 13)]),
              path("add_other.onnx"))
    kiln("compile", path("add_other.onnx"), "-o", path("add_other.so"), "--dynamic",
         "batch=1:16")
    theirs = path("wsec_theirs.bin")
    subprocess.run(["objcopy", "--dump-section", f".kiln.weights={theirs}",
                    path("add_other.so"), path("wsec_dump.so")], check=True)
    assert os.path.getsize(theirs) == 16 + 24  # the same size: only the id tells them apart
    swapped = path("wsec_swapped.so")
    subprocess.run(["objcopy", "--update-section", f".kiln.weights={theirs}", path("add.so"),
                    swapped], check=True)
    expect(run(swapped, rc=1), "err", r"holds other weights than this model's code was built")
    # llvm-strip drops non-allocated sections outside segments, this one too (GNU strip keeps
    # it): the error says so.
    if shutil.which("llvm-strip"):
        llvm_stripped = path("wsec_llvm_stripped.so")
        subprocess.run(["llvm-strip", "-o", llvm_stripped, path("add.so")], check=True)
        expect(run(llvm_stripped, rc=1), "err", r"llvm-strip")
    # Through the C API in one process: the failed create's message, then, after any other
    # call, that call's own; two models with embedded weights side by side; one unloaded and
    # loaded again.
    import ctypes
    import _ctypes

    def load(so):
        lib = ctypes.CDLL(so, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        lib.kiln_last_error.restype = ctypes.c_char_p
        return lib

    def create(lib):
        c = ctypes.c_void_p()
        return lib.kiln_container_create(None, ctypes.byref(c)), c

    bad = load(removed)
    st, _ = create(bad)
    assert st != 0 and b"has no .kiln.weights section" in bad.kiln_last_error(), st
    n = ctypes.c_int32()
    assert bad.kiln_num_inputs(None, ctypes.byref(n)) != 0
    assert b".kiln.weights" not in (bad.kiln_last_error() or b""), bad.kiln_last_error()
    # The weights are mapped one page off their file offset modulo 2 MiB (so the kernel never
    # maps a whole 2 MiB page-cache folio back over released weights).
    page = mmap.PAGESIZE
    lib = load(path("add.so"))
    real = os.path.realpath(path("add.so"))
    maps = [line.split() for line in open("/proc/self/maps") if line.rstrip().endswith(real)]
    weights = [m for m in maps if int(m[2], 16) == at[0] // page * page]
    assert len(weights) == 1, maps
    start = int(weights[0][0].split("-")[0], 16)
    assert (start - int(weights[0][2], 16)) % (2 << 20) == page, weights
    _ctypes.dlclose(lib._handle)
    # Two static models with embedded weights in one process, run side by side, unloaded (their
    # weights unmapped) and loaded again.
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    sos = []
    for k, c in enumerate((C, C + 1)):
        static_add = helper.make_graph(
            [helper.make_node("Add", ["x", "c"], ["y"])], "add",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
            [helper.make_tensor("c", TensorProto.FLOAT, [4], c.tolist())])
        onnx.save(helper.make_model(static_add, opset_imports=[helper.make_opsetid("", 13)]),
                  path(f"wsec_static{k}.onnx"))
        kiln("compile", path(f"wsec_static{k}.onnx"), "-o", path(f"wsec_static{k}.so"))
        sos.append(os.path.realpath(path(f"wsec_static{k}.so")))
    for _ in range(2):
        libs = [load(so) for so in sos]
        for lib, c in zip(libs, (C, C + 1)):
            st, cont = create(lib)
            assert st == 0, lib.kiln_last_error()
            y = np.zeros((2, 4), np.float32)
            io = (ctypes.c_void_p * 1)
            assert lib.kiln_run_minimal(cont, io(x.ctypes.data), io(y.ctypes.data)) == 0
            assert np.array_equal(y, x + c), (y, x + c)
            assert lib.kiln_container_destroy(cont) == 0
        for lib in libs:
            _ctypes.dlclose(lib._handle)
        left = [line for line in open("/proc/self/maps") if any(so in line for so in sos)]
        assert not left, left
    # A process that returns from main while four threads still run the model: the weights
    # stay mapped to the end (unmapping them at exit crashed those threads with SIGSEGV).
    n = 4096
    big = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])],
        [helper.make_tensor("c", TensorProto.FLOAT, [n], np.ones(n, np.float32).tolist())])
    onnx.save(helper.make_model(big, opset_imports=[helper.make_opsetid("", 13)]),
              path("wsec_exit.onnx"))
    kiln("compile", path("wsec_exit.onnx"), "-o", path("wsec_exit.so"))
    with open(path("exit_host.c"), "w") as f:
        f.write(r"""#include <kiln/model.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
static int (*run)(kiln_container *, void *const *, void *const *);
static kiln_container *c;
static void *loop(void *arg) {
  static __thread float x[4096], y[4096];
  void *in[1] = {x}, *out[1] = {y};
  while (run(c, in, out) == 0) {}
  return arg;
}
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) return 2;
  void (*init)(kiln_container_options *) = dlsym(h, "kiln_container_options_init");
  int (*create)(const kiln_container_options *, kiln_container **) =
      dlsym(h, "kiln_container_create");
  run = dlsym(h, "kiln_run_minimal");
  kiln_container_options o;
  init(&o);
  o.num_runners = 4;
  o.threads_per_run = 1;
  if (create(&o, &c)) return 3;
  pthread_t t[4];
  for (int i = 0; i < 4; ++i) pthread_create(&t[i], 0, loop, 0);
  usleep(100000);
  return 0; /* exit() with the four threads inside kiln_run_minimal */
}
""")
    subprocess.run(["gcc", "-O1", f"-I{SRC}/include", path("exit_host.c"), "-o",
                    path("exit_host"), "-ldl", "-lpthread"], check=True)
    for _ in range(5):
        p = subprocess.run([path("exit_host"), path("wsec_exit.so")], capture_output=True,
                           timeout=120)
        assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    # A section a tool left off a page boundary: mapped from the page that holds it (offset
    # 64-byte aligned), or copied (not even that). Its bytes move to the end, the old zeroed.
    original = bytes(open(path("add.so"), "rb").read())
    shoff = struct.unpack_from("<Q", original, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", original, 0x3A)
    for skew in (64, 68):
        data = bytearray(original)
        moved = (len(data) + 63) // 64 * 64 + skew
        moved += 128 if moved % 4096 < 128 else 0
        patched = 0
        for i in range(shnum):  # Elf64_Shdr: sh_offset at 0x18, sh_size at 0x20
            h = shoff + i * shentsize
            if struct.unpack_from("<QQ", data, h + 0x18) == at:
                struct.pack_into("<Q", data, h + 0x18, moved)
                patched += 1
        assert patched == 1, patched
        section = bytes(data[at[0]:at[0] + at[1]])
        data[at[0]:at[0] + at[1]] = bytes(at[1])
        data += bytes(moved - len(data)) + section
        unaligned = path(f"wsec_unaligned{skew}.so")
        with open(unaligned, "wb") as f:
            f.write(data)
        assert weights_section(unaligned) == (moved, at[1])
        run(unaligned)
    # A weights file given at run time stands in for the section.
    ext = path("wsec_removed.weights")
    shutil.copy(path("add_ext.so.weights"), ext)
    p = kiln("run", removed, "--weights", ext, "--input", f"x={path('x.npy')}")
    expect(p, "out", r"^y: float32 \[2, 4\]")


def case_exit_codes():
    expect(kiln("compile", path("add.onnx"), "-o", path("e.so"), "--no-such-flag", rc=2), "err",
           r"no-such-flag")
    kiln(rc=2)
    kiln("run", path("nothing.so"), rc=1)
    readme = open(os.path.join(SRC, "README.md")).read()
    for code, meaning in [(0, "success"), (1, "error"), (2, "command line"), (3, "unsupported"),
                          (70, "internal"), (130, "interrupt")]:
        assert re.search(rf"\| `{code}` \| [^\n]*{meaning}", readme, re.I), (code, meaning)
    expect(kiln("--help"), "out", r"Exit status: 0 success, 1 error")


def case_readme_lists_every_option():
    readme = open(os.path.join(SRC, "README.md")).read()
    missing = []
    for cmd in (["compile"], ["run"], ["bench"], ["inspect"], ["ops"], ["cache"],
                ["cache", "info"], ["cache", "clean"], []):
        text = kiln(*cmd, "--help").stdout
        for flag in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))):
            if flag == "--help":
                continue
            # The README's option table for this command: a row "| `kiln <cmd>` | `--flag".
            if f"`{flag}" not in readme:
                missing.append(f"kiln {' '.join(cmd)} {flag}")
    assert not missing, "README does not document: " + ", ".join(missing)


def case_interrupt_leaves_no_temp_files():
    # A cold cache so the build stage runs compilers for a while (tiny_cnn: 0.35-3 s).
    for delay in (0.0, 0.1):  # the build of tiny_cnn can take as little as 0.35 s
        cache = path(f"int_cache_{delay}")
        shutil.rmtree(cache, ignore_errors=True)  # cold: nothing cached from a previous run
        out = path(f"int_{delay}.so")
        proc = subprocess.Popen([KILN, "compile", os.path.join(SRC, "examples/tiny_cnn/model.onnx"),
                                 "-o", out, "--cache-dir", cache], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if os.path.isdir(cache) and any(n.startswith("build-") for n in os.listdir(cache)):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the compile ended before it could be interrupted"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (proc.returncode, err)
        assert "interrupted" in err, err
        left = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs if ".tmp" in f]
        left += [n for n in os.listdir(cache) if n.startswith("build-")]
        assert not left, f"temp files left after SIGINT: {left}"
        assert not [n for n in os.listdir(WORK) if n.startswith(f"int_{delay}.so")], \
            os.listdir(WORK)


def case_autotune_and_tuning_file():
    for stale in ("t.so", "t.so.tuning.json"):  # a previous run's outputs
        if os.path.exists(path(stale)):
            os.remove(path(stale))
    expect(kiln("compile", path("add.onnx"), "-o", path("t.so"), "--autotune", rc=1), "err",
           r"--autotune applies only with --device cuda")
    expect(kiln("compile", path("add.onnx"), "-o", path("t.so"), "--device", "cuda",
                "--tuning-file", path("missing.json"), rc=1), "err",
           r"--tuning-file '.*missing.json': cannot be read")
    # A well-formed file made for another model (none of its kernels is one of this model's)
    # is refused with the file named, before anything is built.
    with open(path("other.json"), "w") as f:
        json.dump({"format": "kiln-tuning-2", "buckets": [{}], "kernels": {"00000000000000ab": {
            "configs": [{"block": 128, "vector": 4, "rows_per_warp": 2, "ms": [1.0]}],
            "best": [0]}}}, f)
    expect(kiln("compile", path("add.onnx"), "-o", path("t.so"), "--device", "cuda",
                "--tuning-file", path("other.json"), rc=1), "err",
           r"--tuning-file '.*other.json': none of its 1 kernels is a kernel of this model")
    assert not os.path.exists(path("t.so"))
    if not os.path.exists("/usr/local/cuda/bin/nvcc") and not shutil.which("nvcc"):
        return  # CUDA compiles need nvcc; everything below does
    cuda = ["--device", "cuda", "--cuda-arch", "sm_90", "--dynamic", "batch=1:16"]
    # No GPU here: autotune says so, names the way out, and writes nothing.
    if not os.path.exists("/dev/nvidia0"):
        p = kiln("compile", path("add.onnx"), "-o", path("t.so"), *cuda, "--autotune", rc=1)
        expect(p, "err", r"--autotune times kernels on this machine's GPU", r"--tuning-file")
        assert not os.path.exists(path("t.so")) and not os.path.exists(path("t.so.tuning.json"))
    # A tuning file changes the launch configuration of the kernel it names, and only to one
    # of its candidates (block 128 is one; 96 is not and is ignored).
    kiln("compile", path("add.onnx"), "-o", path("t.so"), *cuda, "--keep-sources")
    cu = open(path("t.so.src/kernels.cu")).read()
    key = re.search(r"tuning key ([0-9a-f]{16})", cu).group(1)
    assert "__launch_bounds__(256)" in cu, cu[:2000]
    for block, expected in ((128, 128), (96, 256)):
        with open(path("tune.json"), "w") as f:
            json.dump({"format": "kiln-tuning-1", "kernels": {key: {
                "block": block, "vector": 4, "rows_per_warp": 2}}}, f)
        kiln("compile", path("add.onnx"), "-o", path("t.so"), *cuda, "--keep-sources",
             "--tuning-file", path("tune.json"))
        cu = open(path("t.so.src/kernels.cu")).read()
        assert f"__launch_bounds__({expected})" in cu, (block, cu[:2000])


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}
if CASE not in CASES:
    sys.exit(f"unknown case {CASE}; cases: {' '.join(CASES)}")
CASES[CASE]()
print(f"cli case {CASE}: ok")
