#!/usr/bin/env python3
"""Puts kiln's per-kernel profile beside ONNX Runtime's per-node profile of the same model.

    python3 bench/profile_compare.py --kiln-trace K.json --ort-profile O.json [--top 30]

K.json: `kiln bench --profile-trace K.json` (Chrome trace: one "run" event per run, one event
per kernel or library call with its ONNX node(s) as "origin"). O.json: `bench/ort_bench.py
--profile-out O.json` (mean us per run per ORT node). Prints markdown: time per class
(kiln: library function or generated kernels; ORT: op type) and kiln's costliest call sites
with the ORT node of the same name beside them. ORT renames nodes it fuses, so a kiln site
matches the ORT node whose name equals one of its origins, else none ("-").
"""

import argparse
import collections
import json


def kiln_sites(path):
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    runs = sum(1 for e in events if e.get("cat") == "run") or 1
    sites = collections.defaultdict(lambda: {"us": 0.0, "name": "", "origin": ""})
    for e in events:
        if e.get("cat") not in ("kernel", "extern"):
            continue
        a = e.get("args", {})
        s = sites[a.get("site", e["name"])]
        s["us"] += float(e["dur"]) / runs
        s["name"] = e["name"] if e["cat"] == "extern" else "generated kernels"
        s["origin"] = a.get("origin", "")
    return sites


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln-trace", required=True)
    ap.add_argument("--ort-profile", required=True)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    sites = kiln_sites(args.kiln_trace)
    with open(args.ort_profile) as f:
        ort_nodes = json.load(f)["nodes"]

    kiln_by_class = collections.Counter()
    for s in sites.values():
        kiln_by_class[s["name"]] += s["us"]
    ort_by_op = collections.Counter()
    for n in ort_nodes.values():
        ort_by_op[n["op"]] += n["us"]
    print(f"kiln total {sum(kiln_by_class.values()) / 1e3:.2f} ms/run in kernels and calls; "
          f"ORT total {sum(ort_by_op.values()) / 1e3:.2f} ms/run in nodes\n")
    print("| kiln class | ms/run | | ORT op type | ms/run |\n| --- | ---: | --- | --- | ---: |")
    left, right = kiln_by_class.most_common(), ort_by_op.most_common()
    for i in range(max(len(left), len(right))):
        lk, lv = left[i] if i < len(left) else ("", None)
        rk, rv = right[i] if i < len(right) else ("", None)
        lms = f"{lv / 1e3:.3f}" if lv is not None else ""
        rms = f"{rv / 1e3:.3f}" if rv is not None else ""
        print(f"| {lk} | {lms} | | {rk} | {rms} |")

    print(f"\n| kiln call | ONNX node(s) | kiln ms | ORT node (op) | ORT ms |")
    print("| --- | --- | ---: | --- | ---: |")
    ranked = sorted(sites.values(), key=lambda s: -s["us"])[: args.top]
    for s in ranked:
        match = next((o for o in s["origin"].split() if o in ort_nodes), None)
        ort_txt = (f"{match} ({ort_nodes[match]['op']}) | {ort_nodes[match]['us'] / 1e3:.3f}"
                   if match else "- | -")
        print(f"| {s['name']} | {s['origin'][:60]} | {s['us'] / 1e3:.3f} | {ort_txt} |")


if __name__ == "__main__":
    main()
