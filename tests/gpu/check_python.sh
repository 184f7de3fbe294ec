#!/usr/bin/env bash
# The Python package on the GPU machine: builds the pybind11 extension there for its own
# Python (3.12 with PyTorch; the Debian build here is for 3.11) from src/python/ext with the
# pybind11 headers pack.sh carries, then tests/gpu/check_python.py compiles a model with
# kiln.compile(device="cuda"), runs it on CUDA tensors and on the CPU, and checks PyTorch.
#   check_python.sh <carry dir W> <out json>
set -uo pipefail
W=$1 out=$2
pkg=$W/python/kiln
mkdir -p "$pkg"
cp src/python/kiln/*.py "$pkg/"
cat >"$pkg/_config.py" <<PY
VERSION = 'gpu-check'
COMPILER = '$W/bin/kiln'
RUNTIME = '$W/lib/libkiln_rt.so.1'
PY
inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
if [[ ! -f $inc/Python.h ]]; then
  echo "{\"ok\": false, \"error\": \"no Python.h at $inc: cannot build the extension here\"}" >"$out"
  exit 1
fi
g++ -O2 -std=c++20 -shared -fPIC -fvisibility=hidden -I"$inc" -I"$W/include" -Iinclude \
  -Isrc/python/ext src/python/ext/*.cpp -o "$pkg/_kiln$suffix" -ldl 2>"$W/python-build.log" || {
  echo "{\"ok\": false, \"error\": \"extension build failed: $(tail -c 400 "$W/python-build.log" | tr '"\n' "' ")\"}" >"$out"
  exit 1
}
PYTHONPATH=$W/python python3 tests/gpu/check_python.py "$W/pywork" "$out"
