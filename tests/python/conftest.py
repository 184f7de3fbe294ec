"""Shared fixtures: the exported models (by make_models.py, the ctest fixture) compiled with
kiln.compile (reused from the compile cache), and their PyTorch twins."""
import copy
import os

import numpy as np
import pytest
import torch

import kiln
import reference_models

WORK = os.environ.get("KILN_TEST_WORK", "")


def model_path(name):
    path = os.path.join(WORK, f"{name}.onnx")
    if not os.path.exists(path):  # run outside ctest: export now
        os.makedirs(WORK, exist_ok=True)
        reference_models.export_all(WORK)
    return path


@pytest.fixture(scope="session")
def cnn():
    return kiln.compile(model_path("cnn"), runners=4, threads=1)


@pytest.fixture(scope="session")
def cnn_torch():
    return reference_models.small_cnn()


@pytest.fixture(scope="session")
def two_io():
    return kiln.compile(model_path("two_in_out"), runners=2, threads=1)


@pytest.fixture(scope="session")
def two_io_torch():
    return reference_models.two_in_out()


def torch_reference(module, *arrays):
    """The module's outputs in float64 (an independent, more precise reference)."""
    with torch.no_grad():
        twin = copy.deepcopy(module).double()
        out = twin(*(torch.from_numpy(np.asarray(a, np.float64)) for a in arrays))
    if isinstance(out, tuple):
        return tuple(o.numpy() for o in out)
    return out.numpy()


# fp32 kernels against a float64 reference: sums of at most a few hundred products of O(1)
# values, so errors stay near 1e-6 relative; 1e-4 leaves room for different summation orders.
RTOL, ATOL = 1e-4, 1e-5
