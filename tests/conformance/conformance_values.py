"""Test values for run_conformance.py: ONNX test data (tensors, sequences, optionals,
bf16 and float8/float4/int4/int2) as kiln's .npy tensors, and ONNX's comparison rule."""

import re

import numpy as np
import onnx
from onnx import numpy_helper

RTOL = 1e-3
ATOL = 1e-7
# Ops whose reference outputs are float32 sums of terms as large as the output's largest
# magnitude: every element of such a float32 result carries rounding error up to about one
# float32 ulp of max|expected| (an exact 0 comes out as ~1.9e-7 in test_dft_inverse), so
# the absolute tolerance of their outputs is that ulp, not 1e-7. A wrong transform is off by
# O(max|expected|), far above it.
SUM_OF_TERMS_OPS = {"DFT", "STFT"}
F32_EPS = float(np.finfo(np.float32).eps)

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
