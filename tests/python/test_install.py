"""`cmake --install` puts the package where /usr/bin/python3 finds it (default prefix) and,
for another prefix, PYTHONPATH=<prefix>/<pythondir> imports it, with no build tree involved."""
import json
import os
import re
import site
import subprocess
import sys

import numpy as np

BUILD = os.environ.get("KILN_BUILD_DIR", "")
PYTHONDIR = os.environ.get("KILN_INSTALL_PYTHONDIR", "")


def cache_value(name):
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        m = re.search(rf"^{name}:[A-Z]+=(.*)$", f.read(), re.M)
    return m.group(1) if m else None


def test_default_dir_is_on_the_interpreters_path():
    prefix = cache_value("CMAKE_INSTALL_PREFIX")
    assert os.path.join(prefix, PYTHONDIR) in site.getsitepackages(), (prefix, PYTHONDIR)


def test_install_to_a_prefix_and_import(tmp_path, cnn):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   stdout=subprocess.PIPE)
    package = prefix / PYTHONDIR / "kiln"
    assert (package / "__init__.py").exists()
    x = np.random.default_rng(31).standard_normal((4, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json, numpy as np, kiln
m = kiln.load({cnn.path!r}, runners=1, threads=1)
y = m(np.load({str(tmp_path / 'x.npy')!r}))
print(json.dumps({{"file": kiln.__file__, "compiler": kiln._config.COMPILER,
                  "y": y.tolist()}}))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(prefix / PYTHONDIR), "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    # The same kernels as this process (an ISA cap picks other GEMMs, whose sums round apart).
    if "ONEDNN_MAX_CPU_ISA" in os.environ:
        env["ONEDNN_MAX_CPU_ISA"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["file"] == str(package / "__init__.py")
    assert got["compiler"] == str(prefix / "bin" / "kiln")
    np.testing.assert_array_equal(np.array(got["y"], np.float32), cnn(x))

    # With the compiler installed too (the install rules of the whole project), compiling
    # from the installed package uses it.
    if (prefix / "bin" / "kiln").exists():
        model = os.path.join(os.environ["KILN_TEST_WORK"], "cnn.onnx")
        script = f"""
import numpy as np, kiln
m = kiln.compile({model!r}, {str(tmp_path / 'm.so')!r}, runners=1, threads=1)
np.save({str(tmp_path / 'y.npy')!r}, m(np.load({str(tmp_path / 'x.npy')!r})))
"""
        env["KILN_CACHE_DIR"] = str(tmp_path / "cache")
        proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), cnn(x), rtol=1e-6, atol=1e-6)


def test_wheel_installs_with_pip_offline(tmp_path, cnn):
    subprocess.run(["cmake", "--build", BUILD, "--target", "kiln_python_wheel"], check=True,
                   stdout=subprocess.PIPE)
    dist = os.path.join(BUILD, "python", "dist")
    wheels = [w for w in os.listdir(dist) if w.endswith(".whl")]
    assert len(wheels) == 1, wheels
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target),
                    os.path.join(dist, wheels[0])], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    x = np.random.default_rng(32).standard_normal((2, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    compiler = os.path.join(BUILD, "src", "kiln")
    script = f"""
import numpy as np, kiln
assert kiln.__file__.startswith({str(target)!r}), kiln.__file__
assert kiln._config.COMPILER is None
m = kiln.compile({os.path.join(os.environ["KILN_TEST_WORK"], "cnn.onnx")!r},
                 {str(tmp_path / 'w.so')!r}, runners=1, threads=1)
np.save({str(tmp_path / 'y.npy')!r}, m(np.load({str(tmp_path / 'x.npy')!r})))
"""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1", "KILN_COMPILER": compiler,
           "KILN_CACHE_DIR": os.environ.get("KILN_CACHE_DIR", str(tmp_path / "cache"))}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), cnn(x), rtol=1e-6, atol=1e-6)
