#!/usr/bin/env bash
# Every CUDA kernel kiln generates for the test graphs must build with ptxas without
# register spills (a spill means local-memory traffic in the inner loop).
#   cuda_spill_check.sh KILN NVCC WORKDIR GOLDEN_MODELS_DIR NODE_TESTS_DIR
set -euo pipefail
kiln=$1 nvcc=$2 work=$3 golden=$4 node=$5
rm -rf "$work" && mkdir -p "$work"
export KILN_CACHE_DIR=$work/cache
models=("$golden"/*.onnx)
# A spread of node tests: every reduction and group shape the CUDA printer has.
for t in softmax_axis_0 softmax_large_number logsoftmax_axis_1 layer_normalization_4d_axis1 \
  reduce_sum_keepdims_random reduce_max_do_not_keepdims_random reduce_log_sum_exp_default_axes_keepdims_random \
  argmax_keepdims_random_select_last_index argmin_no_keepdims_random reduce_prod_default_axes_keepdims_random \
  instancenorm_example batchnorm_epsilon gather_elements_1 gathernd_example_int32 \
  scatter_elements_with_reduction_max scatternd_add transpose_all_permutations_2 \
  maxpool_2d_pads averagepool_2d_ceil lrn cumsum_2d_axis_1 einsum_batch_matmul \
  resize_upsample_sizes_cubic gelu_tanh_2 hardmax_axis_1 topk; do
  [[ -f $node/test_$t/model.onnx ]] && models+=("$node/test_$t/model.onnx")
done
fail=0
for m in "${models[@]}"; do
  name=$(basename "$(dirname "$m")")_$(basename "$m" .onnx)
  flags=()
  [[ $m == "$golden"/dynamic_batch.onnx || $m == "$golden"/matmul_bias_relu.onnx ]] &&
    flags=(--dynamic batch=1:64)
  if ! "$kiln" compile "$m" -o "$work/$name.so" --device cuda --cuda-arch sm_90 \
    --keep-sources "${flags[@]}" >"$work/$name.log" 2>&1; then
    if grep -q "no CUDA implementation\|not supported on cuda" "$work/$name.log"; then
      continue # refused by name: nothing to build
    fi
    echo "FAIL $name: kiln compile"; cat "$work/$name.log"; fail=1; continue
  fi
  cu=$work/$name.so.src/kernels.cu
  [[ -f $cu ]] || continue
  "$nvcc" -cubin -arch=sm_90 -O3 -std=c++17 --expt-relaxed-constexpr -I"$(dirname "$0")/../../include" \
    -Xptxas -v "$cu" -o "$work/$name.cubin" >"$work/$name.ptxas" 2>&1 || {
    echo "FAIL $name: nvcc"; cat "$work/$name.ptxas"; fail=1; continue; }
  spills=$(grep -E "[1-9][0-9]* bytes spill (stores|loads)" "$work/$name.ptxas" || true)
  n=$(grep -c "Compiling entry function" "$work/$name.ptxas" || true)
  if [[ -n $spills ]]; then
    echo "FAIL $name: register spills"; echo "$spills"; fail=1
  else
    echo "ok   $name: $n kernels, no spills"
  fi
done
exit $fail
