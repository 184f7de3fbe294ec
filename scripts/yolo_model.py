"""A small YOLO-style detector in plain torch, for scripts/export_models.py (`yolo`).

A few Conv-BatchNorm-SiLU layers make two feature maps (strides 8 and 16); a 1x1 conv per
level predicts, for each of 3 anchors per cell, box offsets, objectness and class logits.
Post-processing is done in the model, as YOLOv5 exports with NMS do:

  * decode: sigmoid, grid offsets from arange/meshgrid (the exporter turns them into
    constants, the image size being static), xy = (2 s - 0.5 + grid) * stride,
    wh = (2 s)^2 * anchor, then xyxy;
  * score = objectness * best class probability, label = that class;
  * a confidence threshold as a boolean mask, indices from nonzero;
  * class-aware NMS with torchvision.ops.batched_nms (exports NonMaxSuppression);
  * top-k with k = min(K, number kept), computed in the model from the kept count.

Outputs: boxes [n, 4] (x1, y1, x2, y2 in pixels), scores [n], labels [n] (int64), with n
decided by the image. Random weights; see model_specs.make_yolo for the calibration.
"""

import torch
import torch.nn as nn
import torchvision


class ConvBnSilu(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class TinyYolo(nn.Module):
    # Anchors in pixels (w, h) per level, as YOLOv5's P3 / P4 sets scaled to a small image.
    ANCHORS = ((10.0, 13.0, 16.0, 30.0, 33.0, 23.0), (30.0, 61.0, 62.0, 45.0, 59.0, 119.0))
    STRIDES = (8, 16)

    def __init__(self, num_classes=4, conf_thresh=0.45, iou_thresh=0.45, max_det=20):
        super().__init__()
        self.nc, self.na = num_classes, 3
        self.conf_thresh, self.iou_thresh, self.max_det = conf_thresh, iou_thresh, max_det
        self.stem = nn.Sequential(ConvBnSilu(3, 16, 3, 2), ConvBnSilu(16, 32, 3, 2),
                                  ConvBnSilu(32, 32, 3, 2))  # stride 8
        self.down = nn.Sequential(ConvBnSilu(32, 64, 3, 2), ConvBnSilu(64, 64, 3, 1))  # 16
        outs = self.na * (5 + num_classes)
        self.heads = nn.ModuleList([nn.Conv2d(32, outs, 1), nn.Conv2d(64, outs, 1)])
        for i, anchors in enumerate(self.ANCHORS):
            self.register_buffer(f"anchors{i}", torch.tensor(anchors).view(1, self.na, 1, 1, 2))

    def decode(self, p, level):
        """[1, na*(5+nc), H, W] -> [na*H*W, 5+nc] with xywh in pixels."""
        _, _, h, w = p.shape
        p = p.view(1, self.na, 5 + self.nc, h, w).permute(0, 1, 3, 4, 2).sigmoid()
        gy, gx = torch.meshgrid(torch.arange(h, dtype=p.dtype), torch.arange(w, dtype=p.dtype),
                                indexing="ij")
        grid = torch.stack((gx, gy), 2).view(1, 1, h, w, 2)
        stride = self.STRIDES[level]
        xy = (p[..., 0:2] * 2.0 - 0.5 + grid) * stride
        wh = (p[..., 2:4] * 2.0) ** 2 * getattr(self, f"anchors{level}")
        return torch.cat((xy, wh, p[..., 4:]), -1).view(-1, 5 + self.nc)

    def forward(self, image):  # [1, 3, H, W]
        f8 = self.stem(image)
        f16 = self.down(f8)
        pred = torch.cat([self.decode(head(f), i)
                          for i, (head, f) in enumerate(zip(self.heads, (f8, f16)))], 0)
        cls_score, label = (pred[:, 5:] * pred[:, 4:5]).max(1)
        cand = torch.nonzero(cls_score > self.conf_thresh).squeeze(1)
        xywh, score, label = pred[cand, :4], cls_score[cand], label[cand]
        boxes = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        keep = torchvision.ops.batched_nms(boxes, score, label, self.iou_thresh)
        # k = min(max_det, number kept), from the kept count's shape as torchvision's
        # _topk_min does, so the export computes it in the graph instead of baking it in.
        count = torch._shape_as_tensor(keep)[0].unsqueeze(0)
        k = torch.min(torch.cat((torch.tensor([self.max_det], dtype=count.dtype), count), 0))
        top, order = score[keep].topk(k)
        win = keep[order]
        return boxes[win], top, label[win]
