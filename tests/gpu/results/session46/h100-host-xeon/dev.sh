#!/usr/bin/env bash
# Session 46 device call: the attention kernel tests on this host's CPU (widest ISA, and capped
# at AVX2), then kiln_sdpa_bench before/after the softmax exp change, AVX-512 and AVX2 sets.
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
lscpu >"$OUT/lscpu.txt"; grep -m1 "Model name" "$OUT/lscpu.txt"; grep -o "avx512f" "$OUT/lscpu.txt" | head -1
f='*Sdpa*:*Attention*:*Softmax*'
timeout 120 $D/kiln_runtime_tests --gtest_filter="$f" >"$OUT/tests-native.txt" 2>&1
echo "native rc=$? $(tail -n 3 "$OUT/tests-native.txt" | tr '\n' ' ')"
grep -E 'FAILED|SKIPPED \]' "$OUT/tests-native.txt" | head -20
ONEDNN_MAX_CPU_ISA=AVX2 timeout 120 $D/kiln_runtime_tests --gtest_filter="$f" >"$OUT/tests-avx2.txt" 2>&1
echo "avx2 rc=$? $(tail -n 3 "$OUT/tests-avx2.txt" | tr '\n' ' ')"
grep -E 'FAILED|SKIPPED \]' "$OUT/tests-avx2.txt" | head -20
for isa in avx512 avx2; do
  for round in 1 2; do
    for v in old new; do
      echo "== $isa round $round $v" >>"$OUT/bench.txt"
      OMP_PROC_BIND=close OMP_PLACES=cores timeout 60 $D/sdpa_bench_$v --isa $isa --threads 1,2 \
        --mask pad --layout fused --seconds 1 \
        --shapes '1,12,128,64;8,12,128,64;1,12,197,64' >>"$OUT/bench.txt" 2>&1
      OMP_PROC_BIND=close OMP_PLACES=cores timeout 30 $D/sdpa_bench_$v --isa $isa --threads 1 \
        --mask causal --layout fused --seconds 1 --shapes '1,12,128,64' 2>&1 | grep "^| [0-9]" >>"$OUT/bench.txt"
    done
  done
done
grep -E "^==|^\| [0-9]" "$OUT/bench.txt"
