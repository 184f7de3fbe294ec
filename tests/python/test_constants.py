"""Weights from Python: read, update in place (active), update the inactive buffer and swap;
results follow PyTorch with the same new weights."""
import copy

import numpy as np
import torch

import kiln
from conftest import ATOL, RTOL, model_path, torch_reference


def inputs(batch=3):
    rng = np.random.default_rng(21)
    return (rng.standard_normal((batch, 6), dtype=np.float32),
            rng.standard_normal((batch, 1), dtype=np.float32))


def with_weights(module, weight, bias):
    twin = copy.deepcopy(module)
    with torch.no_grad():
        twin.fc.weight.copy_(torch.from_numpy(weight))
        twin.fc.bias.copy_(torch.from_numpy(bias))
    return twin


def fresh_model():
    return kiln.compile(model_path("two_in_out"), runners=2, threads=1)


def test_constants_listed_and_read(two_io, two_io_torch):
    names = {c.name: c for c in two_io.constants}
    assert names["fc.weight"].shape == (4, 6) and names["fc.weight"].dtype == "float32"
    np.testing.assert_array_equal(two_io.read_constant("fc.weight"),
                                  two_io_torch.fc.weight.detach().numpy())
    out = torch.empty(4)
    assert two_io.read_constant("fc.bias", out=out) is out
    np.testing.assert_array_equal(out.numpy(), two_io_torch.fc.bias.detach().numpy())


def test_update_active(two_io_torch):
    model = fresh_model()
    rng = np.random.default_rng(22)
    w = rng.standard_normal((4, 6), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    model.update_constants({"fc.weight": torch.from_numpy(w), "fc.bias": b})
    x, s = inputs()
    h, total = model(x, s)
    h_ref, total_ref = torch_reference(with_weights(two_io_torch, w, b), x, s)
    np.testing.assert_allclose(h, h_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(total, total_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(model.read_constant("fc.weight"), w)


def test_update_inactive_then_swap(two_io_torch):
    model = fresh_model()
    x, s = inputs()
    before = model(x, s)[0]
    w_old = model.read_constant("fc.weight")
    w = np.full((4, 6), 0.25, np.float32)
    b = np.arange(4, dtype=np.float32)
    model.update_constants({"fc.weight": w, "fc.bias": b}, inactive=True, require_all=True)
    np.testing.assert_array_equal(model(x, s)[0], before)  # runs still see the active buffer
    np.testing.assert_array_equal(model.read_constant("fc.weight", inactive=True), w)
    model.swap_constants()
    h_ref, _ = torch_reference(with_weights(two_io_torch, w, b), x, s)
    np.testing.assert_allclose(model(x, s)[0], h_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(model.read_constant("fc.weight", inactive=True), w_old)
    model.swap_constants()  # and back
    np.testing.assert_array_equal(model(x, s)[0], before)
    model.free_inactive_constants()
    try:
        model.swap_constants()
    except kiln.InvalidStateError:
        pass
    else:
        raise AssertionError("swap after free_inactive_constants must fail")


def test_update_is_all_or_nothing():
    model = fresh_model()
    x, s = inputs()
    before = model(x, s)[0]
    try:
        model.update_constants({"fc.weight": np.zeros((4, 6), np.float32), "nope": np.zeros(1)})
    except kiln.NotFoundError:
        pass
    else:
        raise AssertionError("unknown constant name must fail")
    np.testing.assert_array_equal(model(x, s)[0], before)
    try:
        model.update_constants({"fc.weight": np.zeros((4, 6), np.float32)}, inactive=True,
                               require_all=True)
    except kiln.InvalidArgumentError as e:
        assert "fc.bias" in str(e), str(e)
    else:
        raise AssertionError("require_all without fc.bias must fail")
