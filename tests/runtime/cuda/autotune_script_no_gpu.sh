#!/bin/sh
# tests/gpu/check_autotune.py on a machine without a GPU: the model is built and compiled,
# --autotune fails, and the script says so in its report with exit status 2 (on a machine
# with a GPU it may pass: 0). Usage: autotune_script_no_gpu.sh KILN CHECK_AUTOTUNE_PY WORK
set -u
kiln=$1 script=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
/usr/bin/python3 "$script" --kiln "$kiln" --out "$work/out" --json "$work/report.json"
rc=$?
[ $rc -eq 0 ] && exit 0
[ $rc -eq 2 ] || { echo "check_autotune.py exited $rc, want 2 (no GPU) or 0"; exit 1; }
/usr/bin/python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["compiles"]["heuristic"]["rc"] == 0, r["compiles"]["heuristic"]
assert r["ok"] is False and "kiln compile --autotune failed" in r["error"], r.get("error")
print("no GPU reported:", r["error"][:200])
PY
