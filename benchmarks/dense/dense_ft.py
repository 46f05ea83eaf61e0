"""Ground truth for the dense benchmark: a short fine-tune of a light head on a *frozen* backbone.

Both trainers read the backbone's multi-stride maps once (``advisor.dense.backbones.feature_maps``, the same taps
and normalisation the pixel probe uses) and train only the head on those cached maps: no augmentation, so the
frozen backbone's features are identical at every step and caching changes nothing but the cost.

- Segmentation: per stride a 1x1 conv to `SEG_CH` channels, bilinear upsampling to the stride-8 grid, sum, ReLU,
  3x3 conv, ReLU, 1x1 classifier, bilinear upsampling to the mask size; cross-entropy (ignore index honoured);
  held-out mIoU from one confusion matrix (`advisor.metrics.segmentation.SegmentationConfusion`).
- Detection: torchvision's FCOS parts (anchor generator, a 2-conv `FCOSHead`, its loss and post-processing with
  NMS) over a trainable `FeaturePyramidNetwork` (+ P6/P7) on the backbone taps; held-out COCO mAP / AP50 by
  `advisor.metrics.detection.detection_metrics` (faster-coco-eval).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from advisor.dense.backbones import DenseBackbone, feature_maps, image_tensor
from advisor.dense.types import DenseDataset, DenseSample, Detections

SEG_CH = 64
DET_CH = 96


@dataclass
class TrainSettings:
    """Same for every backbone: steps, batch, learning rate, seed."""

    steps: int
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "batch": self.batch,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "optimizer": "AdamW, constant lr",
        }


def cache_maps(
    bb: DenseBackbone, samples: list[DenseSample], size: tuple[int, int]
) -> list[list[torch.Tensor]]:
    """Per sample, the backbone's tapped maps (each ``(C, h, w)``) of the image resized to `size` = (H, W)."""
    out = []
    for s in samples:
        with Image.open(s.path) as im:
            x = image_tensor([im.convert("RGB")], size, bb.mean, bb.std)
        out.append([m[0].detach().cpu().clone() for m in feature_maps(bb, x)])
    return out


# ------------------------------------------------------------------------------------------------ segmentation
class SegDecoder(nn.Module):
    """1x1 conv per stride → upsample to the finest tap → sum → 3x3 conv → classifier."""

    def __init__(self, channels: list[int], num_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, SEG_CH, 1) for c in channels)
        self.fuse = nn.Conv2d(SEG_CH, SEG_CH, 3, padding=1)
        self.cls = nn.Conv2d(SEG_CH, num_classes, 1)

    def forward(self, maps: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        size = maps[0].shape[-2:]
        acc = sum(
            F.interpolate(lat(m), size=size, mode="bilinear", align_corners=False)
            for lat, m in zip(self.lateral, maps, strict=True)
        )
        z = self.cls(F.relu(self.fuse(F.relu(acc))))
        return F.interpolate(z, size=out_size, mode="bilinear", align_corners=False)


def train_segmenter(
    maps: list[list[torch.Tensor]],
    masks: list[np.ndarray],
    num_classes: int,
    ignore_index: int,
    cfg: TrainSettings,
) -> tuple[SegDecoder, dict[str, Any]]:
    """Train a `SegDecoder` on cached maps; returns it and ``{seconds, final_loss}``."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dec = SegDecoder([m.shape[0] for m in maps[0]], num_classes)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    targets = [torch.from_numpy(m.astype(np.int64)) for m in masks]
    t0 = time.perf_counter()
    losses = []
    dec.train()
    for _ in range(cfg.steps):
        idx = rng.choice(len(maps), size=min(cfg.batch, len(maps)), replace=False)
        batch = [torch.stack([maps[i][k] for i in idx]) for k in range(len(maps[0]))]
        y = torch.stack([targets[i] for i in idx])
        loss = F.cross_entropy(dec(batch, tuple(y.shape[-2:])), y, ignore_index=ignore_index)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return dec, {"seconds": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-20:]))}


def eval_segmenter(
    dec: SegDecoder, maps: list[list[torch.Tensor]], masks: list[np.ndarray], ds: DenseDataset
) -> dict[str, Any]:
    """Held-out metrics (one confusion matrix over the images) of `dec`."""
    from advisor.metrics.segmentation import SegmentationConfusion

    conf = SegmentationConfusion(ds.num_classes, ds.ignore_index, list(ds.classes))
    dec.eval()
    with torch.inference_mode():
        for m, t in zip(maps, masks, strict=True):
            pred = dec([x[None] for x in m], t.shape).argmax(1)[0].numpy()
            conf.update(pred, t)
    return conf.result().to_dict() | {"matrix": conf.matrix.tolist()}


# ------------------------------------------------------------------------------------------------ detection
def build_fcos_parts(channels: list[int], num_classes: int) -> tuple[nn.Module, Any]:
    """A trainable FPN (+P6/P7) over the taps and a torchvision FCOS carrying the 2-conv head and its loss."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.ops import FeaturePyramidNetwork
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    fpn = FeaturePyramidNetwork(channels, DET_CH, extra_blocks=LastLevelP6P7(DET_CH, DET_CH))
    holder = nn.Module()
    holder.out_channels = DET_CH  # type: ignore[assignment]  # FCOS only reads this attribute
    head = FCOSHead(DET_CH, 1, num_classes, num_convs=2)
    fcos = FCOS(holder, num_classes, head=head, score_thresh=0.05, nms_thresh=0.6, detections_per_img=100)
    return fpn, fcos


def _pyramid(fpn: nn.Module, batch: list[torch.Tensor]) -> list[torch.Tensor]:
    from collections import OrderedDict

    return list(fpn(OrderedDict((str(i), m) for i, m in enumerate(batch))).values())


def _head_pass(
    fpn: nn.Module, fcos: Any, maps: list[list[torch.Tensor]], idx: list[int], size: tuple[int, int]
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor], Any]:
    from torchvision.models.detection.image_list import ImageList

    batch = [torch.stack([maps[i][k] for i in idx]) for k in range(len(maps[0]))]
    feats = _pyramid(fpn, batch)
    head_out = fcos.head(feats)
    images = ImageList(torch.zeros(len(idx), 3, *size), [size] * len(idx))
    anchors = fcos.anchor_generator(images, feats)
    return head_out, anchors, feats, images


def det_targets(samples: list[DenseSample], size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """Boxes scaled to the working size (H, W), boxes under 1 px per side dropped."""
    h, w = size
    out = []
    for s in samples:
        scale = np.array([w / s.width, h / s.height, w / s.width, h / s.height], dtype=np.float32)
        b = s.boxes.astype(np.float32) * scale
        keep = ~s.crowd_mask() & ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        out.append(
            {"boxes": torch.from_numpy(b[keep]), "labels": torch.from_numpy(s.labels[keep].astype(np.int64))}
        )
    return out


def train_detector(
    maps: list[list[torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    num_classes: int,
    size: tuple[int, int],
    cfg: TrainSettings,
) -> tuple[tuple[nn.Module, Any], dict[str, Any]]:
    """Train the FPN + FCOS head on cached maps; returns ``((fpn, fcos), {seconds, final_loss})``."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    fpn, fcos = build_fcos_parts([m.shape[0] for m in maps[0]], num_classes)
    params = list(fpn.parameters()) + list(fcos.head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    fpn.train()
    fcos.train()
    losses = []
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        idx = [int(i) for i in rng.choice(len(maps), size=min(cfg.batch, len(maps)), replace=False)]
        head_out, anchors, feats, _im = _head_pass(fpn, fcos, maps, idx, size)
        n_per_level = [f.size(2) * f.size(3) for f in feats]
        parts = fcos.compute_loss([targets[i] for i in idx], head_out, anchors, n_per_level)
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        losses.append(loss.item())
    return (fpn, fcos), {"seconds": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-20:]))}


def predict_detector(
    parts: tuple[nn.Module, Any],
    maps: list[list[torch.Tensor]],
    samples: list[DenseSample],
    size: tuple[int, int],
) -> dict[str, Detections]:
    """Detections per sample id, boxes scaled back to the image's own pixels."""
    fpn, fcos = parts
    fpn.eval()
    fcos.eval()
    out: dict[str, Detections] = {}
    h, w = size
    with torch.inference_mode():
        for i, s in enumerate(samples):
            head_out, anchors, feats, images = _head_pass(fpn, fcos, maps, [i], size)
            n = [f.size(2) * f.size(3) for f in feats]
            split = {k: list(v.split(n, dim=1)) for k, v in head_out.items()}
            det = fcos.postprocess_detections(split, [list(a.split(n)) for a in anchors], images.image_sizes)[
                0
            ]
            scale = np.array([s.width / w, s.height / h, s.width / w, s.height / h], dtype=np.float32)
            out[s.id] = Detections(
                det["boxes"].numpy().astype(np.float32) * scale,
                det["scores"].numpy().astype(np.float32),
                det["labels"].numpy().astype(np.int64),
            )
    return out
