"""A real model (a small CNN exported with PyTorch) from Python, against PyTorch, and
zero-copy exchange with NumPy and torch tensors."""
import gc

import numpy as np
import pytest
import torch

import kiln
from conftest import ATOL, RTOL, torch_reference


def test_introspection(cnn):
    (x,), (y,) = cnn.inputs, cnn.outputs
    assert x == kiln.TensorInfo("x", "float32", ("batch", 3, 16, 16),
                                ((1, 64), (3, 3), (16, 16), (16, 16)))
    assert y.name == "logits" and y.dtype == "float32" and y.shape == ("batch", 10)
    assert cnn.device == "cpu"
    assert all(isinstance(c, kiln.TensorInfo) for c in cnn.constants)


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_matches_torch_numpy_in(cnn, cnn_torch, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16), dtype=np.float32)
    y = cnn(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (batch, 10)
    np.testing.assert_allclose(y, torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)


def test_matches_torch_torch_in(cnn, cnn_torch):
    x = torch.randn(7, 3, 16, 16)
    y = cnn(x)
    with torch.no_grad():
        expected = cnn_torch(x).numpy()
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_named_and_dict_inputs(two_io, two_io_torch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6), dtype=np.float32)
    s = rng.standard_normal((4, 1), dtype=np.float32)
    h_ref, total_ref = torch_reference(two_io_torch, x, s)
    for outs in (two_io(x, s), two_io(x, scale=s), two_io(scale=s, x=x),
                 two_io({"x": x, "scale": s}), two_io.run(x, s)):
        assert isinstance(outs, tuple) and len(outs) == 2
        np.testing.assert_allclose(outs[0], h_ref, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(outs[1], total_ref, rtol=RTOL, atol=ATOL)


def test_non_contiguous_numpy_input_is_copied(cnn, cnn_torch):
    x = np.random.default_rng(9).standard_normal((2, 16, 16, 3), dtype=np.float32)
    view = x.transpose(0, 3, 1, 2)  # NCHW view of NHWC data: not C-contiguous
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(cnn(view), torch_reference(cnn_torch, view), rtol=RTOL, atol=ATOL)


def test_inputs_are_not_copied():
    t = torch.randn(3, 4)
    assert kiln._kiln._input_data_ptr(t) == t.data_ptr()
    a = np.ones((3, 4), np.float32)
    assert kiln._kiln._input_data_ptr(a) == a.ctypes.data
    sliced = torch.randn(6, 4)[2:]  # a view with a storage offset
    assert kiln._kiln._input_data_ptr(sliced) == sliced.data_ptr()


def test_outputs_are_zero_copy_both_ways(cnn):
    y = cnn(np.zeros((2, 3, 16, 16), np.float32))
    assert not y.flags.owndata and type(y.base).__name__ == "PyCapsule"  # kiln's buffer
    assert np.asarray(y) is y
    t = torch.from_dlpack(y)
    assert t.data_ptr() == y.ctypes.data
    t[0, 0] = 123.0  # one buffer: a write through torch shows in NumPy
    assert y[0, 0] == 123.0
    back = np.from_dlpack(t)
    assert back.ctypes.data == y.ctypes.data


def test_run_into_caller_tensors(cnn, cnn_torch):
    x = torch.randn(3, 3, 16, 16)
    out = torch.full((3, 10), float("nan"))
    ptr = out.data_ptr()
    result = cnn.run_into([out], x)
    assert result[0] is out and out.data_ptr() == ptr
    np.testing.assert_allclose(out.numpy(), torch_reference(cnn_torch, x.numpy()), rtol=RTOL,
                               atol=ATOL)
    into_numpy = np.empty((3, 10), np.float32)
    cnn.run_into({"logits": into_numpy}, x=x.numpy())
    np.testing.assert_allclose(into_numpy, out.numpy(), rtol=0, atol=0)


def test_outputs_outlive_the_model(cnn_torch):
    model = kiln.load(kiln.compile(_cnn_path(), load=False), runners=1, threads=1)
    x = np.random.default_rng(5).standard_normal((2, 3, 16, 16), dtype=np.float32)
    y = model(x)
    del model
    gc.collect()
    np.testing.assert_allclose(y, torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)


def test_compile_from_model_proto(cnn_torch):
    import onnx
    model = kiln.compile(onnx.load(_cnn_path()), runners=1, threads=1)
    x = np.random.default_rng(6).standard_normal((3, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(model(x), torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)


def test_compile_static_and_explicit_output(tmp_path, cnn_torch):
    out = tmp_path / "static.so"
    model = kiln.compile(_cnn_path(), out, dynamic=None, input_shapes={"x": (2, 3, 16, 16)})
    assert model.path == str(out) and out.exists()
    assert model.inputs[0].shape == (2, 3, 16, 16)
    x = np.random.default_rng(7).standard_normal((2, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(model(x), torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)


def _cnn_path():
    from conftest import model_path
    return model_path("cnn")


def test_recompiling_to_a_loaded_path_is_refused(tmp_path, cnn_torch):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    out = tmp_path / "same.so"
    first = kiln.compile(_cnn_path(), out, runners=1, threads=1)
    graph = h.make_graph([h.make_node("Neg", ["x"], ["y"])], "neg",
                         [h.make_tensor_value_info("x", T.FLOAT, [3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [3])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(kiln.InvalidStateError, match="was replaced after a model was loaded"):
        kiln.compile(proto, out)  # dlopen would hand back the CNN still loaded from `out`
    del first
    gc.collect()
    second = kiln.load(out)
    np.testing.assert_array_equal(second(np.array([1, -2, 3], np.float32)), [-1, 2, -3])


def test_external_weights(tmp_path, cnn_torch):
    out = tmp_path / "ext.so"
    model = kiln.compile(_cnn_path(), out, weights="external", runners=1, threads=1)
    assert (tmp_path / "ext.so.weights").exists()
    x = np.random.default_rng(8).standard_normal((2, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(model(x), torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)
    del model
    gc.collect()
    found = kiln.load(out, runners=1, threads=1)  # <model>.weights is found by default
    np.testing.assert_allclose(found(x), torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)
    del found
    gc.collect()
    moved = tmp_path / "elsewhere.bin"
    (tmp_path / "ext.so.weights").rename(moved)
    again = kiln.load(out, weights=moved, runners=1, threads=1)
    np.testing.assert_allclose(again(x), torch_reference(cnn_torch, x), rtol=RTOL, atol=ATOL)
