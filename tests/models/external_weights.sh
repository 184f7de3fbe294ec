#!/usr/bin/env bash
# `kiln compile --weights external` writes <out>.weights next to a model.so without its
# weights; `kiln run` maps it (found next to the model, or given with --weights) and must
# reproduce PyTorch's output; without the file the run fails with a clear message.
set -euo pipefail
kiln=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$kiln" compile "$src/examples/tiny_cnn/model.onnx" -o "$work/embedded.so"
"$kiln" compile "$src/examples/tiny_cnn/model.onnx" -o "$work/ext.so" --weights external
test -s "$work/ext.so.weights" || { echo "FAIL: no weights file"; exit 1; }
emb=$(stat -c %s "$work/embedded.so") ext=$(stat -c %s "$work/ext.so") w=$(stat -c %s "$work/ext.so.weights")
echo "embedded.so $emb bytes; ext.so $ext bytes + weights $w bytes"
if (( ext + w / 2 > emb )); then echo "FAIL: ext.so still holds the weights"; exit 1; fi
"$kiln" run "$work/ext.so" --input x="$src/examples/tiny_cnn/input_x.npy" --output-dir "$work/out"
/usr/bin/python3 - "$work/out/y.npy" "$src/examples/tiny_cnn/output_y.npy" <<'PY'
import sys, numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
print(f"rel L2 error {err:.2e}")
sys.exit(0 if err < 1e-4 else 1)
PY
mv "$work/ext.so.weights" "$work/moved.weights"
if "$kiln" run "$work/ext.so" --input x="$src/examples/tiny_cnn/input_x.npy" 2>"$work/err.txt"; then
  echo "FAIL: ran without its weights"; exit 1
fi
grep -qi "weights" "$work/err.txt" || { echo "FAIL: unclear error: $(cat "$work/err.txt")"; exit 1; }
"$kiln" run "$work/ext.so" --weights "$work/moved.weights" --input x="$src/examples/tiny_cnn/input_x.npy" >/dev/null
echo PASS
