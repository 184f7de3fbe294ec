#!/bin/sh
# The full soak of issue 11: 1,000,000 runs of the compat corpus's constants model with a
# constant swap every 1,000 runs; prints throughput and RSS after warm-up and at the end
# (tests/runtime/soak.c; CI runs 20,000 as runtime.soak). Usage: soak.sh <release build dir>
set -eu
build=${1:-build/release}
src=$(cd "$(dirname "$0")/../.." && pwd)
exec "$build/tests/runtime/kiln_runtime_soak" "$build/src/runtime/libkiln_rt.so" \
  "$src/tests/abi/compat/constants.so" 1000000 1000 4096
