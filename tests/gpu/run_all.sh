#!/usr/bin/env bash
# The GPU-machine test run (one call of the device tool). Everything is prebuilt here by
# tests/gpu/pack.sh into build/gpu-carry/carry.tar.xz: the kiln compiler and runtime (+ CUDA
# plugin), the Debian libraries they need, dlpack.h and the ONNX node test data. Models are
# compiled there (its 16 cores and nvcc), run on the H200 and checked; reports go to $OUT.
#   tests/gpu/run_all.sh [libs] [stress] [kernels] [conformance] [models] [autotune] [python]
#   [cpuhost] [cpuconf] [cpubench] [cpuprofile] [cpuspread] [sanitizer]
#   (default: all; KILN_GPU_AUTOTUNE=1 makes models also autotune ResNet-50 and BERT)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/kiln-gpu-out}
W=/tmp/kiln-gpu
mkdir -p "$W/conf" "$OUT"
sum=$(md5sum build/gpu-carry/carry.tar.xz | cut -c1-32)
if [[ $(cat "$W/carry.md5" 2>/dev/null) != "$sum" ]]; then # a warm machine keeps /tmp
  xz -dc build/gpu-carry/carry.tar.xz | tar xf - -C "$W"
  mkdir -p "$W/data" && tar xf "$W/node.tar" -C "$W/data"
  echo "$sum" >"$W/carry.md5"
fi
cuda=/usr/local/cuda-13.0
export LD_LIBRARY_PATH=$W/lib:$cuda/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export KILN_RT_LIB_DIR=$W/lib KILN_NVCC=$cuda/bin/nvcc CPATH=$W/include KILN_CACHE_DIR=$W/cache
# The CPU benchmarks' CPUs: KILN_BENCH_CPUS, else two CPUs of distinct physical cores (not
# core 0, which takes most interrupts).
benchCpus() {
  echo "${KILN_BENCH_CPUS:-$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u |
    sed -n '2,3p' | cut -d, -f1 | paste -sd,)}"
}
steps=("$@")
((${#steps[@]})) || steps=(libs stress kernels conformance models autotune python sanitizer)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for step in "${steps[@]}"; do
  echo "== $step"
  case $step in
  libs)
    "$W/bin/libs_check" >"$OUT/libs_check.json" 2>"$OUT/libs_check.err"
    echo "libs_check rc=$? $(grep -o '"failed": [0-9]*' "$OUT/libs_check.json")"
    ;;
  stress)
    # 8 threads running asynchronously on their own streams while weights swap (rt_smoke).
    cp "$W"/lib/libkiln_rt*.so* "$W/smoke/" 2>/dev/null
    sh "$W/smoke/rt_smoke.sh" "$W/smoke" >"$OUT/rt_smoke.json" 2>&1
    echo "rt_smoke rc=$? $(head -c 600 "$OUT/rt_smoke.json")"
    ;;
  conformance)
    python3 tests/conformance/run_conformance.py --kiln "$W/bin/kiln" --data "$W/data" \
      --folders "${KILN_CONF_FOLDERS:-node,pytorch-converted,pytorch-operator,simple}" --device cuda --cuda-arch sm_90 --variant static -j 16 --kiln-jobs 1 \
      ${KILN_CONF_FILTER:+--filter "$KILN_CONF_FILTER"} --tmp "$W/conf" --report "$OUT/conformance-cuda.md" --json "$OUT/conformance-cuda.json" \
      >"$OUT/conformance.log" 2>&1
    echo "conformance rc=$?"
    tail -n 15 "$OUT/conformance.log"
    ;;
  kernels)
    python3 tests/gpu/check_kernels.py --kiln "$W/bin/kiln" --out "$W/kernels" \
      --json "$OUT/kernels.json" 2>"$OUT/kernels.err"
    echo "kernels rc=$? $(tail -n 1 "$OUT/kernels.err")"
    ;;
  models)
    python3 tests/gpu/check_models.py --kiln "$W/bin/kiln" --out "$W/models" --bench \
      ${KILN_GPU_AUTOTUNE:+--autotune} \
      --json "$OUT/models.json" ${KILN_GPU_MODELS:+--only $KILN_GPU_MODELS} 2>"$OUT/models.err"
    echo "models rc=$?"
    tail -n 5 "$OUT/models.err"
    ;;
  autotune)
    # --autotune on a dynamic-batch model, per-bucket run-time selection, numerics vs numpy.
    python3 tests/gpu/check_autotune.py --kiln "$W/bin/kiln" --out "$W/autotune" \
      --json "$OUT/autotune.json" >"$OUT/autotune.log" 2>&1
    echo "autotune rc=$? $(grep -E '^(compile|autotune check)' "$OUT/autotune.log" | tr '\n' ' ')"
    ;;
  python)
    # The Python package with CUDA tensors (built there for its Python; see the script).
    bash tests/gpu/check_python.sh "$W" "$OUT/python.json" >"$OUT/python.log" 2>&1
    echo "python rc=$? $(head -c 600 "$OUT/python.json")"
    ;;
  cpuconf)
    # kiln's CPU conformance (both suites, both variants, per-test expected-pass lists) on
    # this machine's 16 cores: the same gate as ctest's conformance.* here.
    mkdir -p "$W/o121" && tar xzf tests/conformance/data/onnx-node-v1.21.0.tgz -C "$W/o121"
    # KILN_CPUCONF_RUNS: runs separated by ';' (default: all four).
    IFS=';' read -ra runs <<<"${KILN_CPUCONF_RUNS:-debian dynamic;debian static;onnx-1.21 static;onnx-1.21 dynamic --min-opset 22}"
    for run in "${runs[@]}"; do
      set -- $run
      data=$W/data; [[ $1 == onnx-1.21 ]] && data=$W/o121
      python3 tests/conformance/run_conformance.py --suite "$1" --variant "$2" ${3:-} ${4:-} \
        -j 16 --kiln "$W/bin/kiln" --data "$data" --cache-dir "$W/conf-cache" \
        --expected tests/conformance >"$OUT/cpuconf-$1-$2.log" 2>&1
      echo "cpu conformance $1 $2 rc=$? $(grep -E '^(static|dynamic): ' "$OUT/cpuconf-$1-$2.log")"
      grep -A12 '^FAIL' "$OUT/cpuconf-$1-$2.log" | cut -c1-300
    done
    ;;
  cpubench)
    # #12's CPU comparison on this machine's quiet host CPU, pinned to KILN_BENCH_CPUS: the
    # models travel as skeletons (bench/skeleton.py) and get random weights of the same
    # sizes and spread back; ORT through its Python package. A baseline kiln packed with
    # KILN_PACK_BASELINE (an older build) joins the same alternation as a before/after.
    python3 bench/skeleton.py restore "$W/bench-skel" "$W/bench-models" 2>"$OUT/cpubench.log"
    base=()
    if [[ -x $W/baseline/bin/kiln ]]; then
      # That build looks for its runtime and headers where it was built: put them there.
      while IFS='=' read -r from to; do
        mkdir -p "$(dirname "$from")" && ln -sfn "$W/baseline/$to" "$from"
      done <"$W/baseline/paths.txt"
      base=(--baseline-kiln "$W/baseline/bin/kiln" --baseline-label "${KILN_BENCH_BASE_LABEL:-before}")
    elif [[ -n ${KILN_BENCH_BASE_ENV:-} ]]; then
      # Or the same kiln with switches off (space-separated VAR=VALUE): an on/off A/B.
      for kv in $KILN_BENCH_BASE_ENV; do base+=(--baseline-env "$kv"); done
      base+=(--baseline-label "${KILN_BENCH_BASE_LABEL:-switches off}")
    fi
    # Extra `kiln compile` arguments (space-separated), e.g. --cpu=x86-64-v3 with
    # ONEDNN_MAX_CPU_ISA=AVX2 in the environment: kiln's AVX2 paths on this host.
    for arg in ${KILN_BENCH_COMPILE_ARGS:-}; do base+=(--compile-arg="$arg"); done
    cpus=$(benchCpus)
    lscpu -e >>"$OUT/cpubench.log"; echo "pinned to CPUs $cpus" | tee -a "$OUT/cpubench.log"
    python3 bench/compare.py --kiln "$W/bin/kiln" --ort python --cpus "$cpus" \
      --models-dir "$W/bench-models" --work-dir "$W/bench" "${base[@]}" \
      --models "${KILN_BENCH_MODELS:-resnet50,resnet18,mobilenet_v2,encoder,bert_base,bert_base_b8,vit_b16,gpt2}" \
      --threads "${KILN_BENCH_THREADS:-1,2}" --runs "${KILN_BENCH_RUNS:-10}" --warmup 3 --rounds "${KILN_BENCH_ROUNDS:-3}" \
      --json-out "$OUT/cpubench.json" >"$OUT/cpubench.md" 2>>"$OUT/cpubench.log"
    echo "cpubench rc=$?"; tail -n 30 "$OUT/cpubench.md"; tail -n 5 "$OUT/cpubench.log"
    ;;
  cpuprofile)
    # kiln's and ORT's profilers side by side on the same pinned CPUs (bench/profile_models.py).
    python3 bench/skeleton.py restore "$W/bench-skel" "$W/bench-models" 2>"$OUT/cpuprofile.log"
    cpus=$(benchCpus)
    python3 bench/profile_models.py --kiln "$W/bin/kiln" --models-dir "$W/bench-models" \
      --work-dir "$W/profile" --out "$W/profile-out" --cpus "$cpus" \
      --models "${KILN_BENCH_MODELS:-resnet50,mobilenet_v2,bert_base,gpt2}" \
      --runs "${KILN_BENCH_RUNS:-10}" >>"$OUT/cpuprofile.log" 2>&1
    echo "cpuprofile rc=$?"; tail -n 10 "$OUT/cpuprofile.log"
    # One archive: the device tool brings back only a few files per call.
    tar czf "$OUT/profile.tgz" -C "$W/profile-out" $(cd "$W/profile-out" && ls *.md *.ort.json)
    ;;
  cpuspread)
    # Each runtime's latency process after process (bench/latency_spread.py): kiln's model.so
    # for this CPU, kiln's AVX2 paths, ORT's Python package, pinned like cpubench.
    python3 bench/skeleton.py restore "$W/bench-skel" "$W/bench-models" 2>"$OUT/cpuspread.log"
    cpus=$(benchCpus)
    python3 bench/latency_spread.py --kiln "$W/bin/kiln" --ort python --cpus "$cpus" \
      --models-dir "$W/bench-models" --work-dir "$W/spread" \
      --models "${KILN_BENCH_MODELS:-mobilenet_v2,resnet18}" \
      --threads "${KILN_BENCH_THREADS:-1,2}" --reps "${KILN_BENCH_ROUNDS:-4}" \
      --json-out "$OUT/cpuspread.json" >"$OUT/cpuspread.md" 2>>"$OUT/cpuspread.log"
    echo "cpuspread rc=$?"; cat "$OUT/cpuspread.md"; tail -n 5 "$OUT/cpuspread.log"
    ;;
  microbench)
    # oneDNN's GEMMs at transformer shapes and the 3x3 convs, with its ISA as found and capped
    # at AVX2 (a lower AVX-512 frequency licence can cost more than the wider vectors give).
    cpu1=$(benchCpus)
    for isa in default AVX2; do
      envs=(); [[ $isa == AVX2 ]] && envs=(ONEDNN_MAX_CPU_ISA=AVX2)
      echo "-- oneDNN ISA $isa" >>"$OUT/microbench.txt"
      env "${envs[@]}" taskset -c "$cpu1" "$W/bin/kiln_gemm_bench" --threads 1,2 --reps 20 \
        --shapes "${KILN_GEMM_SHAPES:-128,3072,768;128,768,3072;128,768,768;1024,3072,768}" \
        >>"$OUT/microbench.txt" 2>&1
      env "${envs[@]}" taskset -c "$cpu1" "$W/bin/kiln_conv_bench" --threads 1 --reps 10 \
        >>"$OUT/microbench.txt" 2>&1
    done
    # The GEMV's panels a step (gemv_avx512.cpp takes the count that wins on Zen 5: two).
    [[ -x $W/bin/kiln_gemv_streams ]] && taskset -c "$cpu1" "$W/bin/kiln_gemv_streams" \
      >>"$OUT/microbench.txt" 2>&1
    echo "microbench rc=$?"; tail -n 60 "$OUT/microbench.txt"
    ;;
  cpuhost)
    # The CPU backend on this machine's host CPU (another x86 than the build box).
    python3 tests/gpu/check_cpu_host.py "$W/bin/kiln" "$W/cpuhost" "$OUT/cpuhost.json" \
      >"$OUT/cpuhost.log" 2>&1
    echo "cpuhost rc=$?"; grep -v Warning "$OUT/cpuhost.log" | tail -n 20
    ;;
  sanitizer)
    # memcheck and racecheck on a compiled model through the CLI (inputs from the suite).
    t=$W/data/node/test_softmax_example
    so=$W/sanitize.so
    "$W/bin/kiln" compile "$t/model.onnx" -o "$so" --device cuda --cuda-arch sm_90 &&
      python3 -c "
import numpy as np, onnx
from onnx import numpy_helper
t = onnx.load_tensor('$t/test_data_set_0/input_0.pb'); np.save('$W/x.npy', numpy_helper.to_array(t))"
    for tool in memcheck racecheck; do
      $cuda/bin/compute-sanitizer --tool $tool --error-exitcode 3 "$W/bin/kiln" run "$so" \
        --input "x=$W/x.npy" >"$OUT/sanitizer-$tool.log" 2>&1
      echo "compute-sanitizer $tool rc=$? $(grep -E 'SUMMARY' "$OUT/sanitizer-$tool.log" | tail -1)"
    done
    # The models the models step compiled (run it first), on their real sizes.
    python3 -c "import numpy as np; np.save('$W/tok.npy', np.random.randint(0, 1000, (2, 16)));
np.save('$W/img.npy', np.random.rand(1, 3, 224, 224).astype(np.float32))"
    for m in encoder:tok resnet50:img mobilenet_v2:img; do
      so=$W/models/${m%%:*}/model.so
      [[ -f $so ]] || continue
      for tool in memcheck racecheck; do
        $cuda/bin/compute-sanitizer --tool $tool --error-exitcode 3 "$W/bin/kiln" run "$so" \
          --input "x=$W/${m##*:}.npy" >"$OUT/sanitizer-${m%%:*}-$tool.log" 2>&1
        echo "compute-sanitizer ${m%%:*} $tool rc=$? $(grep -E 'SUMMARY' \
          "$OUT/sanitizer-${m%%:*}-$tool.log" | tail -1)"
      done
    done
    ;;
  esac
done
