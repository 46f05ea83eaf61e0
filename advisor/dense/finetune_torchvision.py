"""The "fine-tune its head" trainer for torchvision detectors and segmenters: new class layers, backbone frozen.

The model's class-scoring layers are replaced by new ones sized for the data's classes (detection: the data's
classes + a background class 0, the torchvision convention; segmentation: the data's class indices, background
included as the data has it), every parameter under ``net.backbone`` is frozen (kept in eval mode, so its
BatchNorm statistics do not move), and the rest (FPN, RPN, box/mask heads, the segmentation head) is trained with
the model's own loss. Prediction then goes through the model's own pre/post-processing (`TorchvisionDense`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advisor.dense.finetune_heads import Clock, HeadTraining, TrainLog, clipped_step, resize_mask, run_epochs
from advisor.dense.types import BOX_TASKS
from advisor.errors import UsageError

if TYPE_CHECKING:
    from advisor.dense.models_torchvision import TorchvisionDense
    from advisor.dense.types import DenseDataset, DenseSample

BACKGROUND = "__background__"


def _new_conv(old: nn.Conv2d, old_classes: int, new_classes: int, prior: float | None = None) -> nn.Conv2d:
    """`old` with its output resized from ``anchors * old_classes`` to ``anchors * new_classes`` channels."""
    per = old.out_channels // old_classes
    k, st, pad = old.kernel_size, old.stride, old.padding  # tuples of 2 for a Conv2d
    conv = nn.Conv2d(old.in_channels, per * new_classes, k, st, pad, bias=old.bias is not None)  # type: ignore[arg-type]
    nn.init.normal_(conv.weight, std=0.01)
    if conv.bias is not None:  # focal-loss heads start from a low foreground prior (RetinaNet, FCOS)
        nn.init.constant_(conv.bias, -math.log((1 - prior) / prior) if prior else 0.0)
    return conv.to(old.weight.device)


def _last_conv(seq: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the last Conv2d of `seq` (in forward order of a sequential head) and its attribute name."""
    names = [n for n, m in seq.named_modules() if isinstance(m, nn.Conv2d) and n]
    if not names:
        raise UsageError(f"no convolution found in {type(seq).__name__}")
    path, _, name = names[-1].rpartition(".")
    return (seq.get_submodule(path) if path else seq), name


def _swap_detection_head(net: Any, n: int) -> str:
    """Replace the class layers of a torchvision detector for `n` classes (background included); returns which."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    roi = getattr(net, "roi_heads", None)
    if roi is not None:  # Faster R-CNN
        roi.box_predictor = FastRCNNPredictor(roi.box_predictor.cls_score.in_features, n)
        return "roi_heads.box_predictor"
    cls_head = net.head.classification_head
    if hasattr(cls_head, "cls_logits"):  # RetinaNet, FCOS: sigmoid scores, focal loss
        old = cls_head.num_classes
        cls_head.cls_logits = _new_conv(cls_head.cls_logits, old, n, prior=0.01)
        cls_head.num_classes = n
        return "head.classification_head.cls_logits"
    if hasattr(cls_head, "module_list"):  # SSD, SSDlite: one scoring conv per feature map
        old = cls_head.num_columns
        for i, block in enumerate(cls_head.module_list):
            if isinstance(block, nn.Conv2d):
                cls_head.module_list[i] = _new_conv(block, old, n)
                continue
            parent, name = _last_conv(block)
            setattr(parent, name, _new_conv(getattr(parent, name), old, n))
        cls_head.num_columns = n
        return "head.classification_head.module_list"
    raise UsageError(
        f"{type(net).__name__}: no known class head to replace", hint="fine-tune a backbone instead"
    )


def _swap_segmentation_head(net: Any, n: int) -> str:
    """Replace the class layers of a torchvision segmenter for `n` classes; drops its auxiliary head."""
    net.aux_classifier = None
    head = net.classifier
    if hasattr(head, "low_classifier"):  # LR-ASPP
        head.low_classifier = _new_conv(head.low_classifier, head.low_classifier.out_channels, n)
        head.high_classifier = _new_conv(head.high_classifier, head.high_classifier.out_channels, n)
        return "classifier.low_classifier, classifier.high_classifier"
    parent, name = _last_conv(head)
    old = getattr(parent, name)
    setattr(parent, name, _new_conv(old, old.out_channels, n))
    return f"classifier (last conv, {name})"


def adapt_head(model: TorchvisionDense, classes: list[str]) -> dict[str, Any]:
    """Give `model` new class layers for `classes` and freeze its backbone (in place).

    Returns what was replaced and how many parameters are trained. Afterwards ``model.classes`` is the new label
    space (detection: ``__background__`` first, so label ``k + 1`` is the data's class ``k``).
    """
    net = model.net
    boxes = model.task in BOX_TASKS
    if boxes and model.task != "detection":
        raise UsageError(f"{model.model_id}: fine-tuning an instance segmenter's head is not supported")
    replaced = (
        _swap_detection_head(net, len(classes) + 1) if boxes else _swap_segmentation_head(net, len(classes))
    )
    net.to(model.device)
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    model.classes = [BACKGROUND, *classes] if boxes else list(classes)
    trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {"replaced": replaced, "frozen": "backbone", "trained_params": int(trained)}


def _train_mode(net: Any) -> None:
    net.train()
    net.backbone.eval()  # frozen: BatchNorm statistics stay as loaded


def _image(s: DenseSample) -> Any:
    from PIL import Image

    with Image.open(s.path) as im:
        return im.convert("RGB")


def train_torchvision(
    model: TorchvisionDense,
    train: DenseDataset,
    cfg: HeadTraining,
    clock: Clock,
    evaluate: Callable[[], float | None] | None = None,
) -> TrainLog:
    """Train `model` (after `adapt_head`) on `train` with its own loss; leaves it in eval mode."""
    torch.manual_seed(cfg.seed)
    net = model.net
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    samples = train.samples
    step_fn = _det_step if model.task in BOX_TASKS else _seg_step

    def step(idx: list[int]) -> float:
        _train_mode(net)
        return clipped_step(opt, step_fn(model, train, [samples[i] for i in idx]), params)

    def ev() -> float | None:
        net.eval()
        return evaluate() if evaluate is not None else None

    log = run_epochs(len(samples), step, cfg, clock, ev if evaluate is not None else None)
    net.eval()
    return log


def _det_step(model: TorchvisionDense, ds: DenseDataset, batch: list[DenseSample]) -> torch.Tensor:
    xs, targets = [], []
    for s in batch:
        arr = np.array(_image(s))
        xs.append(torch.from_numpy(arr).permute(2, 0, 1).float().div(255).to(model.device))
        b = s.boxes.astype(np.float32).reshape(-1, 4)
        keep = ~s.crowd_mask() & ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        targets.append(
            {
                "boxes": torch.from_numpy(b[keep]).to(model.device),
                "labels": torch.from_numpy(s.labels[keep].astype(np.int64) + 1).to(model.device),
            }
        )
    parts = model.net(xs, targets)
    return sum(parts.values())  # type: ignore[return-value]


def _seg_step(model: TorchvisionDense, ds: DenseDataset, batch: list[DenseSample]) -> torch.Tensor:
    from PIL import Image

    from advisor.dense.models_torchvision import IMAGENET_MEAN, IMAGENET_STD

    w, h = model.input_size
    xs, ys = [], []
    for s in batch:
        arr = np.asarray(_image(s).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        xs.append(torch.from_numpy((arr - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1).float())
        ys.append(torch.from_numpy(resize_mask(ds.read_mask(s), (h, w))))
    x = torch.stack(xs).to(model.device)
    y = torch.stack(ys).to(model.device)
    ignore = -100 if ds.ignore_index is None else int(ds.ignore_index)
    return F.cross_entropy(model.net(x)["out"], y, ignore_index=ignore)
