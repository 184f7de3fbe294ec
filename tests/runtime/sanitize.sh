#!/bin/sh
# Builds the runtime and its C API tests with a sanitizer preset in their own tree and runs
# them there. Usage: sanitize.sh tsan|asan <source dir> <build dir> [kiln executable]
#   tsan: ThreadSanitizer on runtime.threads, runtime.concurrency, runtime.concurrency_static,
#         runtime.churn (containers created and destroyed while others run, swap and free)
#         (fake models: no OpenMP regions, whose uninstrumented libgomp would give false reports)
#   asan: AddressSanitizer + UBSan (+ LeakSanitizer) on runtime.api, runtime.constants,
#         runtime.concurrency*, runtime.churn, runtime.soak (20,000 runs; LeakSanitizer at
#         exit, and runtime.soak_leak_canary checks that it reports a leak), and the aot tests
#         (C host programs loading model.so files linked against this tree's runtime).
#         The models are compiled by the given kiln (the release tree's, KILN_PREBUILT_CLI):
#         building the compiler and the CLI here was four fifths of this tree's build, CI's
#         longest step. kiln itself runs under ASan + UBSan in the fuzz tree (tests/fuzz: the
#         importer, the code generators, the .npy reader, the C API).
set -eu
preset=$1 src=$2 build=$3 kiln=${4:-}
cmake -S "$src" -B "$build" --preset "$preset" -DKILN_SANITIZER_TREE=ON \
  -DKILN_PREBUILT_CLI="$kiln" >/dev/null
targets="kiln_rt kiln_fake_model kiln_fake_model_v99 kiln_fake_model_static kiln_fake_model_big
  kiln_runtime_api_test kiln_runtime_constants_test kiln_runtime_concurrency_test"
if [ "$preset" = asan ]; then
  [ -x "$kiln" ] || { echo "sanitize.sh asan: give a kiln executable (4th argument)" >&2; exit 2; }
  targets="$targets kiln_aot_test kiln_values_test kiln_types_test kiln_runtime_soak
    kiln_qkv_swap_test"
fi
# With the CUDA plugin: the mock-driver tests under TSan (runs pinning constants until their
# GPU work completes, while other threads swap and free them).
cuda=0
if [ "$preset" = tsan ] && cmake --build "$build" --target help | grep -q kiln_cuda_mock_test; then
  targets="$targets kiln_rt_cuda kiln_mock_cuda_driver kiln_cuda_mock_test"
  cuda=1
fi
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets
if [ "$preset" = tsan ]; then
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  tests='^runtime\.(threads|concurrency|concurrency_static|churn)$'
  [ "$cuda" = 1 ] && tests='^(runtime\.(threads|concurrency|concurrency_static|churn)|(CudaRun|CudaContainer)\..*)$'
else
  export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
  export ASAN_OPTIONS="allocator_may_return_null=1 detect_leaks=1"
  tests='^(runtime\.(api|version|constants|concurrency|concurrency_static|churn|soak|soak_leak_canary)|aot\..*)$'
fi
ctest --test-dir "$build" -R "$tests" --output-on-failure -j"$(nproc)"
