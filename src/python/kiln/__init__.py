"""kiln: compile ONNX models to native shared libraries and run them from Python.

    import kiln
    model = kiln.compile("model.onnx")        # or kiln.load("model.so")
    y = model(x)                              # NumPy arrays or torch tensors in, NumPy out

See docs/python.md.
"""

from . import _config, _kiln
from .compile import compile, find_compiler
from .errors import (CompileError, DeviceError, DtypeMismatchError, InternalError,
                     InvalidArgumentError, InvalidStateError, KilnError, NotFoundError,
                     OutOfMemoryError, ShapeMismatchError, UnknownStatusError, UnsupportedError,
                     VersionMismatchError)
from .model import Model, TensorInfo, load

Tensor = _kiln.Tensor
__version__ = _config.VERSION

__all__ = [
    "compile", "load", "find_compiler", "Model", "Tensor", "TensorInfo", "KilnError",
    "CompileError", "InvalidArgumentError", "ShapeMismatchError", "DtypeMismatchError",
    "DeviceError", "OutOfMemoryError", "VersionMismatchError", "NotFoundError",
    "UnsupportedError", "InternalError", "InvalidStateError", "UnknownStatusError",
]
