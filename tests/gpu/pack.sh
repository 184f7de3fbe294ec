#!/usr/bin/env bash
# Packs what tests/gpu/run_all.sh needs on the GPU machine into build/gpu-carry/ (an ignored
# folder the device tool carries): the stripped kiln compiler and runtime libraries with the
# Debian libraries they need there, dlpack.h, and the ONNX node test data, xz-compressed.
set -euo pipefail
cd "$(dirname "$0")/../.."
b=build/release
out=build/gpu-carry
rm -rf "$out" && mkdir -p "$out/stage/lib" "$out/stage/bin" "$out/stage/include"
strip -o "$out/stage/bin/kiln" "$b/src/kiln"
for f in "$b"/src/runtime/libkiln_rt*.so* "$b"/src/runtime/cuda/libkiln_rt_cuda*.so*; do
  [[ -e $f ]] && strip -o "$out/stage/lib/$(basename "$f")" "$f"
done
# libkiln_rt's regex and image-decoding shims (level 6) need RE2 and the image libraries;
# Ubuntu ships some of them under other sonames.
for l in libonnx.so.1 libonnx_proto.so.1 libprotobuf.so.32 libfmt.so.9 libdnnl.so.2 \
  libOpenCL.so.1 libre2.so.9 libjpeg.so.62 libpng16.so.16 libtiff.so.6 libwebp.so.7 \
  libopenjp2.so.7 libLerc.so.4 libjbig.so.0 libdeflate.so.0; do
  cp -L "/usr/lib/x86_64-linux-gnu/$l" "$out/stage/lib/"
done
cp -r /usr/include/dlpack /usr/include/pybind11 "$out/stage/include/" # pybind11: check_python.sh
[[ -x $b/tests/gpu/kiln_gpu_libs_check ]] && strip -o "$out/stage/bin/libs_check" \
  "$b/tests/gpu/kiln_gpu_libs_check"
for h in "$b"/tests/gpu/*_host "$b"/tests/runtime/kiln_gpu_*; do
  [[ -x $h ]] && strip -o "$out/stage/bin/$(basename "$h")" "$h"
done
# The GEMM, GEMV and conv micro-benchmarks (bench/gemm, bench/conv) and XNNPACK's libraries
# they link.
for h in "$b"/bench/gemm/kiln_gemm_bench "$b"/bench/gemm/kiln_gemv_streams \
  "$b"/bench/conv/kiln_conv_bench; do
  [[ -x $h ]] && strip -o "$out/stage/bin/$(basename "$h")" "$h"
done
for l in libXNNPACK.so.0 libcpuinfo.so.0 libpthreadpool.so.0; do
  [[ -e /usr/lib/x86_64-linux-gnu/$l ]] && cp -L "/usr/lib/x86_64-linux-gnu/$l" "$out/stage/lib/"
done
# The runtime smoke test: a hand-written CUDA model and its host (8 threads, swaps).
smoke=$(find "$b/tests" -name libkiln_fake_cuda_model.so | head -1)
if [[ -n $smoke && -x $b/tests/gpu/fake_cuda_model/kiln_gpu_smoke_host ]]; then
  mkdir -p "$out/stage/smoke"
  cp "$smoke" "$b/tests/gpu/fake_cuda_model/kiln_gpu_smoke_host" tests/gpu/rt_smoke.sh \
    "$out/stage/smoke/"
fi
# bench/compare.py's models as skeletons (bench/skeleton.py strip, a few MB) for `cpubench`,
# and optionally a baseline kiln build (KILN_PACK_BASELINE=its build folder) with the runtime
# and headers it looks for at the absolute paths it was built with (paths.txt).
[[ -d build/bench-skel ]] && cp -r build/bench-skel "$out/stage/bench-skel"
if [[ -n ${KILN_PACK_BASELINE:-} ]]; then
  bb=$KILN_PACK_BASELINE
  mkdir -p "$out/stage/baseline/bin" "$out/stage/baseline/runtime"
  strip -o "$out/stage/baseline/bin/kiln" "$bb/src/kiln"
  for f in "$bb"/src/runtime/libkiln_rt*.so*; do
    [[ -e $f ]] && strip -o "$out/stage/baseline/runtime/$(basename "$f")" "$f"
  done
  src=$(cd "$bb/../.." && pwd)
  cp -r "$src/include" "$out/stage/baseline/include"
  cp "$src/src/runtime/model_entry.c" "$out/stage/baseline/"
  printf '%s=runtime\n%s=include\n%s=model_entry.c\n' "$(cd "$bb/src/runtime" && pwd)" \
    "$src/include" "$src/src/runtime/model_entry.c" >"$out/stage/baseline/paths.txt"
fi
tar cf - -C /usr/share/libonnx-testdata/data node pytorch-converted pytorch-operator simple \
  >"$out/stage/node.tar"
tar cf - -C "$out/stage" . | xz -T2 -6 > "$out/carry.tar.xz"
rm -rf "$out/stage"
ls -la "$out"
