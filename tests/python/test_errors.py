"""kiln's statuses as Python exceptions: one class per status under KilnError, each also the
built-in class callers expect, with kiln's message naming what is wrong."""
import numpy as np
import pytest
import torch

import kiln
from conftest import model_path


def good(batch=2):
    return np.zeros((batch, 3, 16, 16), np.float32)


def expect(cls, builtin, status, needle, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, kiln.KilnError)
    if builtin is not None:
        assert isinstance(err, builtin)
    assert err.status == status
    assert needle in str(err), str(err)
    return err


def test_shape_errors_name_the_input_and_dim(cnn):
    expect(kiln.ShapeMismatchError, ValueError, 2, "input 'x' dim 0 (batch): expected 1..64, got 65",
           cnn, good(65))
    expect(kiln.ShapeMismatchError, ValueError, 2, "input 'x' dim 3: expected 16, got 15", cnn,
           np.zeros((2, 3, 16, 15), np.float32))
    expect(kiln.ShapeMismatchError, ValueError, 2, "expected rank 4, got 3", cnn,
           np.zeros((2, 3, 16), np.float32))


def test_dtype_errors(cnn):
    expect(kiln.DtypeMismatchError, TypeError, 3, "input 'x': expected dtype float32, got float64",
           cnn, good().astype(np.float64))
    expect(kiln.DtypeMismatchError, TypeError, 3, "got bfloat16", cnn,
           torch.zeros(2, 3, 16, 16, dtype=torch.bfloat16))
    expect(kiln.DtypeMismatchError, TypeError, 3, "got float64", cnn, [[1.0]])  # a plain list


def test_argument_errors(cnn, two_io):
    err = expect(kiln.NotFoundError, LookupError, 7, "no input 'y'; its inputs are: x", cnn,
                 y=good())
    assert err.status_name == "KILN_ERR_NOT_FOUND"
    expect(kiln.InvalidArgumentError, ValueError, 1, "missing input(s) 'scale'", two_io,
           np.zeros((1, 6), np.float32))
    expect(kiln.InvalidArgumentError, ValueError, 1, "takes 1 input(s) (x), got 2", cnn, good(),
           good())
    expect(kiln.InvalidArgumentError, ValueError, 1, "given twice", cnn, good(), x=good())
    expect(kiln.InvalidArgumentError, ValueError, 1, "read-only", cnn.run_into,
           [_readonly((2, 10))], good())


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.flags.writeable = False
    return a


def test_output_buffer_errors(cnn):
    expect(kiln.ShapeMismatchError, ValueError, 2, "output 'logits'", cnn.run_into,
           [np.zeros((3, 10), np.float32)], good(2))
    expect(kiln.InvalidArgumentError, ValueError, 1, "not C-contiguous", cnn.run_into,
           [np.zeros((10, 2), np.float32).T], good(2))


def test_load_errors(tmp_path, cnn):
    expect(kiln.NotFoundError, LookupError, 7, "no such file", kiln.load, tmp_path / "none.so")
    expect(kiln.InvalidArgumentError, ValueError, 1, "is a directory", kiln.load, tmp_path)
    expect(kiln.InvalidArgumentError, ValueError, 1, "compile it first", kiln.load,
           model_path("cnn"))
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an ELF file")
    expect(kiln.NotFoundError, LookupError, 7, "cannot load", kiln.load, junk)
    expect(kiln.DeviceError, None, 4, "compiled for cpu only", kiln.load, cnn.path, device="cuda")
    expect(kiln.InvalidArgumentError, ValueError, 1, "unknown device 'gpu'", kiln.load, cnn.path,
           device="gpu")
    expect(kiln.InvalidArgumentError, ValueError, 1, "runners=0", kiln.load, cnn.path, runners=0)


def test_compile_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    err = expect(kiln.CompileError, None, None, "not a valid ONNX model", kiln.compile, bad)
    assert err.status is None
    expect(kiln.CompileError, None, None, "has no symbolic input dim named 'seq'", kiln.compile,
           model_path("cnn"), dynamic={"seq": (1, 8)})
    expect(kiln.InvalidArgumentError, ValueError, 1, "need 0 <= min <= max", kiln.compile,
           model_path("cnn"), dynamic={"batch": (8, 1)})
    expect(kiln.InvalidArgumentError, ValueError, 1, "expects a path or an onnx.ModelProto",
           kiln.compile, 42)
    expect(kiln.NotFoundError, LookupError, 7, "no such file", kiln.compile, tmp_path / "x.onnx")


def test_missing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(kiln.compile.__globals__["_config"], "COMPILER", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KILN_COMPILER", raising=False)
    expect(kiln.CompileError, None, None, "cannot find the kiln compiler", kiln.compile,
           model_path("cnn"), output=tmp_path / "m.so")


def test_constant_errors(two_io):
    expect(kiln.NotFoundError, LookupError, 7, "no constant named 'nope'", two_io.update_constants,
           {"nope": np.zeros(3, np.float32)})
    expect(kiln.NotFoundError, LookupError, 7, "no constant named 'nope'", two_io.read_constant,
           "nope")
    expect(kiln.InvalidStateError, None, 10, "no inactive constant buffer", two_io.swap_constants)
    w = two_io.read_constant("fc.weight")
    expect(kiln.ShapeMismatchError, ValueError, 2, "fc.weight", two_io.update_constants,
           {"fc.weight": np.zeros((4, 5), np.float32)})
    expect(kiln.DtypeMismatchError, TypeError, 3, "fc.weight", two_io.update_constants,
           {"fc.weight": w.astype(np.float64)})


def test_every_status_has_a_class():
    from kiln.errors import _from_status
    classes = {type(_from_status(s, "m")) for s in range(1, 11)}
    assert len(classes) == 10 and all(issubclass(c, kiln.KilnError) for c in classes)
    unknown = _from_status(99, "m")
    assert isinstance(unknown, kiln.UnknownStatusError) and unknown.status == 99
