#!/usr/bin/python3
"""Export the reference models kiln is tested and benchmarked on.

Run with Debian's interpreter (it sees numpy, onnx and torch):

    /usr/bin/python3 scripts/export_models.py [--out build/models] [--force]
                                              [--only resnet50,encoder | --only tests]

Models: the CNNs (torchvision), a small encoder, and HF-style BertModel (input_ids,
attention_mask, token_type_ids; dynamic batch and sequence), ViT and GPT2Model written
in plain torch (scripts/transformer_models.py), each as a full-size model for benchmarks
(resnet18, bert_base, vit_b16, gpt2) and, for the transformers, a tiny config that
tests/models checks (bert_tiny, vit_tiny, gpt2_tiny). `--only tests` exports what the
tests use.

Each model gets a directory holding:
  model.onnx          exported with torch.onnx.export, opset 17, constants folded (not
                      for yolo: its Reshape targets stay computed from Shape)
  input*_<name>.npy   sample inputs
  output*_<name>.npy  reference outputs for those inputs
  samples.json        which files belong together, the kiln compile flags the
                      model needs (tests/models/check_model.py reads it) and each
                      sample's direct-method FLOPs (conv + matmul, for % of peak)

Weights are random with fixed seeds, so the files are reproducible on one machine.
References are computed by a float64 copy of the model and stored as float32, so
they do not inherit PyTorch's own fp32 rounding; the fp32-vs-fp64 error is printed
as a yardstick for the tolerance that tests use. The detectors (torchvision's ssdlite,
fasterrcnn, retinanet on one 3x320x320 image and ssd300 on one 3x300x300 image, and the
YOLO-style `yolo` of scripts/yolo_model.py on two 1x3x128x128 images; random weights;
outputs boxes, scores, labels with data-dependent counts) take PyTorch's float32 outputs
as reference instead, since thresholds, NMS and top-k decide in float32.

A model whose files all exist is skipped unless --force is given. Each model is
written to a temporary directory first and renamed into place, so an interrupted
run never leaves a half-written model behind.
"""

import argparse
import copy
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_specs import OPSET, SPECS, TEST_MODELS  # noqa: E402


def normalized(spec):
    """Specs with one input and output ("input", "output", tensor samples) as lists."""
    if "inputs" in spec:
        return spec
    spec = dict(spec, inputs=[spec["input"]], outputs=[spec["output"]])
    spec["samples"] = [(tag, (t,)) for tag, t in spec["samples"]]
    return spec


def sample_files(spec):
    files = []
    for tag, _ in spec["samples"]:
        files += [f"input{tag}_{n}.npy" for n in spec["inputs"]]
        files += [f"output{tag}_{n}.npy" for n in spec["outputs"]]
    return files


def expected_files(spec):
    return ["model.onnx", "samples.json"] + sample_files(spec)


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# Operators whose FLOPs count as the model's: convolutions and matrix products, counted
# by the direct method (2 x multiply-adds; Winograd or FFT would do fewer).
FLOP_OPS = ("aten::conv2d", "aten::convolution", "aten::addmm", "aten::mm", "aten::bmm",
            "aten::matmul", "aten::linear")


def direct_flops(model, inputs):
    """FLOPs of one forward pass, from PyTorch's profiler (conv and matmul ops only)."""
    from torch.profiler import profile

    with torch.no_grad(), profile(with_flops=True) as prof:
        model(*inputs)
    return int(sum(e.flops for e in prof.key_averages() if e.key in FLOP_OPS and e.flops))


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def export_one(name, spec, out_dir):
    torch.manual_seed(0)
    model = spec["build"]().eval()
    model64 = model if spec.get("fp32_reference") else copy.deepcopy(model).double()
    in_names, out_names = spec["inputs"], spec["outputs"]

    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    example = spec["samples"][0][1]
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            model,
            tuple(example),
            os.path.join(tmp, "model.onnx"),
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=spec["dynamic_axes"],
            opset_version=spec.get("opset", OPSET),
            do_constant_folding=spec.get("constant_folding", True),
        )
    export_s = time.perf_counter() - t0

    samples = []
    for tag, inputs in spec["samples"]:
        with torch.no_grad():
            refs32 = as_tuple(model(*inputs))
            refs64 = refs32 if spec.get("fp32_reference") else as_tuple(model64(
                *(t.double() if t.is_floating_point() else t for t in inputs)))
        entry = {"inputs": {}, "outputs": {}, "flops": direct_flops(model, inputs)}
        for n, t in zip(in_names, inputs):
            entry["inputs"][n] = f"input{tag}_{n}.npy"
            np.save(os.path.join(tmp, entry["inputs"][n]), t.numpy())
        for n, r64, r32 in zip(out_names, refs64, refs32):
            ref = r64.numpy() if r64.dtype == torch.int64 else r64.float().numpy()
            entry["outputs"][n] = f"output{tag}_{n}.npy"
            np.save(os.path.join(tmp, entry["outputs"][n]), ref)
            shapes = ", ".join(f"{i}{list(t.shape)}" for i, t in zip(in_names, inputs))
            if spec.get("fp32_reference"):
                print(f"  {name}: sample{tag or '1'} {shapes} -> {n}{list(ref.shape)}; "
                      f"reference: torch fp32")
                continue
            err = rel_l2(r32.numpy(), r64.numpy())
            print(f"  {name}: sample{tag or '1'} {shapes} -> {n}{list(ref.shape)}; "
                  f"torch fp32 vs fp64 rel L2 = {err:.2e}")
        samples.append(entry)

    manifest = {
        "model": "model.onnx",
        "inputs": in_names,
        "outputs": out_names,
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
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(SPECS)
                    + "; 'tests' = " + ",".join(TEST_MODELS))
    args = ap.parse_args()

    names = [n for n in args.only.split(",") if n] or list(SPECS)
    if names == ["tests"]:
        names = TEST_MODELS
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}")

    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    total0 = time.perf_counter()
    for name in names:
        spec = normalized(SPECS[name]())
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
