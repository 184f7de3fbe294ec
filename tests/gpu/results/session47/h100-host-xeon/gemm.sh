#!/usr/bin/env bash
# Session 47: the fast GEMM schemes on this host's AVX-512 tiles (KILN_GEMM_STRASSEN=1: the
# route taken with AVX-512 too; rank 15 where n + k >= 2304) against the plain AVX-512 GEMM,
# at the transformers' shapes, B from memory, pinned to two cores.
set -uo pipefail
W=/tmp/kiln-gpu
mkdir -p "$W" "$OUT"
sum=$(md5sum build/gpu-carry/carry.tar.xz | cut -c1-32)
if [[ $(cat "$W/carry.md5" 2>/dev/null) != "$sum" ]]; then
  xz -dc build/gpu-carry/carry.tar.xz | tar xf - -C "$W"
  echo "$sum" >"$W/carry.md5"
fi
export LD_LIBRARY_PATH=$W/lib:/usr/lib/x86_64-linux-gnu
cpus=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | sed -n '2,3p' | cut -d, -f1 | paste -sd,)
lscpu >"$OUT/lscpu.txt"; grep -m1 "Model name" "$OUT/lscpu.txt"; echo "cpus $cpus"
shapes='128,3072,768;128,768,3072;128,2304,768;128,768,768;197,3072,768;197,768,3072;197,2304,768;1024,3072,768;1024,768,3072;1024,2304,768'
for round in 1 2; do
  echo "== round $round" >>"$OUT/gemm.txt"
  KILN_GEMM_STRASSEN=1 taskset -c "$cpus" timeout 250 "$W/bin/kiln_gemm_bench" --threads 1,2 \
    --copies 8 --reps 20 --rewrite-a --shapes "$shapes" >>"$OUT/gemm.txt" 2>&1
done
grep -E '^M |^  (rt512|str|rt) ' "$OUT/gemm.txt" | head -150
