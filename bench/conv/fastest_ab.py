#!/usr/bin/python3
"""Same-run A/B of kiln configurations (and ONNX Runtime) by their fastest run.

On a shared 2-core box with a load average of 7-15 a run's wall time mostly measures how
often it was preempted, and medians move by 2x between rounds. The fastest of many runs is
the run that was least disturbed, so it is the steadiest figure there is on such a machine
(bench/sdpa reports the fastest call for the same reason). Configurations are environment
settings for `kiln bench`; rounds alternate them (and ORT through bench/ort_bench.js, same
inputs and threads). Printed per configuration: the fastest run over all rounds with its
ratio to the first configuration's, and the median over rounds of the paired per-round ratio
(this round's fastest / the first configuration's fastest in the same round), which is the
figure to quote when the load changes during the measurement.

  /usr/bin/python3 bench/conv/fastest_ab.py --kiln build/release/src/kiln --model M.so \\
      --input x=X.npy --config on: --config off:KILN_CONV_WINOGRAD=0 [--ort-model M.onnx] \\
      [--threads 1] [--rounds 4] [--runs 15]
"""
import argparse
import os
import re
import statistics
import subprocess


def fastest_ms(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    found = re.findall(r"\bmin\s+([0-9.]+)", out)
    if not found:
        raise SystemExit(f"no 'min' in the output of {' '.join(cmd)}:\n{out}")
    return float(found[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--config", action="append", required=True,
                    help="NAME:VAR=VALUE,VAR=VALUE (nothing after the colon: no change)")
    ap.add_argument("--ort-model", help="also time ONNX Runtime on this .onnx")
    ap.add_argument("--node", default="node")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    tail = ["--threads", str(args.threads), "--warmup", "3", "--runs", str(args.runs)]
    for i in args.input:
        tail += ["--input", i]
    configs = []
    for c in args.config:
        name, _, sets = c.partition(":")
        env = dict(os.environ)
        for kv in filter(None, sets.split(",")):
            k, _, v = kv.partition("=")
            env[k] = v
        configs.append((name, env, [args.kiln, "bench", args.model] + tail))
    if args.ort_model:
        ort = [args.node, os.path.join(here, "..", "ort_bench.js"), "--model", args.ort_model]
        configs.append(("ORT", dict(os.environ), ort + tail))
    best = {name: [] for name, _, _ in configs}
    for _ in range(args.rounds):
        for name, env, cmd in configs:
            best[name].append(fastest_ms(cmd, env))
    ref = best[configs[0][0]]
    for name, _, _ in configs:
        rounds = " ".join(f"{v:.2f}" for v in best[name])
        paired = statistics.median(v / r for v, r in zip(best[name], ref))
        print(f"{name:>10}: fastest {min(best[name]):8.2f} ms (per round {rounds}); "
              f"/ {configs[0][0]}: fastest {min(best[name]) / min(ref):.3f}, "
              f"median paired {paired:.3f}")


if __name__ == "__main__":
    main()
