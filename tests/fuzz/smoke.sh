#!/bin/sh
# CI smoke of the fuzz targets: builds the fuzz tree (clang-14, ASan + UBSan, -O1) and runs
# each target from its seed corpus alone for a fixed number of inputs (capped at `seconds`);
# fails on any crash, leak, timeout or sanitizer report. Cost on 2 cores: the tree's build
# (about as much as the asan tree) + about 6 minutes.
# Usage: smoke.sh <source dir> <fuzz build dir> [seconds=120]
#
# Deterministic on purpose: a fresh corpus folder, a fixed seed and a fixed input count make
# libFuzzer replay the same mutation sequence (the compiler side does not depend on the host
# CPU), so CI re-runs what was checked before landing, or a prefix of it on a slow machine.
# Address randomisation is turned off where the kernel lets us (setarch -R): with it on, the
# coverage of the same inputs differed between runs (hash orders of pointer keys), so two runs
# with one seed explored different inputs and CI met bugs the checked run had not. It catches
# regressions; finding new bugs is the long campaigns' job (tests/fuzz/run.sh,
# docs/reliability.md).
set -eu
src=$1 build=$2 secs=${3:-120}
cmake -S "$src" -B "$build" --preset fuzz >/dev/null
cmake --build "$build" -j"$(nproc)" --target kiln_fuzz_all
work=$build/fuzz-smoke
fixed_layout=
if setarch -R true 2>/dev/null; then fixed_layout="setarch -R"; fi
for t in import sym c_api tensor_proto npy names; do
  case $t in # about 60 s each on an idle 2-core machine
  import) runs=15000 ;; sym) runs=8000 ;; c_api) runs=30000 ;; tensor_proto) runs=50000 ;;
  npy) runs=3000 ;; names) runs=100 ;;
  esac
  echo "== fuzz smoke: $t ($runs inputs, at most $secs s)"
  rm -rf "${work:?}/$t/corpus" "$work/$t/artifacts"
  KILN_FUZZ_WORK=$work KILN_FUZZ_NICE=0 $fixed_layout "$src/tests/fuzz/run.sh" "$build" "$t" "$secs" -seed=1 -runs=$runs 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==|SUMMARY|terminate|  what)" || true
  # run.sh exits non-zero on a finding; re-check the artifacts it leaves.
  if [ -n "$(ls -A "$work/$t/artifacts" 2>/dev/null)" ]; then
    echo "fuzz smoke: $t left artifacts:" "$work/$t/artifacts"/*
    exit 1
  fi
done
