"""kiln.Model: a compiled model.so loaded into a kiln container."""

import ctypes
import os
import threading
from collections.abc import Mapping
from typing import NamedTuple, Optional, Tuple, Union

from . import _config, _kiln
from .errors import InvalidArgumentError, NotFoundError


class TensorInfo(NamedTuple):
    """An input, output or constant of a model.

    shape: per dim an int (static), the symbol's name (a dynamic dim such as "batch"), or
    None (a dim derived from symbols, e.g. 2*seq). ranges: per dim (min, max) the model
    accepts; max is None where only the run-time guard knows it.
    """
    name: str
    dtype: str
    shape: Tuple[Union[int, str, None], ...]
    ranges: Tuple[Tuple[int, Optional[int]], ...]


def _infos(raw):
    return [TensorInfo(*item) for item in raw]


_runtime_lock = threading.Lock()
_runtime = None


def _load_runtime():
    """Loads the libkiln_rt installed (or built) with this package, once, so a model.so
    (which needs libkiln_rt.so.N and carries only an $ORIGIN RUNPATH) finds it by SONAME even
    when its directory and the library path do not hold one."""
    global _runtime
    with _runtime_lock:
        if _runtime is None and os.path.exists(_config.RUNTIME):
            _runtime = ctypes.CDLL(_config.RUNTIME, mode=ctypes.RTLD_GLOBAL)


class Model:
    """A loaded model. Call it with arrays: ``y = model(x)``.

    Inputs are NumPy arrays or any DLPack producer (torch tensors are read in place, without
    a copy), by position in the model's input order and/or by name. A CPU model returns NumPy
    arrays over memory kiln allocated (``np.asarray`` and ``torch.from_dlpack`` take them
    without a copy); one output is returned as is, several as a tuple. Safe to call from many
    threads at once (runs release the GIL).
    """

    def __init__(self, path, *, device="cpu", runners=None, threads=None, weights=None):
        _load_runtime()
        path = os.fspath(path)
        _check_library_path(path)
        path = os.path.abspath(path)  # dlopen searches the library path for bare names
        for name, value in (("runners", runners), ("threads", threads)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidArgumentError(f"{name}={value!r}: expected a positive int or None")
        if weights is None and os.path.exists(path + ".weights"):
            weights = path + ".weights"  # written by compile(..., weights="external")
        self.path = path
        self._impl = _kiln._Model(path, device, runners or 0, threads or 0,
                                  None if weights is None else os.fspath(weights))
        self.inputs = _infos(self._impl.inputs())
        self.outputs = _infos(self._impl.outputs())
        self._input_index = {info.name: i for i, info in enumerate(self.inputs)}

    @property
    def device(self):
        return self._impl.device

    @property
    def constants(self):
        """The model's weights (ONNX initializers) by name, dtype and shape."""
        return _infos(self._impl.constants())

    def __call__(self, *arrays, **named):
        outputs = self.run(*arrays, **named)
        return outputs[0] if len(outputs) == 1 else outputs

    def run(self, *arrays, **named):
        """Like calling the model, but always returns a tuple of outputs."""
        return tuple(self._impl.run(self._gather(arrays, named)))

    def run_into(self, outputs, *arrays, **named):
        """Writes the outputs into caller-allocated tensors (a sequence in output order, or a
        mapping by output name): NumPy arrays or DLPack tensors such as torch tensors, which
        kiln writes in place. Returns ``outputs``."""
        if isinstance(outputs, Mapping):
            ordered = _order(outputs, [info.name for info in self.outputs], "output")
        else:
            ordered = list(outputs)
        self._impl.run_into(self._gather(arrays, named), ordered)
        return outputs

    def update_constants(self, values, *, inactive=False, require_all=False):
        """Copies {name: array} into the active buffer (atomically, runs see all old or all
        new values) or, with inactive=True, into the inactive buffer for a later
        swap_constants(). require_all: every constant must be given. All-or-nothing."""
        if not isinstance(values, Mapping):
            raise InvalidArgumentError("update_constants expects a mapping {name: array}")
        self._impl.update_constants(dict(values), bool(inactive), bool(require_all))

    def swap_constants(self):
        """Makes the inactive constant buffer active (atomically with respect to runs)."""
        self._impl.swap_constants()

    def free_inactive_constants(self):
        self._impl.free_inactive_constants()

    def read_constant(self, name, *, inactive=False, out=None):
        """A copy of constant `name` (a new NumPy array, or written into `out`)."""
        return self._impl.read_constant(name, bool(inactive), out)

    def _gather(self, arrays, named):
        """Inputs in model order from positional and named arguments."""
        if not named and len(arrays) == len(self.inputs):  # the common call: all positional
            return [_detached(a) for a in arrays]
        if len(arrays) == 1 and not named and isinstance(arrays[0], Mapping):
            return _order(arrays[0], [info.name for info in self.inputs], "input")
        names = [info.name for info in self.inputs]
        if len(arrays) > len(names):
            raise InvalidArgumentError(
                f"the model takes {len(names)} input(s) ({', '.join(names)}), "
                f"got {len(arrays)} positional")
        given = dict(zip(names, arrays))
        for name, value in named.items():
            if name not in self._input_index:
                raise NotFoundError(f"the model has no input '{name}'; its inputs are: "
                                    f"{', '.join(names)}")
            if name in given:
                raise InvalidArgumentError(f"input '{name}' given twice (by position and name)")
            given[name] = value
        return _order(given, names, "input")

    def __repr__(self):
        def fmt(infos):
            return ", ".join(f"{i.name}: {i.dtype}{list(i.shape)}" for i in infos)
        return f"kiln.Model('{self.path}', device='{self.device}', inputs=[{fmt(self.inputs)}], " \
               f"outputs=[{fmt(self.outputs)}])"


def _detached(value):
    """Inference reads autograd tensors as plain data (DLPack refuses them otherwise)."""
    if getattr(value, "requires_grad", False) and hasattr(value, "detach"):
        return value.detach()
    return value


def _order(values, names, kind):
    unknown = [k for k in values if k not in names]
    if unknown:
        raise NotFoundError(f"the model has no {kind} '{unknown[0]}'; its {kind}s are: "
                            f"{', '.join(names)}")
    missing = [n for n in names if n not in values]
    if missing:
        raise InvalidArgumentError(f"missing {kind}(s) {', '.join(repr(m) for m in missing)}; "
                                   f"the model's {kind}s are: {', '.join(names)}")
    return [_detached(values[n]) for n in names]


def _check_library_path(path):
    if os.path.isdir(path):
        raise InvalidArgumentError(f"'{path}' is a directory, not a compiled model (.so)")
    if not os.path.exists(path):
        raise NotFoundError(f"'{path}': no such file")
    if path.endswith(".onnx"):
        raise InvalidArgumentError(
            f"'{path}' is an ONNX model; compile it first: kiln.compile('{path}')")


def load(path, *, device="cpu", runners=None, threads=None, weights=None):
    """Loads a compiled model.so. device: "cpu", "cuda" or "cuda:N" (the model must have
    been compiled for it). runners: concurrent runs (default one per hardware thread).
    threads: OpenMP threads inside one run (default all hardware threads). weights: the
    external weights file of a model compiled with weights="external" (default:
    <path>.weights when it exists, as `kiln run` does)."""
    return Model(path, device=device, runners=runners, threads=threads, weights=weights)
