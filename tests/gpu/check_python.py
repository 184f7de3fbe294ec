"""kiln's Python package with CUDA (run by check_python.sh on the GPU machine).

A small MLP-with-attention module is exported to ONNX, compiled with kiln.compile(device=
"cuda") and loaded with kiln.load(device="cuda"). Checks, each against PyTorch on the same GPU
in float32 (relative L2 < 1e-5: the model has a few hundred-term dot products):
CUDA tensors in and out through DLPack (torch.from_dlpack on the results, outputs on cuda),
two batch sizes of the dynamic dim, a CPU tensor given to the CUDA model is refused with a
message naming the device, and the same ONNX compiled for the CPU gives the same numbers.
"""
import json
import os
import sys

import torch
import torch.nn as nn

import kiln


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(32, 96)
        self.out = nn.Linear(32, 16)

    def forward(self, x):
        q, k, v = self.inp(x).chunk(3, dim=-1)
        p = torch.softmax(q @ k.transpose(-1, -2) * 0.2, dim=-1)
        return torch.relu(self.out(p @ v))


def rel_l2(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def main():
    work, out = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    m = Block().eval()
    onnx_path = os.path.join(work, "block.onnx")
    torch.onnx.export(m, (torch.randn(2, 10, 32),), onnx_path, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                      opset_version=17, dynamo=False)
    checks, ok = [], True
    gpu = kiln.compile(onnx_path, os.path.join(work, "block_cuda.so"), device="cuda",
                       cuda_arch="sm_90", dynamic={"b": (1, 16)})
    cpu = kiln.compile(onnx_path, os.path.join(work, "block_cpu.so"), dynamic={"b": (1, 16)})
    mc = m.cuda()
    for b in (1, 7):
        x = torch.randn(b, 10, 32, device="cuda")
        with torch.no_grad():
            ref = mc(x)
        (y,) = gpu.run(x)
        yt = torch.from_dlpack(y)
        (yc,) = cpu.run(x.cpu())
        e_gpu, e_cpu = rel_l2(yt, ref), rel_l2(torch.from_dlpack(yc), ref)
        good = yt.is_cuda and e_gpu < 1e-5 and e_cpu < 1e-5
        ok = ok and good
        checks.append({"batch": b, "on_cuda": yt.is_cuda, "rel_l2_cuda": e_gpu,
                       "rel_l2_cpu": e_cpu, "ok": good})
    try:
        gpu.run(torch.randn(2, 10, 32))
        refused = "accepted a CPU tensor"
    except kiln.KilnError as e:  # the C API's KILN_ERR_DEVICE, as an exception
        refused = str(e)
    good = "cuda" in refused.lower() or "device" in refused.lower()
    ok = ok and good and refused != "accepted a CPU tensor"
    checks.append({"cpu_tensor_on_cuda_model": refused[:300], "ok": good})
    # The same ONNX for this machine's CPU, per host ISA and thread count (each must match).
    x = torch.randn(7, 10, 32)
    with torch.no_grad():
        ref = m.cpu()(x)
    for isa in ("native", "x86-64-v3"):
        so = os.path.join(work, f"block_{isa}.so")
        import subprocess
        r = subprocess.run([kiln.find_compiler(), "compile", onnx_path, "-o", so, "--cpu", isa,
                            "--dynamic", "b=1:16"], capture_output=True, text=True)
        if r.returncode:
            checks.append({"cpu": isa, "ok": False, "error": r.stderr[-500:]})
            ok = False
            continue
        for threads in (1, 16):
            (yc,) = kiln.load(so, threads=threads).run(x)
            e = rel_l2(torch.from_dlpack(yc), ref)
            checks.append({"cpu": isa, "threads": threads, "rel_l2": e, "ok": e < 1e-5})
            ok = ok and e < 1e-5
    with open(out, "w") as f:
        json.dump({"ok": ok, "checks": checks}, f, indent=1)
    print(json.dumps({"ok": ok, "checks": checks}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
