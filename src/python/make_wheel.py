#!/usr/bin/env python3
"""Packs the built `kiln` package (build tree) into a wheel for this interpreter and platform,
so `pip install --no-index kiln-*.whl` installs it without network or a build backend.

Usage: make_wheel.py <built package dir> <output dir> <version>

The wheel holds the Python modules and the extension; the compiler and libkiln_rt are not in
it: kiln.compile finds `kiln` through $KILN_COMPILER or PATH, and a model.so finds its runtime
library as it would for any host program.
"""
import base64
import hashlib
import os
import sys
import sysconfig
import zipfile

CONFIG = """# Written by make_wheel.py: the compiler is found through $KILN_COMPILER or PATH, and
# libkiln_rt through the library path.
VERSION = {version!r}
COMPILER = None
RUNTIME = ""
"""


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main(package_dir, out_dir, version):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    name = f"kiln-{version}-{tag}-{tag}-{platform}.whl"
    dist_info = f"kiln-{version}.dist-info"
    files = {}
    for entry in sorted(os.listdir(package_dir)):
        path = os.path.join(package_dir, entry)
        if entry == "_config.py":
            files[f"kiln/{entry}"] = CONFIG.format(version=version).encode()
        elif entry.endswith((".py", ".so")) and os.path.isfile(path):
            with open(path, "rb") as f:
                files[f"kiln/{entry}"] = f.read()
    if not any(n.endswith(".so") for n in files):
        sys.exit(f"make_wheel.py: no extension module in {package_dir}; build kiln_python_ext")
    files[f"{dist_info}/METADATA"] = (
        "Metadata-Version: 2.1\nName: kiln\nVersion: " + version + "\n"
        "Summary: kiln: ONNX models compiled to native shared libraries, run from Python\n"
        "Requires-Python: ==" + f"{sys.version_info.major}.{sys.version_info.minor}.*\n"
        "Requires-Dist: numpy\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: kiln make_wheel.py\nRoot-Is-Purelib: false\n"
        f"Tag: {tag}-{tag}-{platform}\n").encode()
    record = [record_line(n, d) for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, name)
    tmp = final + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if n.endswith(".so") else 0o644) << 16
            wheel.writestr(info, d, zipfile.ZIP_DEFLATED)
    os.replace(tmp, final)  # never a half-written wheel
    print(final)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
