#!/usr/bin/env bash
# Session 46, second call: the attention tests (with SoftmaxExpOverItsRange) on this host's
# CPU at its widest ISA and capped at AVX2.
set -uo pipefail
W=/tmp/kiln-gpu
mkdir -p "$W" "$OUT"
sum=$(md5sum build/gpu-carry/carry.tar.xz | cut -c1-32)
if [[ $(cat "$W/carry.md5" 2>/dev/null) != "$sum" ]]; then
  xz -dc build/gpu-carry/carry.tar.xz | tar xf - -C "$W"
  echo "$sum" >"$W/carry.md5"
fi
export LD_LIBRARY_PATH=$W/lib:/usr/lib/x86_64-linux-gnu
D=build/dev-carry46
grep -m1 "Model name" /proc/cpuinfo; grep -o -m1 "avx512f" /proc/cpuinfo
f='*Sdpa*:*Attention*:*Softmax*'
timeout 120 $D/kiln_runtime_tests --gtest_filter="$f" >"$OUT/tests2-native.txt" 2>&1
echo "native rc=$? $(tail -n 3 "$OUT/tests2-native.txt" | tr '\n' ' ')"
grep -E 'FAILED|SKIPPED \]' "$OUT/tests2-native.txt" | head -20
ONEDNN_MAX_CPU_ISA=AVX2 timeout 120 $D/kiln_runtime_tests --gtest_filter="$f" >"$OUT/tests2-avx2.txt" 2>&1
echo "avx2 rc=$? $(tail -n 3 "$OUT/tests2-avx2.txt" | tr '\n' ' ')"
grep -E 'FAILED|SKIPPED \]' "$OUT/tests2-avx2.txt" | head -20
