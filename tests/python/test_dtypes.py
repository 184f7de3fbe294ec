"""Dtypes NumPy lacks (bfloat16: a kiln.Tensor, zero-copy into torch), strings in and out,
and integer/bool tensors, through small ONNX models built here."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper as h

import kiln


def build(nodes, inputs, outputs):
    graph = h.make_graph(nodes, "g", inputs, outputs)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def bf16_model():
    proto = build([h.make_node("Cast", ["x"], ["y"], to=T.BFLOAT16)],
                  [h.make_tensor_value_info("x", T.FLOAT, ["n"])],
                  [h.make_tensor_value_info("y", T.BFLOAT16, ["n"])])
    return kiln.compile(proto, dynamic={"n": (1, 1000)}, runners=1, threads=1)


def test_bfloat16_output_is_a_dlpack_tensor(bf16_model):
    x = torch.randn(100)
    y = bf16_model(x)
    assert isinstance(y, kiln.Tensor)
    assert y.shape == (100,) and y.dtype == "bfloat16" and y.device == "cpu"
    assert y.__dlpack_device__() == (1, 0)
    t = torch.from_dlpack(y)
    assert t.dtype == torch.bfloat16
    assert torch.equal(t, x.to(torch.bfloat16))  # round to nearest even, as torch does
    again = torch.from_dlpack(y)
    assert again.data_ptr() == t.data_ptr()  # both views of kiln's buffer
    t[0] = 5.0
    assert again[0].item() == 5.0
    with pytest.raises(kiln.UnsupportedError, match="NumPy has no dtype bfloat16"):
        y.numpy()


def test_bfloat16_input_from_torch():
    proto = build([h.make_node("Cast", ["x"], ["y"], to=T.FLOAT)],
                  [h.make_tensor_value_info("x", T.BFLOAT16, [4])],
                  [h.make_tensor_value_info("y", T.FLOAT, [4])])
    model = kiln.compile(proto, runners=1, threads=1)
    x = torch.tensor([1.5, -2.25, 3.0, 1e-3]).to(torch.bfloat16)
    np.testing.assert_array_equal(model(x), x.float().numpy())


def test_strings_in_and_out():
    proto = build([h.make_node("StringNormalizer", ["s"], ["u"], case_change_action="UPPER")],
                  [h.make_tensor_value_info("s", T.STRING, [3])],
                  [h.make_tensor_value_info("u", T.STRING, [3])])
    model = kiln.compile(proto, runners=1, threads=1)
    assert model.inputs[0].dtype == "string"
    for given in (np.array(["ab", "Cd", "x1"]), np.array([b"ab", b"Cd", b"x1"]),
                  np.array(["ab", "Cd", "x1"], dtype=object)):
        out = model(given)
        assert out.dtype == object and out.tolist() == ["AB", "CD", "X1"]


def test_int64_and_bool():
    proto = build([h.make_node("Greater", ["a", "b"], ["g"]),
                   h.make_node("Add", ["a", "b"], ["s"])],
                  [h.make_tensor_value_info("a", T.INT64, [5]),
                   h.make_tensor_value_info("b", T.INT64, [5])],
                  [h.make_tensor_value_info("g", T.BOOL, [5]),
                   h.make_tensor_value_info("s", T.INT64, [5])])
    model = kiln.compile(proto, runners=1, threads=1)
    a = np.array([1, 5, -3, 2**40, 0], np.int64)
    b = torch.tensor([2, 4, -3, 1, -1])
    g, s = model(a, b)
    assert g.dtype == np.bool_ and s.dtype == np.int64
    np.testing.assert_array_equal(g, a > b.numpy())
    np.testing.assert_array_equal(s, a + b.numpy())
