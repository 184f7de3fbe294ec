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
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DATA = "/usr/share/libonnx-testdata/data"
DEFAULT_FOLDERS = ["node", "pytorch-converted", "pytorch-operator", "simple"]
# The suites this runner knows: where their data lies by default, its folders, and the
# tag of their expected-pass lists (expected_pass_[DEVICE_][TAG]VARIANT.txt).
SUITES = {
    "debian": {"data": DEFAULT_DATA, "folders": DEFAULT_FOLDERS, "tag": "",
               "title": "Debian's libonnx-testdata (ONNX 1.12, opsets 1-17)"},
    # tests/conformance/data/onnx-node-v1.21.0.tgz, unpacked into the build tree by CMake.
    "onnx-1.21": {"data": None, "folders": ["node"], "tag": "onnx121_",
                  "title": "the ONNX v1.21.0 node suite (opsets 1-26)"},
}
RTOL = 1e-3
ATOL = 1e-7
# Ops whose reference outputs are float32 sums of terms as large as the output's largest
# magnitude: every element of such a float32 result carries rounding error up to about one
# float32 ulp of max|expected| (an exact 0 comes out as ~1.9e-7 in test_dft_inverse), so
# the absolute tolerance of their outputs is that ulp, not 1e-7. A wrong transform is off by
# O(max|expected|), far above it.
SUM_OF_TERMS_OPS = {"DFT", "STFT"}
F32_EPS = float(np.finfo(np.float32).eps)
STATUSES = ["pass", "fail-compile", "fail-run", "mismatch", "crash", "timeout",
            "unsupported-io", "error", "compiled"]  # compiled: --compile-only

# TensorProto data types kiln run can exchange through .npy files.
NPY_TYPES = {
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32,
    onnx.TensorProto.INT64, onnx.TensorProto.UINT8, onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL,
    onnx.TensorProto.STRING,  # as bytes ('S') arrays; kiln passes UTF-8 C strings
    onnx.TensorProto.BFLOAT16,  # as uint16 raw bits
}


# TensorProto.DataType names newer than Debian's onnx 1.12 knows (its enum stops at
# BFLOAT16); numpy_helper cannot decode them, so small_array() below does.
NEWER_TYPE_NAMES = {17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
                    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1",
                    24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2"}

# The newer types kiln has. They cross `kiln run` as the bytes kiln stores, one element
# per byte: float8/float4 as uint8 codes, int4/int2 as int8 and uint4/uint2 as uint8
# values (docs/runtime-api.md). ONNX packs the sub-byte ones: 2 (4-bit) or 4 (2-bit) per
# byte, low bits first, in raw_data or in int32_data entries.
# code: (bits, signed integer?, float format (exponent bits, mantissa bits, bias, kind))
# kind: "ieee" has inf and NaNs, "fn" NaN = all ones, "fnuz" NaN = 0x80 and no -0, "none",
# "e8m0" (scale-only: unsigned exponent, 0xff = NaN).
SMALL_TYPES = {17: (8, False, (4, 3, 7, "fn")), 18: (8, False, (4, 3, 8, "fnuz")),
               19: (8, False, (5, 2, 15, "ieee")), 20: (8, False, (5, 2, 16, "fnuz")),
               21: (4, False, None), 22: (4, True, None), 23: (4, False, (2, 1, 1, "none")),
               24: (8, False, (8, 0, 127, "e8m0")), 25: (2, False, None), 26: (2, True, None)}
NPY_TYPES |= set(SMALL_TYPES)


def small_array(t):
    """A float8/float4/int4/uint4/int2/uint2 TensorProto as kiln's one-byte elements."""
    bits, signed, _ = SMALL_TYPES[t.data_type]
    n = int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
    if t.raw_data:
        raw = np.frombuffer(t.raw_data, np.uint8)
    else:
        raw = np.array(t.int32_data, dtype=np.int64).astype(np.uint8)
    per = 8 // bits
    if raw.size != (n + per - 1) // per:
        raise ValueError("tensor '%s': %d bytes for %d elements" % (t.name, raw.size, n))
    idx = np.arange(n)
    codes = (raw[idx // per] >> ((idx % per) * bits).astype(np.uint8)) & ((1 << bits) - 1)
    codes = codes.astype(np.uint8).reshape(tuple(t.dims))
    if signed:
        half = 1 << (bits - 1)
        return ((codes.astype(np.int16) ^ half) - half).astype(np.int8)
    return codes


def minifloat_values(codes, fmt):
    """float64 values of float8/float4 codes (uint8 array) of format fmt."""
    ebits, mbits, bias, kind = fmt
    c = codes.astype(np.int64)
    if kind == "e8m0":  # no sign bit: 2^(code - bias), 0xff = NaN
        return np.where(c == 0xFF, np.nan, np.power(2.0, c - bias))
    width = 1 + ebits + mbits
    sign = np.where((c >> (width - 1)) & 1, -1.0, 1.0)
    e = (c >> mbits) & ((1 << ebits) - 1)
    m = c & ((1 << mbits) - 1)
    v = np.where(e == 0, m * 2.0 ** (1 - bias - mbits),
                 (m + 2 ** mbits) * np.power(2.0, e - bias - mbits))
    v = sign * v
    emax = (1 << ebits) - 1
    if kind == "fnuz":
        v = np.where(c == 0x80, np.nan, v)
    elif kind == "fn":
        v = np.where((e == emax) & (m == (1 << mbits) - 1), np.nan, v)
    elif kind == "ieee":
        v = np.where(e == emax, np.where(m == 0, sign * np.inf, np.nan), v)
    return v


def type_name(code):
    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return NEWER_TYPE_NAMES.get(code, "data type %d" % code)


def sanitize(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def type_problem(vi, t=None, inner=False):
    """Why a graph input/output can't cross `kiln run` as .npy, or None.

    Sequences of tensors travel as one .npy per item (NAME.K); optionals as
    their element, or not at all when empty (see docs/runtime-api.md)."""
    t = vi.type if t is None else t
    kind = t.WhichOneof("value")
    if kind == "sequence_type" and \
            t.sequence_type.elem_type.WhichOneof("value") == "tensor_type":
        return type_problem(vi, t.sequence_type.elem_type, True)
    if kind == "optional_type" and not inner:
        return type_problem(vi, t.optional_type.elem_type, True)
    if kind != "tensor_type":
        return "%s '%s' has %s type" % ("value", vi.name, kind or "no")
    et = t.tensor_type.elem_type
    if et not in NPY_TYPES:
        return "'%s' has element type %s" % (
            vi.name, type_name(et))
    return None


def tensor_type(t):
    """The TypeProto.Tensor inside a tensor, sequence or optional type."""
    while t.WhichOneof("value") != "tensor_type":
        t = (t.sequence_type.elem_type if t.HasField("sequence_type")
             else t.optional_type.elem_type)
    return t.tensor_type


def is_bf16(vi):
    return tensor_type(vi.type).elem_type == onnx.TensorProto.BFLOAT16


def flatten_value(pb, vi):
    """The data file of graph value vi as [(name, TensorProto)] in kiln's
    tensor terms, plus the `kiln compile` options the data needs:
    a sequence NAME becomes NAME.0 ... (with --sequence-length, and
    --input-shape for items the model gives no shape); an optional is
    --optional NAME=present|absent and, as an output, NAME.has_value."""
    with open(pb, "rb") as f:
        data = f.read()
    return flatten_proto(data, vi.type, vi.name)


def flatten_proto(data, t, name):
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return [(name, onnx.load_tensor_from_string(data))], []
    if kind == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        items = list(seq.tensor_values)
        opts = ["--sequence-length", "%s=%d" % (name, len(items))]
        if not t.sequence_type.elem_type.tensor_type.HasField("shape"):
            for k, it in enumerate(items):
                opts += ["--input-shape", "%s.%d=%s" % (
                    name, k, ",".join(str(d) for d in it.dims))]
        # (NAME.<N>, None): no such tensor (an output has no item too many).
        return [("%s.%d" % (name, k), it) for k, it in enumerate(items)] + [
            ("%s.%d" % (name, len(items)), None)], opts
    opt = onnx.OptionalProto()
    opt.ParseFromString(data)
    present = opt.HasField("tensor_value") or opt.HasField("sequence_value")
    flag = ("%s.has_value" % name,
            numpy_helper.from_array(np.array(present), "%s.has_value" % name))
    opts = ["--optional", "%s=%s" % (name, "present" if present else "absent")]
    if not present:
        elem = t.optional_type.elem_type
        absent = name if elem.HasField("tensor_type") else name + ".0"
        return [flag, (absent, None)], opts
    inner = (opt.tensor_value if opt.HasField("tensor_value")
             else opt.sequence_value).SerializeToString()
    items, more = flatten_proto(inner, t.optional_type.elem_type, name)
    return [flag] + items, opts + more


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


def bf16_bits(t):
    """The raw bits (uint16 array) of a bfloat16 TensorProto.

    Old test data stores bf16 tensors as UINT16; onnx versions differ in what
    to_array returns for BFLOAT16 (float32 values, uint16 bits or a bfloat16
    dtype), so every form is mapped back to the bits."""
    a = numpy_helper.to_array(t)
    if a.dtype == np.float32:  # widened exactly from bf16: the low half is 0
        return (a.view(np.uint32) >> 16).astype(np.uint16)
    if a.dtype.itemsize == 2:  # uint16 bits, or ml_dtypes.bfloat16
        return a.view(np.uint16)
    raise ValueError("bfloat16 tensor '%s' came back as %s" % (t.name, a.dtype))


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def compare(expected, actual, elem=None, sum_of_terms=False):
    """None when equal under ONNX's rule, else a description.

    sum_of_terms: the model has an op of SUM_OF_TERMS_OPS, so float outputs get an
    absolute tolerance of one float32 ulp of their largest magnitude.

    elem: the output's TensorProto element type. BFLOAT16: both are uint16 arrays
    of bfloat16 bits (see the module doc); float8/float4: uint8 codes, compared as
    their values (NaN equals NaN; the codes of a value are unique but for NaN/-0)."""
    fmt = SMALL_TYPES.get(elem, (0, 0, None))[2]
    if fmt is not None:
        if actual.dtype != np.uint8:
            return "dtype %s, expected uint8 (%s codes)" % (actual.dtype, type_name(elem))
        if actual.shape != expected.shape:
            return "shape %s, expected %s" % (list(actual.shape), list(expected.shape))
        e, a = minifloat_values(expected, fmt), minifloat_values(actual, fmt)
        ok = (e == a) | (np.isnan(e) & np.isnan(a))
        if ok.all():
            return None
        i = int(np.argmax(~ok))
        return "%d/%d values differ, first at flat %d (got %r, expected %r)" % (
            int((~ok).sum()), e.size, i, a.flat[i], e.flat[i])
    bf16 = elem == onnx.TensorProto.BFLOAT16
    if bf16:
        if actual.dtype != np.uint16:
            return "dtype %s, expected uint16 (bfloat16 bits)" % actual.dtype
        if actual.shape != expected.shape:
            return "shape %s, expected %s" % (list(actual.shape),
                                              list(expected.shape))
        ea, aa = expected.astype(np.int32), actual.astype(np.int32)
        e, a = bf16_to_f32(expected), bf16_to_f32(actual)
        # One ulp: same sign, both finite, magnitudes' bits 1 apart.
        near = (((ea ^ aa) & 0x8000) == 0) & np.isfinite(e) & np.isfinite(a) & (
            np.abs((ea & 0x7fff) - (aa & 0x7fff)) <= 1)
        return compare_values(e, a, near=near)
    atol = ATOL
    if sum_of_terms and expected.dtype.kind in "fc" and expected.size:
        with np.errstate(invalid="ignore"):
            top = np.nanmax(np.where(np.isinf(expected), np.nan, np.abs(expected)))
        if np.isfinite(top):
            atol = max(ATOL, F32_EPS * float(top))
    return compare_values(expected, actual, atol=atol)


def compare_values(expected, actual, near=None, atol=ATOL):
    """compare() for numpy arrays; near: elements that pass regardless."""
    if expected.dtype.kind == "S" and actual.dtype.kind == "S":
        if actual.shape != expected.shape:
            return "shape %s, expected %s" % (list(actual.shape),
                                              list(expected.shape))
        bad = [(e, a) for e, a in zip(expected.flat, actual.flat) if e != a]
        if bad:
            return "%d of %d strings differ, e.g. %r, expected %r" % (
                len(bad), expected.size, bad[0][1], bad[0][0])
        return None
    if actual.dtype != expected.dtype:
        return "dtype %s, expected %s" % (actual.dtype, expected.dtype)
    if actual.shape != expected.shape:
        return "shape %s, expected %s" % (list(actual.shape),
                                          list(expected.shape))
    if expected.size == 0:
        return None
    if expected.dtype.kind in "fc":
        with np.errstate(invalid="ignore", over="ignore"):  # signaling NaNs
            e = expected.astype(np.float64)
            a = actual.astype(np.float64)
            both_nan = np.isnan(e) & np.isnan(a)
            diff = np.abs(a - e)
            same_inf = np.isinf(e) & (a == e)
            ok = (diff <= atol + RTOL * np.abs(e)) | both_nan | same_inf
        if near is not None:
            ok |= near
        if ok.all():
            return None
        bad = ~ok
        finite = np.where(np.isnan(diff), np.inf, diff)
        maxerr = float(np.max(finite[bad]))
        nbad = int(bad.sum())
    else:
        ok = actual == expected
        if ok.all():
            return None
        bad = ~ok
        if expected.dtype.kind in "iu":
            maxerr = float(np.max(np.abs(actual.astype(np.float64) -
                                         expected.astype(np.float64))))
        else:
            maxerr = 1.0
        nbad = int(bad.sum())
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)),
                                                   expected.shape))
    return ("max abs err %.3g, %d/%d bad, first at %s (got %r, expected %r)"
            % (maxerr, nbad, expected.size, list(idx), actual[idx].item(),
               expected[idx].item()))


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


# --------------------------------------------------------------------------
# Reporting


def trunc(s, n=150):
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= n else s[:n - 3] + "..."


def reason_key(r):
    """Normalise a failure reason so similar failures group together."""
    s = r["reason"]
    m = re.search(r"operator '([^']+)' is not supported", s)
    if m:
        return "op not supported: " + m.group(1)
    if r["status"] == "mismatch":
        ops = r["ops"]
        return "mismatch in model with ops: " + (", ".join(ops) or "-")
    s = re.sub(r"^test_data_set_\d+: ", "", s)
    s = re.sub(r"node '[^']*'", "node '*'", s)
    s = re.sub(r"'[^']*'", "'*'", s)
    s = re.sub(r"\d+", "N", s)
    return "%s: %s" % (r["status"], s)


def summarize(results, variants, folders):
    totals = {}
    for r in results:
        folder = r["test"].split("/")[0]
        key = (folder, r["variant"])
        t = totals.setdefault(key, {"pass": 0, "total": 0})
        t["total"] += 1
        if r["status"] == "pass":
            t["pass"] += 1
    return totals


def write_report(path, results, variants, folders, suite):
    totals = summarize(results, variants, folders)
    debian = suite == "debian"
    L = []
    L.append("# ONNX backend-test conformance" + (
        "" if debian else ": ONNX v1.21.0 node suite"))
    L.append("")
    L.append("Generated by `tests/conformance/run_conformance.py` "
             "(do not edit by hand). Each test dir under "
             + ("`/usr/share/libonnx-testdata/data/{%s}` (%s)"
                % (",".join(folders), SUITES[suite]["title"]) if debian else
                "`node/` of %s (`tests/conformance/data/"
                "onnx-node-v1.21.0.tgz`, unpacked by CMake into "
                "`build/release/tests/conformance/onnx-1.21/`)"
                % SUITES[suite]["title"])
             + " is compiled with "
             "`kiln compile` (variant *dynamic* adds `--all-dims-dynamic`) "
             "and every `test_data_set_*` is run with `kiln run`. Outputs are "
             "compared with |actual − expected| ≤ %g + %g·|expected| "
             "(exact for ints/bools, NaN matches NaN; bfloat16 travels as "
             "uint16 bits and may also be one bf16 ulp off, since the suite's "
             "bf16 data truncates and kiln rounds to nearest even; float8/float4 "
             "travel as uint8 codes and compare exactly by value, int4/int2 as "
             "one-byte values). "
             "Regenerate with "
             "`/usr/bin/python3 tests/conformance/run_conformance.py "
             "%s` (add "
             "`--expected tests/conformance --update-expected` to rewrite "
             "the per-test expected-pass lists CI gates on); ctest runs it as "
             "`conformance.%sstatic` / `conformance.%sdynamic` (label "
             "`conformance`)."
             % (ATOL, RTOL,
                "--variant both --report docs/conformance.md" if debian else
                "--suite onnx-1.21 --data build/release/tests/conformance/"
                "onnx-1.21 --variant static --json S.json` and `... --variant "
                "dynamic --min-opset 22 --json D.json`, then `... --suite "
                "onnx-1.21 --from-json S.json D.json --report "
                "docs/conformance-onnx-1.21.md",
                SUITES[suite]["tag"], SUITES[suite]["tag"]))
    L.append("")
    if debian:
        L.append("The ONNX v1.21.0 node suite (opsets 1-26) has its own "
                 "report: [conformance-onnx-1.21.md](conformance-onnx-1.21.md).")
        L.append("")
    else:
        L.append("The *dynamic* variant runs only the tests whose model "
                 "imports opset 22 or newer (`--min-opset 22`, as ctest does, "
                 "to keep CI short): Debian's suite covers the older ops in "
                 "that variant. *unsupported-io* tests exchange element types "
                 "kiln cannot exchange as .npy (values other than tensors).")
        L.append("")
    L.append("## Totals (pass / total)")
    L.append("")
    L.append("| folder | " + " | ".join(variants) + " |")
    L.append("|---|" + "---|" * len(variants))
    for folder in folders + ["**all**"]:
        cells = []
        for v in variants:
            if folder == "**all**":
                p = sum(t["pass"] for (f, vv), t in totals.items() if vv == v)
                n = sum(t["total"] for (f, vv), t in totals.items() if vv == v)
            else:
                t = totals.get((folder, v), {"pass": 0, "total": 0})
                p, n = t["pass"], t["total"]
            cells.append("%d / %d" % (p, n))
        L.append("| %s | %s |" % (folder, " | ".join(cells)))
    L.append("")
    L.append("### By status")
    L.append("")
    L.append("| status | " + " | ".join(variants) + " |")
    L.append("|---|" + "---|" * len(variants))
    for st in STATUSES:
        cells = [str(sum(1 for r in results
                         if r["variant"] == v and r["status"] == st))
                 for v in variants]
        if any(c != "0" for c in cells):
            L.append("| %s | %s |" % (st, " | ".join(cells)))
    L.append("")

    fails = [r for r in results if r["status"] != "pass"]
    # Most common failure reasons (grouped), per variant.
    L.append("## Most common failure reasons")
    L.append("")
    for v in variants:
        groups = {}
        for r in fails:
            if r["variant"] == v:
                groups.setdefault(reason_key(r), []).append(r["test"])
        L.append("### %s" % v)
        L.append("")
        L.append("| tests | reason | examples |")
        L.append("|---:|---|---|")
        for key, tests in sorted(groups.items(),
                                 key=lambda kv: (-len(kv[1]), kv[0])):
            ex = ", ".join(t.split("/", 1)[1] for t in sorted(tests)[:3])
            L.append("| %d | %s | %s |" % (len(tests), trunc(key), trunc(ex)))
        L.append("")

    L.append("## Failing tests")
    L.append("")
    L.append("| test | variant | status | reason |")
    L.append("|---|---|---|---|")
    for r in sorted(fails, key=lambda r: (r["test"], r["variant"])):
        L.append("| %s | %s | %s | %s |" % (r["test"], r["variant"],
                                          r["status"], trunc(r["reason"])))
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


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


def expected_file(args, variant):
    device = "" if args.device == "cpu" else args.device + "_"
    return os.path.join(args.expected, "expected_pass_%s%s%s.txt" % (
        device, SUITES[args.suite]["tag"], variant))


def read_list(path):
    """Test names of an expected-pass list; '#' starts a comment."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [ln.split("#", 1)[0].strip() for ln in f
                if ln.split("#", 1)[0].strip()]


def check_expected(args, variant, results, partial):
    """Gate one variant on its expected-pass list; returns 0 or 1.

    Per test, not a count: a regression cannot hide behind a new pass. A
    partial run (--filter, --limit, --folders) checks the listed tests it
    ran; a full run also fails on listed tests it did not find."""
    path = expected_file(args, variant)
    listed = read_list(path)
    ran = {r["test"]: r for r in results if r["variant"] == variant}
    passed = {t for t, r in ran.items() if r["status"] == "pass"}
    if args.update_expected:
        keep = [t for t in listed if t not in ran] if partial else []
        new = sorted(set(keep) | passed)
        with open(path, "w") as f:
            f.write("".join(t + "\n" for t in new))
        print("%s: wrote %d tests to %s" % (variant, len(new), path))
        return 0
    if not os.path.exists(path):
        print("FAIL: %s: no expected-pass list %s (create it with "
              "--update-expected)" % (variant, path))
        return 1
    rc = 0
    lost = [t for t in listed if t in ran and t not in passed]
    missing = [] if partial else [t for t in listed if t not in ran]
    if lost or missing:
        print("FAIL: %s: %d expected passes did not pass (%s):"
              % (variant, len(lost) + len(missing), path))
        for t in lost:
            r = ran[t]
            print("  %s  %s  %s" % (t, r["status"],
                                    trunc(r.get("reason", ""), 200)))
        for t in missing:
            print("  %s  not found in the test data" % t)
        rc = 1
    new = sorted(passed - set(listed))
    if new:
        print("%s: %d tests pass that %s does not list; add them (or "
              "rerun with --update-expected):" % (variant, len(new), path))
        for t in new:
            print("  %s" % t)
    if not rc:
        print("expected ok: %s: all %d listed tests that ran pass"
              % (variant, len([t for t in listed if t in ran])))
    return rc


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
