#!/usr/bin/env bash
# Sets everything up and runs kiln's main job on the bundled example model:
# install packages, build, compile examples/tiny_cnn/model.onnx to a shared library,
# run it on the bundled input and compare with PyTorch's reference output.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build build/release -j"$(nproc)" --target kiln kiln_rt
out=build/demo
mkdir -p "$out"
build/release/src/kiln compile examples/tiny_cnn/model.onnx -o "$out/tiny_cnn.so"
build/release/src/kiln run "$out/tiny_cnn.so" --input x=examples/tiny_cnn/input_x.npy \
  --output-dir "$out/outputs"
/usr/bin/python3 - "$out/outputs/y.npy" examples/tiny_cnn/output_y.npy <<'PY'
import sys, numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
print(f"output y {got.shape}: relative L2 error vs PyTorch {err:.2e}")
sys.exit(0 if err < 1e-4 else 1)
PY
