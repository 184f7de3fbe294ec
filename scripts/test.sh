#!/usr/bin/env bash
# Builds kiln and runs every test (ctest prints its summary last).
# Set KILN_TEST_LABEL_EXCLUDE to skip labels (e.g. "conformance" for a quick run).
# Set KILN_TEST_BIG=1 to include the `big` label (minutes, ~5 GiB of disk).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build build/release -j"$(nproc)"
export KILN_CACHE_DIR="${KILN_CACHE_DIR:-$PWD/build/kiln-cache}"
args=(--test-dir build/release --output-on-failure -j"$(nproc)")
# The `big` label (> 2 GiB weights, bench/reliability) runs only with KILN_TEST_BIG=1.
exclude="${KILN_TEST_LABEL_EXCLUDE:-}"
if [[ "${KILN_TEST_BIG:-0}" != 1 ]]; then
  exclude="${exclude:+$exclude|}big"
fi
if [[ -n "$exclude" ]]; then
  args+=(-LE "$exclude")
fi
ctest "${args[@]}"
