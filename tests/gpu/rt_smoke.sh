#!/bin/sh
# GPU smoke test of the CUDA runtime, for the GPU machine; builds nothing. Expects the folder
# made by pack_rt_smoke.sh (default: this script's folder) and prints one JSON object:
#   smoke      the host's own JSON (values, swap, wrong-device error, timings)
#   sanitizer  compute-sanitizer memcheck of a short run, when the tool is there
#   gpu        nvidia-smi's name and driver
d=${1:-$(cd "$(dirname "$0")" && pwd)}
export LD_LIBRARY_PATH="/usr/local/cuda-13.0/targets/x86_64-linux/lib:$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset KILN_CUDA_DRIVER_MOCK
smoke=$("$d/kiln_gpu_smoke_host" 2000 2>&1)
rc=$?
case $smoke in
  \{*) ;;
  *) smoke=$(printf '{"ok": false, "output": "%s"}' "$(printf '%s' "$smoke" | tr '"\n' "' ")") ;;
esac
san=null
cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$cs" ]; then
  log=$(timeout 120 "$cs" --tool memcheck --error-exitcode 3 "$d/kiln_gpu_smoke_host" 20 2>&1)
  src=$?
  summary=$(printf '%s' "$log" | grep -m1 "ERROR SUMMARY" | tr '"' "'")
  san=$(printf '{"rc": %d, "summary": "%s"}' "$src" "$summary")
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
printf '{"rc": %d, "smoke": %s, "sanitizer": %s, "gpu": "%s"}\n' "$rc" "$smoke" "$san" "$gpu"
