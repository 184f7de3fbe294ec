"""A detection post-processing head in PyTorch for computed_shapes_check.py --torch: scores
over a threshold, per-class NMS with torchvision.ops.nms (classes kept apart by offsetting
boxes, as torchvision's batched_nms does), k = min(K, number kept) computed as torchvision's
_topk_min exports it (ReduceMin over a Concat of K and the kept count), TopK, then boxes,
scores and labels gathered by the winners. Exported with torch.onnx.export (opset 17); the
references are PyTorch's outputs for the same inputs."""
import os

import numpy as np
import torch
import torchvision


class DetectionHead(torch.nn.Module):
    def __init__(self, topk=10, score_thresh=0.3, iou_thresh=0.5):
        super().__init__()
        self.topk, self.score_thresh, self.iou_thresh = topk, score_thresh, iou_thresh

    def forward(self, boxes, scores):  # boxes [N, 4] (x1, y1, x2, y2), scores [N, C]
        n, c = scores.shape
        flat = scores.t().reshape(-1)  # class-major: [C * N]
        labels = torch.arange(c).unsqueeze(1).expand(c, n).reshape(-1)
        cand = boxes.repeat(c, 1)
        keep = torch.where(flat > self.score_thresh)[0]
        s, b, lab = flat[keep], cand[keep], labels[keep]
        offsets = lab.to(b) * 1000.0  # boxes lie in [0, 130]: classes never overlap
        kept = torchvision.ops.nms(b + offsets[:, None], s, self.iou_thresh)
        ks = s[kept]
        # torchvision.models.detection._utils._topk_min, traced
        count = torch._shape_as_tensor(ks)[0].unsqueeze(0)
        k = torch.min(torch.cat((torch.tensor([self.topk], dtype=count.dtype), count), 0))
        top, order = ks.topk(k)
        win = kept[order]
        return b[win], top, lab[win]


def cases(out_dir, rng):
    """Yields (name, model path, runs) for computed_shapes_check.run_model."""
    name = "torch_detection_head"
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    n, c = 60, 4
    head = DetectionHead().eval()

    def inputs(hi):
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(5, 30, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        return boxes, rng.uniform(0.0, hi, (n, c)).astype(np.float32)

    boxes, scores = inputs(1.0)
    with torch.no_grad():
        torch.onnx.export(head, (torch.from_numpy(boxes), torch.from_numpy(scores)), path,
                          opset_version=17, input_names=["boxes", "scores"],
                          output_names=["det_boxes", "det_scores", "det_labels"])
    runs = []
    for hi in [1.0, 0.31, 0.2]:  # k = K, k < K, nothing above the threshold (k = 0)
        boxes, scores = inputs(hi)
        with torch.no_grad():
            ref = head(torch.from_numpy(boxes), torch.from_numpy(scores))
        want = {k: v.numpy() for k, v in zip(["det_boxes", "det_scores", "det_labels"], ref)}
        runs.append(({"boxes": boxes, "scores": scores}, want))
    yield name, path, runs
