"""Compiling and running one conformance test with `kiln compile` / `kiln run` (Runner),
and bundling kiln for --prebuilt-dir; used by run_conformance.py."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import numpy_helper

from conformance_values import (NPY_TYPES, SMALL_TYPES, SUM_OF_TERMS_OPS, bf16_bits, compare,
                                flatten_value, is_bf16, sanitize, small_array, tensor_type,
                                type_name, type_problem)


def run_proc(cmd, timeout, env):
    """Run cmd in its own process group; kill the whole group on timeout.

    Returns (returncode or None on timeout, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    for attempt in range(30):
        try:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env,
                                 start_new_session=True)
            break
        except OSError:  # ETXTBSY/EACCES while the binary is being relinked
            if attempt == 29:
                raise
            time.sleep(2)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        rc = None
    return (rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
            time.monotonic() - t0)


def is_crash(rc):
    return rc < 0 or rc >= 128 or rc == 70


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return "(no message)"


def crash_msg(rc, err):
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = "signal %d" % -rc
        head = "killed by %s" % sig
    elif rc >= 128:
        head = "exit code %d" % rc
        try:
            head += " (%s?)" % signal.Signals(rc - 128).name
        except ValueError:
            pass
    else:
        head = "internal error (exit 70)"
    msg = first_line(err)
    if msg == "(no message)":
        return head
    # Generated code that did not compile: name the first compiler error.
    msg = re.sub(r"\(compiling \S*/([^/\s]+) failed:?", r"(\1)", msg)
    for line in err.splitlines()[1:]:
        m = re.search(r"\berror: (.*)", line)
        if m:
            msg += " -- " + m.group(1).strip()
            break
    return "%s: %s" % (head, msg)


class Runner:
    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        self.env["KILN_CACHE_DIR"] = args.cache_dir
        if args.lib_dir:  # a bundled kiln and libkiln_rt (--prebuilt-dir)
            self.env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in [args.lib_dir, self.env.get("LD_LIBRARY_PATH")] if p)
        self.copy_lock = threading.Lock()
        self.copied = set()

    def run_test(self, test_dir, variant):
        """Compile and run one test directory; returns a result dict."""
        res = {"test": test_dir, "variant": variant, "ops": []}
        try:
            self._run_test(test_dir, variant, res)
        except Exception as e:  # a bug in the runner or a broken test dir
            res["status"] = "error"
            res["reason"] = "runner: %s: %s" % (type(e).__name__, e)
        return res

    def _run_test(self, test_dir, variant, res):
        args = self.args
        path = os.path.join(args.data, test_dir)
        model_path = os.path.join(path, "model.onnx")
        model = onnx.load(model_path)
        g = model.graph
        res["ops"] = sorted({n.op_type for n in g.node})
        sum_of_terms = bool(SUM_OF_TERMS_OPS.intersection(res["ops"]))
        inits = {t.name for t in g.initializer}
        inputs = [vi for vi in g.input if vi.name not in inits]
        outputs = list(g.output)
        for vi in inputs + outputs:
            prob = type_problem(vi)
            if prob:
                res["status"] = "unsupported-io"
                res["reason"] = prob
                return
        datasets = sorted(d for d in os.listdir(path)
                          if d.startswith("test_data_set_"))
        work = tempfile.mkdtemp(prefix="kiln-conf-", dir=args.tmp)
        try:
            # Convert all data first: unsupported data fails early, cheaply.
            sets = []
            for ds in datasets:
                dsp = os.path.join(path, ds)
                feeds, expects, opts = [], [], []
                for i, vi in enumerate(inputs):
                    pb = os.path.join(dsp, "input_%d.pb" % i)
                    if not os.path.exists(pb):
                        continue  # optional trailing input left out
                    items, more = flatten_value(pb, vi)
                    opts += more
                    for k, (name, t) in enumerate(items):
                        if t is None or name.endswith(".has_value"):
                            continue  # presence is a compile option
                        arr = self._load(t, vi, res)
                        if arr is None:
                            return
                        npy = os.path.join(work, "%s_in%d_%d.npy" % (ds, i, k))
                        np.save(npy, arr)
                        feeds.append((name, npy))
                for i, vi in enumerate(outputs):
                    pb = os.path.join(dsp, "output_%d.pb" % i)
                    if not os.path.exists(pb):
                        continue
                    items, _ = flatten_value(pb, vi)
                    for name, t in items:
                        arr = None if t is None else self._load(t, vi, res)
                        if arr is None and t is not None:
                            return
                        expects.append((name, arr, tensor_type(vi.type).elem_type))
                if sets and opts != sets[0][3]:
                    res["status"] = "unsupported-io"
                    res["reason"] = ("data sets need different compile "
                                     "options: %s vs %s" % (opts, sets[0][3]))
                    return
                sets.append((ds, feeds, expects, opts))

            opts = sets[0][3] if sets else []
            if args.prebuilt_dir and not args.compile_only:
                so = self._prebuilt(test_dir, variant, res)
            elif args.compile_only:
                pdir = prebuilt_path(args, variant, test_dir)
                shutil.rmtree(pdir, ignore_errors=True)
                os.makedirs(pdir)
                self._copy_data(test_dir)
                so = self._compile(model_path, variant, opts,
                                   os.path.join(pdir, "model.so"), res)
                record = {k: res[k] for k in ("status", "reason", "compile_s")
                          if k in res}
                with open(os.path.join(pdir, "compile.json"), "w") as f:
                    json.dump(record, f, indent=1, sort_keys=True)
                if so:
                    res["status"] = "compiled"
                return
            else:
                so = self._compile(model_path, variant, opts,
                                   os.path.join(work, "model.so"), res)
            if not so:
                return

            for ds, feeds, expects, _ in sets:
                outdir = os.path.join(work, ds + "_out")
                os.mkdir(outdir)
                cmd = [args.kiln, "run", so, "--output-dir", outdir]
                if args.device != "cpu":
                    cmd += ["--device", args.device]
                for name, npy in feeds:
                    cmd += ["--input", "%s=%s" % (name, npy)]
                rc, out, err, secs = run_proc(cmd, args.run_timeout, self.env)
                if rc is None:
                    res["status"] = "timeout"
                    res["reason"] = "%s: run exceeded %ds" % (
                        ds, args.run_timeout)
                    return
                if rc != 0:
                    if is_crash(rc):
                        res["status"] = "crash"
                        res["reason"] = "run %s: %s" % (ds, crash_msg(rc, err))
                    else:
                        res["status"] = "fail-run"
                        res["reason"] = "%s: %s" % (ds, first_line(err))
                    return
                for name, exp, elem in expects:
                    f = os.path.join(outdir, sanitize(name) + ".npy")
                    if exp is None:
                        if os.path.exists(f):
                            res["status"] = "mismatch"
                            res["reason"] = "%s: output '%s' was written; " \
                                "expected no such tensor" % (ds, name)
                            return
                        continue
                    if not os.path.exists(f):
                        res["status"] = "fail-run"
                        res["reason"] = "%s: output '%s' not written" % (
                            ds, name)
                        return
                    try:
                        act = np.load(f, allow_pickle=False)
                    except Exception as e:
                        res["status"] = "fail-run"
                        res["reason"] = "%s: output '%s' unreadable: %s" % (
                            ds, name, e)
                        return
                    why = compare(exp, act, elem, sum_of_terms)
                    if why:
                        res["status"] = "mismatch"
                        res["reason"] = "%s output '%s': %s" % (ds, name, why)
                        return
            res["status"] = "pass"
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                res["work"] = work

    def _compile(self, model_path, variant, opts, so, res):
        """Runs `kiln compile` into so; returns so, or None with res's
        status and reason set."""
        args = self.args
        cmd = [args.kiln, "compile", model_path, "-o", so]
        if args.kiln_jobs:
            cmd += ["-j", str(args.kiln_jobs)]
        if args.device != "cpu":
            cmd += ["--device", args.device, "--cuda-arch", args.cuda_arch]
        if variant == "dynamic":
            cmd.append("--all-dims-dynamic")
        cmd += opts
        rc, out, err, secs = run_proc(cmd, args.compile_timeout, self.env)
        res["compile_s"] = round(secs, 2)
        if rc is None:
            res["status"] = "timeout"
            res["reason"] = "compile exceeded %ds" % args.compile_timeout
            return None
        if rc != 0:
            if is_crash(rc):
                res["status"] = "crash"
                res["reason"] = "compile: " + crash_msg(rc, err)
            else:
                res["status"] = "fail-compile"
                res["reason"] = first_line(err)
            return None
        return so

    def _prebuilt(self, test_dir, variant, res):
        """The model.so --compile-only left for this test, or None with the
        recorded compile failure (or a missing model) in res."""
        pdir = prebuilt_path(self.args, variant, test_dir)
        try:
            with open(os.path.join(pdir, "compile.json")) as f:
                record = json.load(f)
        except OSError:
            res["status"] = "error"
            res["reason"] = "not in --prebuilt-dir (%s)" % pdir
            return None
        if "compile_s" in record:
            res["compile_s"] = record["compile_s"]
        if record.get("status"):  # the compile failed
            res["status"] = record["status"]
            res["reason"] = record.get("reason", "")
            return None
        return os.path.join(pdir, "model.so")

    def _copy_data(self, test_dir):
        """Copies the test's directory to PREBUILT/data (once per test)."""
        with self.copy_lock:
            if test_dir in self.copied:
                return
            self.copied.add(test_dir)
            dst = os.path.join(self.args.prebuilt_dir, "data", test_dir)
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(os.path.join(self.args.data, test_dir), dst)

    @staticmethod
    def _load(t, vi, res):
        if t.data_type in SMALL_TYPES:
            return small_array(t)
        if is_bf16(vi) and t.data_type in (onnx.TensorProto.BFLOAT16,
                                           onnx.TensorProto.UINT16):
            return bf16_bits(t)
        # bf16 data only travels (as bits) for a value declared bfloat16.
        if t.data_type not in NPY_TYPES or (
                t.data_type == onnx.TensorProto.BFLOAT16):
            res["status"] = "unsupported-io"
            res["reason"] = "'%s' data has element type %s" % (
                vi.name, type_name(t.data_type))
            return None
        arr = numpy_helper.to_array(t)
        if t.data_type == onnx.TensorProto.STRING:
            flat = [v if isinstance(v, bytes) else str(v).encode("utf-8")
                    for v in arr.flat]
            arr = np.array(flat, dtype=bytes).reshape(arr.shape)
        return arr


def prebuilt_path(args, variant, test_dir):
    return os.path.join(args.prebuilt_dir, args.device, variant, test_dir)


# Loaded from the target system, never bundled: glibc and the dynamic loader.
SYSTEM_LIBS = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libmvec|libdl|"
                         r"libpthread|librt|libresolv|libutil)\.so")


def bundle_kiln(args, kiln):
    """Copies kiln (without debug info) to PREBUILT/bin, and the shared
    libraries it and the compiled models need (libkiln_rt, oneDNN, ...; not
    glibc) to PREBUILT/lib: the GPU machine lacks kiln's build dependencies."""
    bindir = os.path.join(args.prebuilt_dir, "bin")
    libdir = os.path.join(args.prebuilt_dir, "lib")
    os.makedirs(bindir, exist_ok=True)
    os.makedirs(libdir, exist_ok=True)
    dst = os.path.join(bindir, "kiln")
    if subprocess.run(["strip", "--strip-debug", "-o", dst, kiln],
                      stderr=subprocess.DEVNULL).returncode != 0:
        shutil.copy2(kiln, dst)
    objs = [kiln]
    for root, _, files in os.walk(os.path.join(args.prebuilt_dir, args.device)):
        if "model.so" in files:  # any model names the libkiln_rt it needs
            objs.append(os.path.join(root, "model.so"))
            break
    libs = set()
    for obj in objs:
        out = subprocess.run(["ldd", obj], check=True, capture_output=True,
                             text=True).stdout
        libs.update(re.findall(r"=> (/\S+)", out))
    for lib in sorted(libs):
        if not SYSTEM_LIBS.match(os.path.basename(lib)):
            shutil.copy2(lib, os.path.join(libdir, os.path.basename(lib)))
    print("bundled kiln and %d libraries in %s" % (
        len(os.listdir(libdir)), args.prebuilt_dir))
