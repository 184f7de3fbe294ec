"""kiln.compile: ONNX model → model.so through the `kiln compile` command."""

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile

from . import _config
from .errors import CompileError, InvalidArgumentError, NotFoundError
from .model import Model


class _DefaultDynamic(dict):
    """The default `dynamic`: applied only to dims the model actually names."""


DEFAULT_DYNAMIC = _DefaultDynamic(batch=(1, 64))


def find_compiler(compiler=None):
    """The `kiln` executable: `compiler`, else $KILN_COMPILER, else the one installed (or
    built) with this package, else `kiln` on PATH."""
    tried = []
    for candidate in (compiler, os.environ.get("KILN_COMPILER"), _config.COMPILER,
                      shutil.which("kiln")):
        if not candidate:
            continue
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        tried.append(candidate)
    raise CompileError("cannot find the kiln compiler (tried: "
                       f"{', '.join(tried) or 'nothing'}); pass compiler= or set KILN_COMPILER")


def _dim_params(proto):
    names = set()
    for value in proto.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                names.add(dim.dim_param)
    return names


def _model_bytes(model):
    """(serialized bytes or None, path or None, ModelProto or None)."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            raise InvalidArgumentError(f"'{path}' is a directory, not an ONNX model")
        if not os.path.exists(path):
            raise NotFoundError(f"'{path}': no such file")
        return None, path, None
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):
        return model.SerializeToString(), None, model
    raise InvalidArgumentError(
        f"kiln.compile expects a path or an onnx.ModelProto, got {type(model).__name__}")


def _resolve_dynamic(dynamic, path, proto):
    """{name: (lo, hi)} to pass; the default keeps only names the model has."""
    if dynamic is None:
        return {}
    if not isinstance(dynamic, _DefaultDynamic):
        return dict(dynamic)
    if proto is None:
        try:
            import onnx
        except ImportError:  # without onnx the default cannot be checked: leave dims as they are
            return {}
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception:  # not a readable model: `kiln compile` reports it precisely
            return {}
    present = _dim_params(proto)
    return {name: rng for name, rng in dynamic.items() if name in present}


def _arguments(device, dynamic, all_dims_dynamic, input_shapes, weights, cuda_arch, allow_tf32,
               cache_dir, jobs):
    args = []
    kind = device.split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device='{device}': expected 'cpu', 'cuda' or 'cuda:N'")
    args += ["--device", kind]
    for name, rng in sorted(dynamic.items()):
        try:
            lo, hi = (int(v) for v in rng)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"dynamic['{name}'] = {rng!r}: expected a (min, max) pair of ints") from None
        if lo < 0 or lo > hi:
            raise InvalidArgumentError(f"dynamic['{name}'] = {rng!r}: need 0 <= min <= max")
        args += ["--dynamic", f"{name}={lo}:{hi}"]
    if all_dims_dynamic:
        args.append("--all-dims-dynamic")
    for name, shape in sorted((input_shapes or {}).items()):
        args += ["--input-shape", f"{name}={','.join(str(d) for d in shape)}"]
    if weights not in ("embedded", "external"):
        raise InvalidArgumentError(f"weights='{weights}': expected 'embedded' or 'external'")
    args += ["--weights", weights]
    if cuda_arch:
        args += ["--cuda-arch", cuda_arch if isinstance(cuda_arch, str) else ",".join(cuda_arch)]
    if allow_tf32:
        args.append("--allow-tf32")
    if cache_dir:
        args += ["--cache-dir", os.fspath(cache_dir)]
    if jobs:
        args += ["--jobs", str(int(jobs))]
    return args


def _default_output(key):
    cache = os.environ.get("KILN_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "kiln")
    directory = os.path.join(cache, "python")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"model-{key}.so")


def compile(model, output=None, *, device="cpu", dynamic=DEFAULT_DYNAMIC,
            all_dims_dynamic=False, input_shapes=None, weights="embedded", cuda_arch=None,
            allow_tf32=False, cache_dir=None, jobs=None, load=True, runners=None, threads=None,
            compiler=None, verbose=False):
    """Compiles an ONNX model (a path or an onnx.ModelProto) to a shared library.

    output: where model.so goes (default: kiln's cache directory, named by a hash of the
    model and the options, so compiling the same model again reuses it). dynamic: {dim name:
    (min, max)} for symbolic dims (the default makes a "batch" dim 1..64 when the model has
    one). Returns a loaded kiln.Model (device/runners/threads as in kiln.load), or the path
    of the library when load=False. Raises CompileError with kiln's message on failure.
    """
    data, path, proto = _model_bytes(model)
    exe = find_compiler(compiler)
    args = _arguments(device, _resolve_dynamic(dynamic, path, proto), all_dims_dynamic,
                      input_shapes, weights, cuda_arch, allow_tf32, cache_dir, jobs)
    if output is None:
        digest = hashlib.sha256()
        if data is not None:
            digest.update(data)
        else:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(os.path.abspath(path).encode())  # external data lives beside it
        stat = os.stat(exe)
        digest.update(repr((args, exe, stat.st_size, stat.st_mtime_ns)).encode())
        output = _default_output(digest.hexdigest()[:20])
        reuse = os.path.exists(output)
    else:
        output = os.fspath(output)
        reuse = False
    if not reuse:
        _run_compiler(exe, data, path, output, args, verbose)
    if not load:
        return output
    return Model(output, device=device, runners=runners, threads=threads)


def _run_compiler(exe, data, path, output, args, verbose):
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kiln-model-", dir=out_dir) as tmp:
        if data is not None:
            path = os.path.join(tmp, "model.onnx")
            with open(path, "wb") as f:
                f.write(data)
        cmd = [exe, "compile", path, "-o", output] + args
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            text, _ = proc.communicate()
        except BaseException:
            # Ctrl-C: let the compiler clean up its temporary files (SIGINT), then make sure.
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if verbose and text:
        print(text, end="")
    if proc.returncode != 0:
        raise CompileError(text.strip() or
                           f"{' '.join(cmd)} failed with exit status {proc.returncode}")
