"""The PyTorch modules the Python-package tests compile with kiln and compare against.

Built deterministically from a seed, so the export step (make_models.py) and every test
process construct identical weights.
"""
import torch
from torch import nn


class SmallCnn(nn.Module):
    """conv-bn-relu-pool, conv-relu, global average pool, linear: [batch, 3, 16, 16] → [batch, 10]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


class TwoInOut(nn.Module):
    """Two inputs, two outputs, named weights: (relu(fc(x)) * scale, its row sums)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x, scale):
        h = torch.relu(self.fc(x)) * scale
        return h, h.sum(dim=1)


def small_cnn():
    torch.manual_seed(0)
    m = SmallCnn()
    with torch.no_grad():  # non-trivial batch-norm statistics
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
    return m.eval()


def two_in_out():
    torch.manual_seed(1)
    return TwoInOut().eval()


def export(module, path, inputs, input_names, output_names):
    dynamic = {name: {0: "batch"} for name in input_names + output_names}
    torch.onnx.export(module, inputs, path, input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic, opset_version=17)


def export_all(out_dir):
    """Writes cnn.onnx and two_in_out.onnx (dynamic "batch" dim) into out_dir."""
    import os
    export(small_cnn(), os.path.join(out_dir, "cnn.onnx"), (torch.randn(2, 3, 16, 16),),
           ["x"], ["logits"])
    export(two_in_out(), os.path.join(out_dir, "two_in_out.onnx"),
           (torch.randn(2, 6), torch.randn(2, 1)), ["x", "scale"], ["h", "total"])
