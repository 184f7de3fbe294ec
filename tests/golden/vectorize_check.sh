#!/usr/bin/env bash
# Checks that generated inner loops vectorize: compiles a model's kernels to assembly with
# the flags kiln uses and requires packed SIMD arithmetic, and that the math function in the
# loop (tanh/exp) goes through a glibc libmvec vector variant (_ZGV...), not a scalar call.
# usage: vectorize_check.sh KILN MODEL.onnx WORKDIR [no-math]  (no-math: the model has no
# tanh/exp; only packed arithmetic is required). KILN_INCLUDE_DIR overrides the prelude's
# directory (to see the check fail against an older prelude).
set -euo pipefail
kiln=$1 model=$2 work=$3 mode=${4:-math}
include_dir=${KILN_INCLUDE_DIR:-$(cd "$(dirname "$0")/../../include" && pwd)}
rm -rf "$work" && mkdir -p "$work"
"$kiln" compile "$model" -o "$work/model.so" --keep-sources >/dev/null 2>&1
asm="$work/kernels.s"
# kiln's kernel flags, with the gather tuning option this g++ accepts (aot/cpu_isa.cpp).
gather=
for flag in -mtune-ctrl=use_gather -mtune-ctrl=use_gather_8parts; do
  if g++ -march=native "$flag" -E -x c++ /dev/null >/dev/null 2>&1; then gather=$flag && break; fi
done
g++ -O3 -march=native $gather -fopenmp -fno-math-errno -fno-trapping-math -I"$include_dir" -S \
  -o "$asm" "$work/model.so.src/kernels_0.cpp"
packed=$(grep -cE '\b(v(add|mul|max|min|fmadd[0-9]*|sub)ps)\b.*%(x|y|z)mm' "$asm" || true)
vector_math=$(grep -cE 'call\s+_ZGV[a-zA-Z]+[0-9]+v_(tanhf|expf)' "$asm" || true)
echo "packed float instructions: $packed; libmvec vector calls: $vector_math"
if [[ "$packed" -lt 4 ]]; then
  echo "FAIL: inner loop did not vectorize (see $asm)"
  exit 1
fi
if [[ "$mode" != no-math && "$vector_math" -lt 1 ]]; then
  echo "FAIL: tanh/exp in the loop is not a libmvec vector call (see $asm)"
  exit 1
fi
# And the library kiln built (its own flags): the same packed arithmetic in its code.
shipped=$(objdump -d --no-show-raw-insn "$work/model.so" |
  grep -cE '\b(v(add|mul|max|min|fmadd[0-9]*|sub)ps)\b.*%(x|y|z)mm' || true)
echo "packed float instructions in model.so: $shipped"
if [[ "$shipped" -lt 4 ]]; then
  echo "FAIL: kiln's own build of the kernels did not vectorize (objdump -d $work/model.so)"
  exit 1
fi
echo "PASS"
