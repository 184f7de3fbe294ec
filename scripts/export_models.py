#!/usr/bin/python3
"""Export the reference models kiln is tested and benchmarked on.

Run with Debian's interpreter (it sees numpy, onnx and torch):

    /usr/bin/python3 scripts/export_models.py [--out build/models] [--force]
                                              [--only resnet50,encoder]

Each model gets a directory holding:
  model.onnx          exported with torch.onnx.export, opset 17, constants folded
  input*_<name>.npy   sample inputs
  output*_<name>.npy  reference outputs for those inputs
  samples.json        which files belong together, plus the kiln compile flags
                      the model needs (tests/models/check_model.py reads it)

Weights are random with fixed seeds, so the files are reproducible on one machine.
References are computed by a float64 copy of the model and stored as float32, so
they do not inherit PyTorch's own fp32 rounding; the fp32-vs-fp64 error is printed
as a yardstick for the tolerance that tests use.

A model whose files all exist is skipped unless --force is given. Each model is
written to a temporary directory first and renamed into place, so an interrupted
run never leaves a half-written model behind.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn

OPSET = 17


# ----------------------------------------------------------------------------
# Encoder: a small transformer written out op by op. nn.TransformerEncoder is
# avoided on purpose: its inference fast path exports to odd, fused graphs.
# ----------------------------------------------------------------------------
class SelfAttention(nn.Module):
    def __init__(self, d_model, heads):
        super().__init__()
        assert d_model % heads == 0, "d_model must split evenly over heads"
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def split_heads(self, t, batch, seq):
        # [B, S, D] -> [B, H, S, Dh]
        return t.reshape(batch, seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        batch, seq = x.shape[0], x.shape[1]
        q = self.split_heads(self.q(x), batch, seq)
        k = self.split_heads(self.k(x), batch, seq)
        v = self.split_heads(self.v(x), batch, seq)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v)  # [B, H, S, Dh]
        ctx = ctx.transpose(1, 2).reshape(batch, seq, self.heads * self.head_dim)
        return self.out(ctx)


class EncoderLayer(nn.Module):
    """Post-norm layer: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

    def __init__(self, d_model, heads, d_ff):
        super().__init__()
        self.attn = SelfAttention(d_model, heads)
        self.norm1 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class Encoder(nn.Module):
    def __init__(self, vocab=1000, d_model=128, max_len=512, heads=4, d_ff=512, layers=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, d_ff) for _ in range(layers))
        self.head = nn.Linear(d_model, d_model)

    def forward(self, tokens):
        # Slicing by the runtime length puts Shape/Gather/Slice logic in the graph,
        # which is what the symbolic-shape machinery needs to be exercised on.
        seq = tokens.shape[1]
        x = self.tok(tokens) + self.pos[:, :seq]
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


# ----------------------------------------------------------------------------
# Model table
# ----------------------------------------------------------------------------
def make_cnn(name):
    import torchvision

    ctor = getattr(torchvision.models, name)
    return ctor(weights=None)


def cnn_spec(name):
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(1, 3, 224, 224, generator=gen)
    x2 = torch.randn(2, 3, 224, 224, generator=gen)
    return {
        "build": lambda: make_cnn(name),
        "input": "x",
        "output": "y",
        "dynamic_axes": {"x": {0: "batch"}, "y": {0: "batch"}},
        "compile_args": ["--dynamic", "batch=1:64"],
        # (file tag, input tensor); the first one is also the export example.
        "samples": [("", x1), ("2", x2)],
    }


def encoder_spec():
    gen = torch.Generator().manual_seed(1)
    t1 = torch.randint(0, 1000, (2, 9), generator=gen, dtype=torch.int64)
    t2 = torch.randint(0, 1000, (3, 17), generator=gen, dtype=torch.int64)
    t3 = torch.randint(0, 1000, (1, 128), generator=gen, dtype=torch.int64)
    return {
        "build": Encoder,
        "input": "tokens",
        "output": "y",
        "dynamic_axes": {"tokens": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}},
        "compile_args": ["--dynamic", "batch=1:64", "--dynamic", "seq=1:512"],
        # b1s128 is the benchmark shape.
        "samples": [("", t1), ("2", t2), ("_b1s128", t3)],
    }


SPECS = {
    "resnet50": lambda: cnn_spec("resnet50"),
    "mobilenet_v2": lambda: cnn_spec("mobilenet_v2"),
    "encoder": encoder_spec,
}


def sample_files(spec):
    files = []
    for tag, _ in spec["samples"]:
        files.append(f"input{tag}_{spec['input']}.npy")
        files.append(f"output{tag}_{spec['output']}.npy")
    return files


def expected_files(spec):
    return ["model.onnx", "samples.json"] + sample_files(spec)


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def export_one(name, spec, out_dir):
    torch.manual_seed(0)
    model = spec["build"]().eval()
    model64 = copy.deepcopy(model).double()
    in_name, out_name = spec["input"], spec["output"]

    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    example = spec["samples"][0][1]
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            os.path.join(tmp, "model.onnx"),
            input_names=[in_name],
            output_names=[out_name],
            dynamic_axes=spec["dynamic_axes"],
            opset_version=OPSET,
            do_constant_folding=True,
        )
    export_s = time.perf_counter() - t0

    samples = []
    for tag, inp in spec["samples"]:
        with torch.no_grad():
            ref64 = model64(inp.double() if inp.is_floating_point() else inp)
            ref32 = model(inp)
        ref = ref64.float().numpy()
        in_file = f"input{tag}_{in_name}.npy"
        out_file = f"output{tag}_{out_name}.npy"
        np.save(os.path.join(tmp, in_file), inp.numpy())
        np.save(os.path.join(tmp, out_file), ref)
        err = rel_l2(ref32.numpy(), ref64.numpy())
        print(f"  {name}: sample{tag or '1'} {in_name}{list(inp.shape)} -> "
              f"{out_name}{list(ref.shape)}; torch fp32 vs fp64 rel L2 = {err:.2e}")
        samples.append({"inputs": {in_name: in_file}, "outputs": {out_name: out_file}})

    manifest = {
        "model": "model.onnx",
        "inputs": [in_name],
        "outputs": [out_name],
        "compile_args": spec["compile_args"],
        "samples": samples,
    }
    with open(os.path.join(tmp, "samples.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return export_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/models", help="output directory")
    ap.add_argument("--force", action="store_true", help="re-export existing models")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(SPECS))
    args = ap.parse_args()

    names = [n for n in args.only.split(",") if n] or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}")

    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    total0 = time.perf_counter()
    for name in names:
        spec = SPECS[name]()
        out_dir = os.path.join(args.out, name)
        have = all(os.path.exists(os.path.join(out_dir, f)) for f in expected_files(spec))
        if have and not args.force:
            print(f"{name}: up to date in {out_dir} (use --force to re-export)")
            continue
        t0 = time.perf_counter()
        export_s = export_one(name, spec, out_dir)
        print(f"{name}: exported in {export_s:.1f} s, total {time.perf_counter() - t0:.1f} s "
              f"-> {out_dir}")
    print(f"done in {time.perf_counter() - total0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
