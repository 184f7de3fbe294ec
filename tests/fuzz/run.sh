#!/bin/sh
# Runs one libFuzzer target of the fuzz tree at nice 19, seeding its corpus the first time
# (ONNX backend test data for the model and TensorProto readers, numpy-written files for
# .npy, names_seeds.py for names). Crashes land in <corpus dir>/artifacts/; the final stats
# line gives execs and coverage.
# Usage: run.sh <fuzz build dir> <import|tensor_proto|npy|sym|c_api|names> <seconds> [libFuzzer args]
# KILN_FUZZ_WORK: the folder of the corpora (default <fuzz build dir>/fuzz-corpus).
set -eu
build=$1 target=$2 secs=$3
shift 3
data=${KILN_FUZZ_DATA:-/usr/share/libonnx-testdata/data/node}
work=${KILN_FUZZ_WORK:-$build/fuzz-corpus}/$target
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
if [ -z "$(ls -A "$work/seeds")" ]; then
  case $target in
  import)
    for d in "$data"/*/; do cp "$d/model.onnx" "$work/seeds/$(basename "$d").onnx"; done ;;
  tensor_proto)
    for f in "$data"/*/test_data_set_0/input_0.pb; do
      cp "$f" "$work/seeds/$(basename "$(dirname "$(dirname "$f")")").pb"
    done ;;
  npy)
    /usr/bin/python3 - "$work/seeds" <<'PY'
import sys, numpy as np
d = sys.argv[1]
for i, a in enumerate([np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((), np.int64),
                       np.array([True, False]), np.array(["ab", "c"]), np.array([b"xyz"]),
                       np.ones((1, 0, 3), np.float16), np.arange(4, dtype=np.uint8)]):
    np.save(f"{d}/seed{i}.npy", a)
PY
    ;;
  names) /usr/bin/python3 "$(dirname "$0")/names_seeds.py" "$work/seeds" ;;
  sym | c_api) printf 'seed' >"$work/seeds/empty" ;;
  esac
fi
# c_api loads the compat corpus, whose NEEDED libkiln_rt.so (pre-SONAME builds) must resolve to
# this tree's runtime: LD_LIBRARY_PATH comes before the corpus's RUNPATH (a build folder that
# no longer exists), and the file found there is the one the target already loaded.
if [ "$target" = c_api ]; then
  LD_LIBRARY_PATH="$build/src/runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi
# names runs g++ on what it generates: tens of seconds per input on a loaded machine are
# not a finding.
maxlen=65536 timeout=30 slow=10
case $target in import) maxlen=1048576 ;; names) maxlen=4096 timeout=120 slow=120 ;; esac
# Long campaigns yield to other work (nice 19); the CI smoke (KILN_FUZZ_NICE=0) must not: at
# nice 19 beside ctest's other jobs an input got almost no CPU and hit the timeout.
exec nice -n "${KILN_FUZZ_NICE:-19}" "$build/tests/fuzz/kiln_fuzz_$target" -max_total_time="$secs" -rss_limit_mb=3072 \
  -max_len=$maxlen -timeout=$timeout -report_slow_units=$slow -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$work/seeds"
