"""kiln's CPU backend on the GPU machine's host CPU (a different x86 than the build box):
three small models (linears only, attention only, both) compiled there with `kiln compile`
(--cpu native and x86-64-v3) and run with `kiln run`, each against PyTorch on the CPU, also
with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA) to tell a library ISA path from kiln's own code.
Usage: check_cpu_host.py KILN WORKDIR OUT.json"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn


class Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(32, 96), nn.Linear(96, 16)

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))))


class Att(nn.Module):
    def forward(self, x):
        q, k, v = x, x * 0.5, x + 1.0
        return torch.softmax(q @ k.transpose(-1, -2) * 0.2, dim=-1) @ v


class Both(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.out = nn.Linear(32, 96), nn.Linear(32, 16)

    def forward(self, x):
        q, k, v = self.inp(x).chunk(3, dim=-1)
        return torch.relu(self.out(torch.softmax(q @ k.transpose(-1, -2) * 0.2, dim=-1) @ v))


def main():
    kiln, work, out = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(7, 10, 32)
    np.save(os.path.join(work, "x.npy"), x.numpy())
    rows = []
    for name, m in (("linears", Lin()), ("attention", Att()), ("both", Both())):
        m.eval()
        onnx_path = os.path.join(work, name + ".onnx")
        torch.onnx.export(m, (x,), onnx_path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, opset_version=17,
                          dynamo=False)
        with torch.no_grad():
            ref = m(x).double().numpy()
        for isa in ("native", "x86-64-v3"):
            so = os.path.join(work, f"{name}_{isa}.so")
            r = subprocess.run([kiln, "compile", onnx_path, "-o", so, "--cpu", isa, "--dynamic",
                                "b=1:16"], capture_output=True, text=True)
            if r.returncode:
                rows.append({"model": name, "cpu": isa, "error": r.stderr[-400:]})
                continue
            for env in ({}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
                        {"OMP_NUM_THREADS": "1"}):
                od = os.path.join(work, f"out_{name}_{isa}_{len(env)}")
                os.makedirs(od, exist_ok=True)
                r = subprocess.run([kiln, "run", so, "--input", f"x={work}/x.npy",
                                    "--output-dir", od], capture_output=True, text=True,
                                   env={**os.environ, **env})
                row = {"model": name, "cpu": isa, "env": env}
                if r.returncode:
                    row["error"] = r.stderr[-400:]
                else:
                    y = np.load(os.path.join(od, "y.npy")).astype(np.float64)
                    row["rel_l2"] = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
                    row["ok"] = row["rel_l2"] < 1e-5
                rows.append(row)
    ok = all(r.get("ok") for r in rows)
    with open(out, "w") as f:
        json.dump({"ok": ok, "cpu": open("/proc/cpuinfo").read().split("model name")[1]
                   .split("\n")[0], "rows": rows}, f, indent=1)
    for r in rows:
        print(json.dumps(r))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
