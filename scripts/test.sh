#!/usr/bin/env bash
# Builds kiln and runs every test (ctest prints its summary last).
# Set KILN_TEST_LABEL_EXCLUDE to skip labels (e.g. "conformance" for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build build/release -j"$(nproc)"
export KILN_CACHE_DIR="${KILN_CACHE_DIR:-$PWD/build/kiln-cache}"
args=(--test-dir build/release --output-on-failure -j"$(nproc)")
if [[ -n "${KILN_TEST_LABEL_EXCLUDE:-}" ]]; then
  args+=(-LE "$KILN_TEST_LABEL_EXCLUDE")
fi
ctest "${args[@]}"
