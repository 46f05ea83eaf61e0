"""Ground truth for the dense benchmark: a short fine-tune of a light head on a *frozen* backbone.

The trainers are the package's (`advisor.dense.finetune_heads`, also behind ``advisor recommend --finetune-top``
for dense tasks); this module only keeps the benchmark's step-count interface: a fixed number of steps, each on
`batch` images drawn without replacement independently of the other steps (``sampling="draw"``), so the figures
in ``RESULTS.md`` are reproduced by the same seeded draws.

- Segmentation: `SegDecoder` on the cached multi-stride maps, cross-entropy (ignore index honoured); held-out mIoU
  from one confusion matrix (`advisor.metrics.segmentation.SegmentationConfusion`).
- Detection: torchvision's FCOS parts over a trainable FPN (+ P6/P7) on the backbone taps; held-out COCO mAP / AP50
  by `advisor.metrics.detection.detection_metrics` (faster-coco-eval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advisor.dense.finetune_heads import (
    HeadTraining,
    SegDecoder,
    build_fcos_parts,
    cache_maps,
    det_targets,
    predict_detector,
    predict_segmenter,
)
from advisor.dense.finetune_heads import train_detector as _train_detector
from advisor.dense.finetune_heads import train_segmenter as _train_segmenter
from advisor.dense.types import DenseDataset

__all__ = [
    "SegDecoder",
    "TrainSettings",
    "build_fcos_parts",
    "cache_maps",
    "det_targets",
    "eval_segmenter",
    "predict_detector",
    "train_detector",
    "train_segmenter",
]


@dataclass
class TrainSettings:
    """Same for every backbone: steps, batch, learning rate, seed."""

    steps: int
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def head_training(self) -> HeadTraining:
        """The package's settings: `steps` steps of independent draws (an epoch bound that never binds)."""
        return HeadTraining(
            epochs=max(1, self.steps), batch=self.batch, lr=self.lr, weight_decay=self.weight_decay,
            seed=self.seed, max_steps=self.steps, sampling="draw",
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "batch": self.batch,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "optimizer": "AdamW, constant lr",
        }


def _info(log: Any) -> dict[str, Any]:
    return {"seconds": log.seconds, "final_loss": float(np.mean(log.losses[-20:]))}


def train_segmenter(
    maps: list[list[torch.Tensor]],
    masks: list[np.ndarray],
    num_classes: int,
    ignore_index: int,
    cfg: TrainSettings,
) -> tuple[Any, dict[str, Any]]:
    """Train a `SegDecoder` on cached maps; returns it and ``{seconds, final_loss}`` (mean of the last 20 steps)."""
    dec, log = _train_segmenter(maps, masks, num_classes, ignore_index, cfg.head_training())
    return dec, _info(log)


def eval_segmenter(
    dec: Any, maps: list[list[torch.Tensor]], masks: list[np.ndarray], ds: DenseDataset
) -> dict[str, Any]:
    """Held-out metrics (one confusion matrix over the images) of `dec`."""
    from advisor.metrics.segmentation import SegmentationConfusion

    conf = SegmentationConfusion(ds.num_classes, ds.ignore_index, list(ds.classes))
    for pred, t in zip(predict_segmenter(dec, maps, [m.shape for m in masks]), masks, strict=True):
        conf.update(pred, t)
    return conf.result().to_dict() | {"matrix": conf.matrix.tolist()}


def train_detector(
    maps: list[list[torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    num_classes: int,
    size: tuple[int, int],
    cfg: TrainSettings,
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """Train the FPN + FCOS head on cached maps; returns ``((fpn, fcos), {seconds, final_loss})``."""
    parts, log = _train_detector(maps, targets, num_classes, size, cfg.head_training())
    return parts, _info(log)
