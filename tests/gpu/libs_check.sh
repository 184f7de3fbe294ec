#!/bin/sh
# Runs the CudaLibraries GPU check (kiln_gpu_libs_check) and prints its JSON report.
# Usage: tests/gpu/libs_check.sh [path/to/kiln_gpu_libs_check]
# The binary needs libcudart/libcublasLt (CUDA 13) and libcudnn.so.9 on the library path.
set -e
bin=${1:-build/release/tests/gpu/kiln_gpu_libs_check}
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
exec "$bin"
