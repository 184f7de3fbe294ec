#!/usr/bin/python3
"""Write the small models that live in git.

    /usr/bin/python3 scripts/make_example.py [--examples DIR] [--bench-models DIR]

  examples/tiny_cnn/   model.onnx, input_x.npy, output_y.npy, samples.json: a tiny
                       CNN on a [1,3,32,32] input `x`, softmax probabilities `y` [1,10].
  bench/models/        add16.onnx (y = a + b over [16] floats) with input_a.npy and
                       input_b.npy, for measuring per-call overhead.

Weights are random with fixed seeds. The reference output comes from a float64
copy of the model, stored as float32. Outputs are small enough to commit; rerun
only when the models change on purpose.
"""

import argparse
import copy
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 17


def make_tiny_cnn(out_dir):
    import torch
    import torch.nn as nn

    def conv_bn_relu(cin, cout, stride=1):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    class TinyCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn_relu(3, 16)
            self.block1 = conv_bn_relu(16, 32, stride=2)
            self.block2 = conv_bn_relu(32, 32)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = self.stem(x)
            x = self.block1(x)
            x = x + self.block2(x)  # residual
            x = self.pool(x)
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return torch.softmax(self.fc(x), dim=1)

    torch.manual_seed(0)
    model = TinyCnn()
    # Non-trivial running statistics, so folding BatchNorm actually changes numbers.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    model64 = copy.deepcopy(model).double()

    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    os.makedirs(out_dir, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (x,), os.path.join(out_dir, "model.onnx"),
                          input_names=["x"], output_names=["y"],
                          opset_version=OPSET, do_constant_folding=True)
        ref = model64(x.double()).float().numpy()
    np.save(os.path.join(out_dir, "input_x.npy"), x.numpy())
    np.save(os.path.join(out_dir, "output_y.npy"), ref)
    # Same manifest format as scripts/export_models.py, for tests/models/check_model.py.
    manifest = {"model": "model.onnx", "inputs": ["x"], "outputs": ["y"], "compile_args": [],
                "samples": [{"inputs": {"x": "input_x.npy"}, "outputs": {"y": "output_y.npy"}}]}
    with open(os.path.join(out_dir, "samples.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"tiny_cnn -> {out_dir}: y = {np.array2string(ref[0], precision=4)}")


def make_add16(out_dir):
    import onnx
    from onnx import TensorProto, helper

    vec = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [16])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")],
                              "add16", [vec("a"), vec("b")], [vec("y")])
    model = helper.make_model(graph, producer_name="kiln make_example.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # the newest IR that onnx 1.12's checker accepts
    onnx.checker.check_model(model)

    os.makedirs(out_dir, exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "add16.onnx"))
    a = np.arange(16, dtype=np.float32)
    b = np.full(16, 0.5, dtype=np.float32)
    np.save(os.path.join(out_dir, "input_a.npy"), a)
    np.save(os.path.join(out_dir, "input_b.npy"), b)
    np.save(os.path.join(out_dir, "output_y.npy"), a + b)
    print(f"add16 -> {out_dir}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", default=os.path.join(REPO, "examples"))
    ap.add_argument("--bench-models", default=os.path.join(REPO, "bench", "models"))
    args = ap.parse_args()
    make_tiny_cnn(os.path.join(args.examples, "tiny_cnn"))
    make_add16(args.bench_models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
