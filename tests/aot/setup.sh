#!/bin/sh
# Fixture for the AOT tests: generate the ONNX models and expected outputs with numpy,
# then compile each with kiln. Usage: setup.sh <python> <kiln> <workdir> <srcdir>
set -eu
PY=$1 KILN=$2 WORK=$3 SRC=$4
rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" "$SRC/gen_mlp.py" "$WORK"
"$KILN" compile "$WORK/mlp.onnx" -o "$WORK/mlp.so" --dynamic batch=1:16
"$KILN" compile "$WORK/static2.onnx" -o "$WORK/static2.so"
"$KILN" compile "$WORK/chain.onnx" -o "$WORK/chain.so" --dynamic batch=1:8
"$KILN" compile "$WORK/pair.onnx" -o "$WORK/pair.so" --dynamic batch=1:8
test -f "$WORK/mlp.so"
test -f "$WORK/static2.so"
test -f "$WORK/chain.so"
test -f "$WORK/pair.so"
"$PY" "$SRC/gen_values.py" "$WORK"
for m in select reshape reduce strings; do
  "$KILN" compile "$WORK/$m.onnx" -o "$WORK/$m.so"
  test -f "$WORK/$m.so"
done
"$PY" "$SRC/gen_types.py" "$WORK"
"$KILN" compile "$WORK/types.onnx" -o "$WORK/types.so"
test -f "$WORK/types.so"
# Sibling MatMuls (Q/K/V): fused into kiln_shim_matmul_multi_v1 by default, not with
# KILN_FUSE_SIBLING_MATMUL=0; the symbol the model references shows which path it took.
"$PY" "$SRC/gen_qkv.py" "$WORK"
"$KILN" compile "$WORK/qkv.onnx" -o "$WORK/qkv.so" --dynamic S=1:64
KILN_FUSE_SIBLING_MATMUL=0 "$KILN" compile "$WORK/qkv.onnx" -o "$WORK/qkv_unfused.so" \
  --dynamic S=1:64
nm -D "$WORK/qkv.so" | grep -q kiln_shim_matmul_multi_v1
if nm -D "$WORK/qkv_unfused.so" | grep -q kiln_shim_matmul_multi_v1; then
  echo "KILN_FUSE_SIBLING_MATMUL=0 still fused the sibling matmuls" >&2
  exit 1
fi
