"""Tuning files for tests: a template names kernels "@kernel_<N>" where a real file has the
tuning key (a hash of the loop IR, which changes with kiln's lowering); fill_template compiles
the model once with --keep-sources, reads each kernel's key from the comments of kernels.cu
("// kernel N from ... (tuning key K)") and writes the template with the keys filled in."""
import json
import os
import re
import subprocess


def kernel_keys(kiln, model, flags, work, env):
    """{kernel number: tuning key} of the model compiled with `flags` (a CUDA compile)."""
    out = os.path.join(work, "keys.so")
    p = subprocess.run([kiln, "compile", model, "-o", out, "--keep-sources"] + flags,
                       capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"kiln compile (for tuning keys) failed ({p.returncode}):\n"
                           f"{p.stdout}{p.stderr}")
    with open(os.path.join(out + ".src", "kernels.cu")) as f:
        cu = f.read()
    return {int(n): k for n, k in re.findall(r"^// kernel (\d+) from .*\(tuning key ([0-9a-f]{16})\)$",
                                             cu, re.MULTILINE)}


def fill_template(kiln, model, flags, template, out_json, work, env):
    """Writes `template` (a path) to out_json with "@kernel_<N>" keys replaced; returns the
    filled table."""
    keys = kernel_keys(kiln, model, flags, work, env)
    with open(template) as f:
        table = json.load(f)
    filled = {}
    for name, entry in table["kernels"].items():
        m = re.fullmatch(r"@kernel_(\d+)", name)
        if not m:
            filled[name] = entry
            continue
        n = int(m.group(1))
        if n not in keys:
            raise RuntimeError(f"{template}: {name}: the model has no kernel {n} "
                               f"(kernels: {sorted(keys)})")
        filled[keys[n]] = entry
    table["kernels"] = filled
    with open(out_json, "w") as f:
        json.dump(table, f, indent=1)
    return table
