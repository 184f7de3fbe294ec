#!/bin/sh
# Packs what tests/gpu/rt_smoke.sh needs on the GPU machine into one folder (built here; the
# GPU machine builds nothing): the runtime, its CUDA plugin, oneDNN + OpenCL (not installed
# there), the fake CUDA model and its host. Usage: pack_rt_smoke.sh BUILD_DIR OUT_DIR
set -eu
build=$1
out=$2
mkdir -p "$out"
rt=$build/src/runtime
model=$(find "$build/tests" -name libkiln_fake_cuda_model.so | head -1)
for f in "$rt/libkiln_rt.so.1" "$rt/libkiln_rt_cuda.so" "$model" \
         "$build/tests/gpu/fake_cuda_model/kiln_gpu_smoke_host"; do
  cp "$f" "$out/"
  strip --strip-debug "$out/$(basename "$f")"
done
cp -L /usr/lib/x86_64-linux-gnu/libdnnl.so.2 /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 "$out/"
cp "$(dirname "$0")/rt_smoke.sh" "$out/"
du -sh "$out"
