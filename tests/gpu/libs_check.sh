#!/bin/sh
# Runs the CudaLibraries GPU check and prints its JSON report (exit 1 if a case fails).
#   tests/gpu/libs_check.sh [BINARY]   run a built kiln_gpu_libs_check
#                                      (default build/release/tests/gpu/kiln_gpu_libs_check)
#   tests/gpu/libs_check.sh --build    compile it first with g++ from this source tree (for a
#                                      GPU machine with the CUDA toolkit but no kiln build)
# Needs libcudart/libcublasLt (CUDA 13) and libcudnn.so.9; their usual folders are added to
# LD_LIBRARY_PATH.
set -e
cuda=${CUDA_HOME:-/usr/local/cuda}
[ -f "$cuda/include/cuda_runtime.h" ] || cuda=/usr/local/cuda-13.0
libdirs="$cuda/lib64 $cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu"
for d in $libdirs; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH

find_first() { # find_first NAME DIR... -> first DIR/NAME that exists
  n=$1; shift
  for d in "$@"; do [ -e "$d/$n" ] && { echo "$d/$n"; return; }; done
}

bin=${1:-build/release/tests/gpu/kiln_gpu_libs_check}
if [ "$1" = "--build" ]; then
  venv=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
  cudnn_h=$(find_first cudnn.h "$cuda/include" /usr/include /usr/include/x86_64-linux-gnu \
    $venv/cudnn/include)
  cudnn_so=$(find_first libcudnn.so.9 /usr/lib/x86_64-linux-gnu $cuda/lib64 $venv/cudnn/lib)
  lt_so=$(find_first libcublasLt.so.13 $libdirs)
  rt_so=$(find_first libcudart.so.13 $libdirs)
  # Last resort: wherever the machine keeps them.
  [ -n "$cudnn_h" ] || cudnn_h=$(find /usr /opt -name cudnn.h 2>/dev/null | head -n 1)
  [ -n "$cudnn_so" ] || cudnn_so=$(find /usr /opt -name libcudnn.so.9 2>/dev/null | head -n 1)
  [ -n "$lt_so" ] || lt_so=$(find /usr /opt -name libcublasLt.so.13 2>/dev/null | head -n 1)
  [ -n "$rt_so" ] || rt_so=$(find /usr /opt -name libcudart.so.13 2>/dev/null | head -n 1)
  echo "building with cudnn.h=$cudnn_h $cudnn_so $lt_so $rt_so" >&2
  mkdir -p build/gpu
  bin=build/gpu/kiln_gpu_libs_check
  g++ -std=c++20 -O2 -Wall -Wno-deprecated-declarations -Iinclude -Isrc/runtime/cuda \
    -I"$cuda/include" -I"$(dirname "$cudnn_h")" src/runtime/cuda/cuda_libraries.cpp \
    src/runtime/cuda/cuda_matmul.cpp src/runtime/cuda/cuda_conv.cpp tests/gpu/libs_check.cpp \
    "$lt_so" "$rt_so" "$cudnn_so" -o "$bin"
fi
exec "$bin"
