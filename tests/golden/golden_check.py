#!/usr/bin/env python3
"""Golden tests of generated C++: compile an ONNX model with `kiln compile --keep-sources`
and match the sources in <out>.so.src/ against a FileCheck-like .check file.

Check file syntax (one directive per line; '#' starts a comment line):
  FLAGS: <extra kiln compile arguments>
  TUNING: <template.json>        compile with --tuning-file made from this template (next to
                                 the .check file; "@kernel_<N>" keys, see tuning_template.py)
  FILE: kernels | cuda | wrapper which source the following directives look at
                                 (kernels = all kernels_*.cpp concatenated; cuda =
                                 kernels.cu of a --device cuda model)
  CHECK: <regex>                 must match after the previous CHECK's match (in order)
  CHECK-NOT: <regex>             must match nowhere in the file
  CHECK-COUNT-<n>: <regex>       must match exactly n times in the file
Regexes are Python `re` with MULTILINE.

Usage: golden_check.py <kiln> <model.onnx> <file.check> <workdir>
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys


def main():
    kiln, model, check, work = sys.argv[1:5]
    directives, flags, tuning = [], [], None
    with open(check) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = re.match(r"^(FLAGS|TUNING|FILE|CHECK|CHECK-NOT|CHECK-COUNT-(\d+)):\s?(.*)$", line)
            if not m:
                print(f"{check}:{lineno}: bad directive: {line}")
                return 2
            if m.group(1) == "FLAGS":
                flags += shlex.split(m.group(3))
            elif m.group(1) == "TUNING":
                tuning = os.path.join(os.path.dirname(os.path.abspath(check)), m.group(3).strip())
            else:
                directives.append((lineno, m.group(1), m.group(3)))

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    out = os.path.join(work, "model.so")
    env = dict(os.environ, KILN_CACHE_DIR=os.path.join(work, "cache"))
    if tuning:
        from tuning_template import fill_template
        tuned = os.path.join(work, "tuning.json")
        fill_template(kiln, model, flags, tuning, tuned, work, env)
        flags += ["--tuning-file", tuned]
    p = subprocess.run([kiln, "compile", model, "-o", out, "--keep-sources"] + flags,
                       capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        print(f"kiln compile failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return 1
    src = out + ".src"
    kernels = sorted(glob.glob(os.path.join(src, "kernels_*.cpp")))
    texts = {
        "kernels": "".join(open(k).read() for k in kernels),
        "wrapper": open(os.path.join(src, "wrapper.cpp")).read(),
    }
    cu = os.path.join(src, "kernels.cu")
    if os.path.exists(cu):
        texts["cuda"] = open(cu).read()

    failures = 0
    current, text, pos = None, "", 0
    for lineno, kind, arg in directives:
        where = f"{os.path.basename(check)}:{lineno}"
        if kind == "FILE":
            if arg not in texts:
                print(f"{where}: unknown FILE {arg!r}")
                return 2
            current, text, pos = arg, texts[arg], 0
            continue
        if current is None:
            print(f"{where}: directive before any FILE")
            return 2
        rx = re.compile(arg, re.MULTILINE)
        if kind == "CHECK":
            m = rx.search(text, pos)
            if not m:
                left = text[pos:pos + 400]
                print(f"{where}: CHECK: {arg!r} not found in {current} after offset {pos}; "
                      f"text from there:\n{left}\n")
                failures += 1
            else:
                pos = m.end()
        elif kind == "CHECK-NOT":
            m = rx.search(text)
            if m:
                line = text.count("\n", 0, m.start()) + 1
                print(f"{where}: CHECK-NOT: {arg!r} matched in {current} line {line}: "
                      f"{m.group(0)!r}")
                failures += 1
        else:
            n = int(kind.rsplit("-", 1)[1])
            got = len(rx.findall(text))
            if got != n:
                print(f"{where}: {kind}: {arg!r} matched {got} times in {current}, want {n}")
                failures += 1
    if failures:
        print(f"--- {failures} check(s) failed; generated sources are in {src}")
        return 1
    print(f"ok: {len(directives)} directives")
    return 0


if __name__ == "__main__":
    sys.exit(main())
