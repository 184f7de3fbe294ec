#!/usr/bin/env python3
"""bench/report.py's latency table from a hand-made compare.py result: the kiln/ORT column is
the ratio of the rounds' medians and the rounds column the lowest and highest single-round
ratio, so a reader sees how far the machine moved between rounds.

    bench_report_test.py   (exit 0: pass, 1: a check failed)
"""
import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import report  # noqa: E402


def row(threads, kiln_ms, ort_ms, ratios):
    return {"threads": threads, "kiln_median_ms": kiln_ms, "ort_median_ms": ort_ms,
            "kiln_over_ort": kiln_ms / ort_ms, "round_ratios": ratios,
            "kiln_peak_pct": 80.0, "ort_peak_pct": 70.0, "kiln_rss_mb": 100.0,
            "ort_rss_mb": 200.0}


def main():
    args = types.SimpleNamespace(rounds=3, runs=8, warmup=2, peak=240.0, peak_isa="avx512")
    results = [{"model": "m", "label": "Model", "flops": 2e9, "compile": None,
                "timings": [row(1, 86.0, 100.0, [0.91, 0.83, 0.86]),
                            row(2, 50.0, 50.0, [1.0]),
                            row(4, 40.0, 50.0, [])]}]
    lines = report.tables(results, args).splitlines()
    header = next(l for l in lines if l.startswith("| model | threads"))
    cells = lambda l: [c.strip() for c in l.strip("|").split("|")]
    col = cells(header).index("rounds")
    body = [cells(l) for l in lines if l.startswith("| Model |")]
    failures = []
    expect = [("0.86", "0.83-0.91"), ("1.00", "1.00"), ("0.80", "—")]
    for got, (ratio, rounds) in zip(body, expect):
        if got[col - 1] != ratio or got[col] != rounds:
            failures.append(f"threads {got[1]}: kiln/ORT {got[col - 1]!r}, rounds {got[col]!r}; "
                            f"expected {ratio!r}, {rounds!r}")
    if len(body) != 3 or any(len(b) != len(cells(header)) for b in body):
        failures.append(f"expected 3 rows of {len(cells(header))} cells: {body}")
    for f in failures:
        print("FAIL:", f)
    print("bench report table:", "FAIL" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
