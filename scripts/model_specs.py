"""The models scripts/export_models.py exports (SPECS, TEST_MODELS): how each is built
(a small encoder, torchvision CNNs and detectors, transformer_models.py, yolo_model.py),
its input/output names, dynamic axes, sample inputs and the kiln compile flags it needs."""

import math

import torch
import torch.nn as nn

import transformer_models as tm

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


def bert_spec(config, samples):
    """HF BertModel-style: input_ids, attention_mask (1 attend / 0 pad), token_type_ids;
    outputs last_hidden_state and pooler_output; dynamic batch and sequence."""
    gen = torch.Generator().manual_seed(2)
    vocab = config.get("vocab", 30522)

    def sample(batch, seq, pad):
        ids = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int64)
        mask = torch.ones(batch, seq, dtype=torch.int64)
        if pad:  # ragged batch: later rows padded at the end
            for b in range(1, batch):
                mask[b, seq - (b * seq) // (2 * batch):] = 0
        types = torch.zeros(batch, seq, dtype=torch.int64)
        types[:, seq // 2:] = 1
        return (ids, mask, types)

    axes = {0: "batch", 1: "seq"}
    return {
        "build": lambda: tm.Bert(**config),
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "outputs": ["last_hidden_state", "pooler_output"],
        "dynamic_axes": {"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                         "last_hidden_state": axes, "pooler_output": {0: "batch"}},
        # seq up to the position table (longer inputs would index past it).
        "compile_args": ["--dynamic", "batch=1:64",
                         "--dynamic", f"seq=1:{config.get('max_pos', 512)}"],
        "samples": [(tag, sample(b, s, pad)) for tag, b, s, pad in samples],
    }


def vit_spec(config, batches):
    gen = torch.Generator().manual_seed(3)
    image = config.get("image", 224)
    return {
        "build": lambda: tm.Vit(**config),
        "inputs": ["pixel_values"],
        "outputs": ["logits"],
        "dynamic_axes": {"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        "compile_args": ["--dynamic", "batch=1:64"],
        "samples": [(tag, (torch.randn(b, 3, image, image, generator=gen),))
                    for tag, b in batches],
    }


def gpt2_spec(config, samples):
    gen = torch.Generator().manual_seed(4)
    vocab = config.get("vocab", 50257)
    axes = {0: "batch", 1: "seq"}
    return {
        "build": lambda: tm.Gpt2(**config),
        "inputs": ["input_ids"],
        "outputs": ["last_hidden_state"],
        "dynamic_axes": {"input_ids": axes, "last_hidden_state": axes},
        "compile_args": ["--dynamic", "batch=1:16",
                         "--dynamic", f"seq=1:{config.get('max_pos', 1024)}"],
        "samples": [(tag, (torch.randint(0, vocab, (b, s), generator=gen, dtype=torch.int64),))
                    for tag, b, s in samples],
    }


def make_detector(name):
    """A torchvision detector with random weights (no download), at 320x320 input, few
    classes, at most 50 detections. Freshly initialised, every BatchNorm has mean 0 and
    variance 1, so deep features flatten out and many boxes get the very same score (an
    order no two implementations need agree on); the BatchNorm statistics are therefore
    calibrated on two random images first, which gives distinct scores."""
    from torchvision.models import detection as D

    common = dict(weights=None, weights_backbone=None, num_classes=5)
    if name == "ssdlite":
        det = D.ssdlite320_mobilenet_v3_large(**common, detections_per_img=50)
    elif name == "ssd300":
        det = D.ssd300_vgg16(**common, detections_per_img=50)
    elif name == "retinanet":
        det = D.retinanet_resnet50_fpn(**common, min_size=320, max_size=320,
                                       score_thresh=0.005, detections_per_img=50)
    else:
        det = D.fasterrcnn_mobilenet_v3_large_320_fpn(**common, box_score_thresh=0.01,
                                                      box_detections_per_img=50)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for bn in det.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.reset_running_stats()
                bn.momentum = None  # a plain average over the calibration batch
        det.backbone.train()
        images = torch.rand(2, 3, 320, 320, generator=gen)
        if name == "fasterrcnn":
            # Calibrate on the images as the backbone sees them (after the transform's
            # normalisation). Calibrated on raw images instead, the last MobileNet blocks
            # amplify rounding so much (features: fp32 vs fp64 rel L2 4e-4) that PyTorch's
            # own fp32 and fp64 runs keep different RPN proposals (16 vs 17) and boxes
            # differ by rel L2 9e-3 (1 vs 2 threads: 4e-3). Calibrated like this: 4e-6,
            # the same 150 proposals, boxes 1.2e-7. (ssdlite and retinanet, already
            # well-conditioned enough, keep their calibration and references.)
            images = det.transform(list(images))[0].tensors
        det.backbone(images)
        # Scale the class logits' weights so that the scores spread over (0, 1) instead of
        # saturating at 1 (retinanet) or bunching at 1 / num_classes (fasterrcnn), chosen by
        # the gaps between neighbouring kept scores: at least 1e-5 for the test image.
        if name == "retinanet":
            det.head.classification_head.cls_logits.weight.mul_(0.2)
        elif name == "ssd300":  # VGG-16 without BatchNorm: nothing to calibrate
            for conv in det.head.classification_head.module_list:
                conv.weight.mul_(0.1)
        elif name == "fasterrcnn":
            det.roi_heads.box_predictor.cls_score.weight.mul_(3.0)
    return det.eval()


class DetectorOnTensor(nn.Module):
    """torchvision detectors take a list of images and return a list of dicts; this takes
    one [3, H, W] image and returns (boxes, scores, labels), as the ONNX export does."""

    def __init__(self, name):
        super().__init__()
        self.det = make_detector(name)

    def forward(self, image):
        out = self.det([image])[0]
        return out["boxes"], out["scores"], out["labels"]


def detection_spec(name):
    gen = torch.Generator().manual_seed(3)
    size = 300 if name == "ssd300" else 320  # SSD300 then needs no resize
    return {
        "build": lambda: DetectorOnTensor(name),
        "inputs": ["image"],
        "outputs": ["boxes", "scores", "labels"],
        "dynamic_axes": None,
        "compile_args": [],
        "samples": [("", (torch.rand(3, size, size, generator=gen),))],
        # Post-processing (score thresholds, NMS, top-k) decides in float32: a float64
        # copy could keep other boxes, so the reference is PyTorch's float32 run.
        "fp32_reference": True,
        # torchvision 0.14 exports roi_align (aligned=False, as MultiScaleRoIAlign uses)
        # with RoiAlign-10's pixel convention and no coordinate_transformation_mode; from
        # opset 16 the missing attribute means half_pixel, which shifts every sample by half
        # a pixel. Opset 15 keeps the export's meaning (checked against torchvision).
        "opset": 15 if name == "fasterrcnn" else OPSET,
    }


def make_yolo():
    """scripts/yolo_model.TinyYolo with random weights, BatchNorm calibrated on four random
    images (freshly initialised statistics flatten the features, as for make_detector).
    At the chosen thresholds the two random test images keep 17 and 20 (= max_det) boxes
    out of ~500 candidates, neighbouring scores at least 3e-5 apart, and PyTorch's fp32
    and fp64 runs keep the same boxes (rel L2 < 1e-7)."""
    import yolo_model

    det = yolo_model.TinyYolo()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in det.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.reset_running_stats()
                bn.momentum = None
        det.train()
        det.down(det.stem(torch.rand(4, 3, 128, 128, generator=gen)))
    return det.eval()


def yolo_spec():
    gen = torch.Generator().manual_seed(8)
    return {
        "build": make_yolo,
        "inputs": ["image"],
        "outputs": ["boxes", "scores", "labels"],
        "dynamic_axes": None,
        "compile_args": [],
        # Two random images (17 and 20 = max_det boxes kept) and a black one, whose best
        # score (0.425) is under the threshold (0.45): no box, NMS's empty-input branch.
        "samples": [(tag, (torch.rand(1, 3, 128, 128, generator=gen),)) for tag in ("", "2")]
        + [("3", (torch.zeros(1, 3, 128, 128),))],
        "fp32_reference": True,  # thresholds, NMS and top-k decide in float32
        # Unfolded, as exporters run without folding write it: the Reshape targets stay
        # Shape -> Gather -> Concat chains for kiln to compute.
        "constant_folding": False,
    }


BERT_TINY = dict(vocab=1000, hidden=64, layers=2, heads=4, ff=256, max_pos=128)
VIT_TINY = dict(image=32, patch=8, hidden=64, layers=2, heads=4, ff=256, classes=10)
GPT2_TINY = dict(vocab=1000, hidden=64, layers=2, heads=4, max_pos=128)
# One layer of BERT-base's width: its GEMMs take kiln's Strassen route on AVX2 (M >= 96 rows,
# N and K >= 768; src/runtime/gemm_strassen.h), which the tiny configs are too small for.
BERT_WIDE = dict(vocab=1000, hidden=768, layers=1, heads=12, ff=3072, max_pos=256)

SPECS = {
    "resnet50": lambda: cnn_spec("resnet50"),
    "mobilenet_v2": lambda: cnn_spec("mobilenet_v2"),
    "encoder": encoder_spec,
    # Small configs of the transformer families, for tests/models (seconds to check).
    "bert_tiny": lambda: bert_spec(BERT_TINY, [("", 2, 9, True), ("2", 3, 17, True),
                                               ("_b1s5", 1, 5, False)]),
    "vit_tiny": lambda: vit_spec(VIT_TINY, [("", 1), ("2", 3)]),
    "gpt2_tiny": lambda: gpt2_spec(GPT2_TINY, [("", 1, 7), ("2", 2, 19)]),
    # 128 rows, 97 (odd: the bottom half a row short; fc1 and Q/K/V take the route) and
    # 2 x 100 with padding.
    "bert_wide": lambda: bert_spec(BERT_WIDE, [("", 1, 128, False), ("2", 1, 97, False),
                                               ("3", 2, 100, True)]),
    # torchvision detectors (random weights; data-dependent output dims), for tests/models.
    "ssdlite": lambda: detection_spec("ssdlite"),
    "fasterrcnn": lambda: detection_spec("fasterrcnn"),
    "retinanet": lambda: detection_spec("retinanet"),
    "ssd300": lambda: detection_spec("ssd300"),
    "yolo": yolo_spec,  # a small YOLO-style detector written here (scripts/yolo_model.py)
    # Full-size models for bench/compare.py (hundreds of MB each; not used by tests).
    "resnet18": lambda: cnn_spec("resnet18"),
    "bert_base": lambda: bert_spec({}, [("_b1s128", 1, 128, False), ("_b8s128", 8, 128, True)]),
    "vit_b16": lambda: vit_spec({}, [("", 1)]),
    "gpt2": lambda: gpt2_spec({}, [("_s128", 1, 128)]),
}

# What tests/models exports (the full-size bench models are left out: they are large).
TEST_MODELS = ["resnet50", "mobilenet_v2", "encoder", "bert_tiny", "vit_tiny", "gpt2_tiny",
               "bert_wide"]
