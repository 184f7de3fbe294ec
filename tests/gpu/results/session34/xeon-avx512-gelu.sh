#!/bin/bash
# AVX-512 GELU epilogue: correctness (runtime GEMM tests) and old/new speed on one pinned core.
cd "$(dirname "$0")"; export LD_LIBRARY_PATH=$PWD/lib OMP_NUM_THREADS=1
lscpu | grep -E 'Model name|Flags' | cut -c1-120
bin/rt_tests --gtest_filter='OwnGemm.*:*GemvIsa*:MatmulShim*' > $OUT/tests.log 2>&1; echo "tests rc $?"; grep -E 'PASSED|FAILED|SKIPPED' $OUT/tests.log | head -20
for i in 1 2 3; do for b in old new; do
  echo "== $b gelu"; taskset -c 2 bin/gemm_$b --shapes '128,3072,768;197,3072,768' --gelu --threads 1 --reps 30 --copies 8 2>&1 | grep -E '^M|rt512 ' | sed 's/CPU time.*//'
done; done
echo "== new, no gelu"; taskset -c 2 bin/gemm_new --shapes '128,3072,768;197,3072,768' --threads 1 --reps 30 --copies 8 2>&1 | grep -E '^M|rt512 ' | sed 's/CPU time.*//'
