#!/bin/sh
# CI smoke of the fuzz targets: builds the fuzz tree (clang-14, ASan + UBSan, -O1) and runs
# each target for 60 s from its seed corpus; fails on any crash, leak, timeout or sanitizer
# report. Cost on 2 cores: the tree's build (about as much as the asan tree) + 6 minutes.
# Usage: smoke.sh <source dir> <fuzz build dir> [seconds=60]
set -eu
src=$1 build=$2 secs=${3:-60}
cmake -S "$src" -B "$build" --preset fuzz >/dev/null
cmake --build "$build" -j"$(nproc)" --target kiln_fuzz_all
for t in import sym c_api tensor_proto npy names; do
  echo "== fuzz smoke: $t ($secs s)"
  rm -rf "$build/fuzz-corpus/$t/artifacts"
  # A fixed seed: CI replays the mutation sequence checked before landing, so the smoke
  # catches regressions (in 60 s) without failing at random on a new deep finding; finding
  # new bugs is the long campaigns' job (tests/fuzz/run.sh, docs/reliability.md).
  "$src/tests/fuzz/run.sh" "$build" "$t" "$secs" -seed=1 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==|SUMMARY)" || true
  # run.sh exits non-zero on a finding; re-check the artifacts it leaves.
  if [ -n "$(ls -A "$build/fuzz-corpus/$t/artifacts" 2>/dev/null)" ]; then
    echo "fuzz smoke: $t left artifacts:" "$build/fuzz-corpus/$t/artifacts"/*
    exit 1
  fi
done
