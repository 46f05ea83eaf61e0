"""Trainers of the dense fine-tunes on a frozen backbone: a segmentation decoder or an FCOS detection head.

Both read the backbone's multi-stride maps once (`cache_maps`: `advisor.dense.backbones.feature_maps`, the taps and
normalisation the pixel probe uses) and train only the head on those cached maps: no augmentation, so the frozen
backbone's features are the same at every step and caching changes the cost, not the result.

- Segmentation (`SegDecoder`): per stride a 1x1 conv to `SEG_CH` channels, bilinear upsampling to the finest tap,
  sum, ReLU, 3x3 conv, ReLU, 1x1 classifier, bilinear upsampling to the mask size; cross-entropy with the ignore
  index honoured.
- Detection: torchvision's FCOS parts (anchor generator, a 2-conv `FCOSHead`, its focal + GIoU + centerness loss and
  its post-processing with NMS) over a trainable `FeaturePyramidNetwork` (+ P6/P7) on the backbone taps.

The training loop (`run_epochs`) is shared: seeded batches (a permutation per epoch, or an independent draw per
step as `benchmarks/dense` records), AdamW at a constant learning rate, an optional step cap and a wall-clock
budget checked before every step, so a run stops cleanly between two steps. (Imported only where a fine-tune
runs — `advisor.dense.finetune`, ``benchmarks/dense`` — since torch loads with it.)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from advisor.dense.backbones import DenseBackbone
    from advisor.dense.types import DenseSample, Detections

SEG_CH = 64
DET_CH = 96
GRAD_CLIP = 10.0  # detection: gradient-norm clip (FCOS's GIoU loss spikes on a random head)


def clipped_step(opt: Any, loss: Any, params: Any) -> float:
    """One optimiser step on `loss` with the gradient norm clipped to `GRAD_CLIP`; the loss as a float."""
    import torch

    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
    opt.step()
    return float(loss.item())


@dataclass(frozen=True)
class HeadTraining:
    """How a head is trained: the same for every model of a run.

    Attributes:
        epochs: passes over the training images (with ``sampling="draw"``: ``ceil(n / batch)`` steps each).
        batch: images per step.
        lr: AdamW learning rate (constant).
        weight_decay: AdamW weight decay.
        seed: seeds torch (head initialisation) and the batch order.
        max_steps: stop after this many steps (None: after `epochs`).
        sampling: ``epoch`` (a seeded permutation per epoch, cut into batches; a last batch of one image joins
            the one before) or ``draw`` (`batch` images drawn without replacement at every step, independently).
    """

    epochs: int = 3
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_steps: int | None = None
    sampling: str = "epoch"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the optimiser named."""
        return asdict(self) | {"optimizer": "AdamW, constant lr"}


class Clock:
    """Wall-clock budget of one fine-tune (None: no budget)."""

    def __init__(self, budget_s: float | None) -> None:
        self.budget_s = budget_s
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self.t0

    def spent(self) -> bool:
        """True once the budget is used up."""
        return self.budget_s is not None and self.elapsed() >= self.budget_s


@dataclass
class TrainLog:
    """What a training loop did: per-epoch history, steps, epochs completed, why it stopped, seconds."""

    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # every step's loss, in order
    steps: int = 0
    epochs_run: int = 0
    stopped_reason: str = "epochs"
    seconds: float = 0.0

    @property
    def final_loss(self) -> float | None:
        """Mean loss of the last epoch that ran (None: no step ran)."""
        return self.history[-1]["loss"] if self.history else None


def _batches(n: int, cfg: HeadTraining, rng: np.random.Generator) -> Iterator[list[int]]:
    """One epoch of batch indices."""
    b = min(cfg.batch, n)
    if cfg.sampling == "draw":
        for _ in range(-(-n // b)):
            yield [int(i) for i in rng.choice(n, size=b, replace=False)]
        return
    order = [int(j) for j in rng.permutation(n)]
    batches = [order[i : i + b] for i in range(0, n, b)]
    if len(batches) > 1 and len(batches[-1]) == 1:  # a lone image: BatchNorm in a trained head cannot take it
        batches[-2] += batches.pop()
    yield from batches


def run_epochs(
    n_train: int,
    step: Callable[[list[int]], float],
    cfg: HeadTraining,
    clock: Clock,
    evaluate: Callable[[], float | None] | None = None,
) -> TrainLog:
    """Run `step` (one optimiser step on the given training indices, returning its loss) for `cfg.epochs`.

    Stops early, between two steps, when `clock` is spent (``stopped_reason="budget"``) or after
    ``cfg.max_steps`` steps (``"max-steps"``). `evaluate` (the validation metric) runs after each completed
    epoch and is recorded in the history.
    """
    rng = np.random.default_rng(cfg.seed)
    log = TrainLog()
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        losses: list[float] = []
        t_ep = time.perf_counter()
        for idx in _batches(n_train, cfg, rng):
            if clock.spent():
                log.stopped_reason = "budget"
                break
            if cfg.max_steps is not None and log.steps >= cfg.max_steps:
                log.stopped_reason = "max-steps"
                break
            losses.append(step(idx))
            log.steps += 1
        log.losses += losses
        complete = log.stopped_reason == "epochs"
        if losses:
            rec: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)), "steps": len(losses)}
            rec |= {"complete": complete, "seconds": time.perf_counter() - t_ep}
            if complete and evaluate is not None:
                rec["val"] = evaluate()
            log.history.append(rec)
        if not complete:
            break
        log.epochs_run = epoch
    log.seconds = time.perf_counter() - t0
    return log


def cache_maps(
    bb: DenseBackbone,
    samples: list[DenseSample],
    size: tuple[int, int],
    clock: Clock | None = None,
) -> list[list[torch.Tensor]]:
    """Per sample, the backbone's tapped maps (each ``(C, h, w)``, on the CPU) of the image resized to `size` (H, W).

    Raises:
        TimeoutError: `clock` ran out before every image was read (the message says how far it got).
    """
    from PIL import Image

    from advisor.dense.backbones import feature_maps, image_tensor

    out = []
    for i, s in enumerate(samples):
        if clock is not None and clock.spent():
            raise TimeoutError(
                f"the time budget ran out while reading features ({i} of {len(samples)} images)"
            )
        with Image.open(s.path) as im:
            x = image_tensor([im.convert("RGB")], size, bb.mean, bb.std)
        out.append([m[0].detach().cpu().clone() for m in feature_maps(bb, x)])
    return out


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An index mask resized (nearest) to `size` = (H, W); unchanged when it already has that size."""
    if mask.shape == tuple(size):
        return mask
    from PIL import Image

    h, w = size
    im = Image.fromarray(mask.astype(np.int32), mode="I")
    return np.asarray(im.resize((w, h), Image.Resampling.NEAREST)).astype(np.int64)


# ------------------------------------------------------------------------------------------------ segmentation
class SegDecoder(nn.Module):
    """1x1 conv per stride → upsample to the finest tap → sum → 3x3 conv → classifier."""

    def __init__(self, channels: list[int], num_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, SEG_CH, 1) for c in channels)
        self.fuse = nn.Conv2d(SEG_CH, SEG_CH, 3, padding=1)
        self.cls = nn.Conv2d(SEG_CH, num_classes, 1)

    def forward(self, maps: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """Class logits ``(N, K, *out_size)`` from the maps of one batch (smallest stride first)."""
        size = maps[0].shape[-2:]
        acc = torch.stack(
            [
                F.interpolate(lat(m), size=size, mode="bilinear", align_corners=False)
                for lat, m in zip(self.lateral, maps, strict=True)
            ]
        ).sum(0)
        z = self.cls(F.relu(self.fuse(F.relu(acc))))
        return F.interpolate(z, size=out_size, mode="bilinear", align_corners=False)


def train_segmenter(
    maps: list[list[torch.Tensor]],
    masks: list[np.ndarray],
    num_classes: int,
    ignore_index: int | None,
    cfg: HeadTraining,
    clock: Clock | None = None,
    evaluate: Callable[[nn.Module], float | None] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, TrainLog]:
    """Train a `SegDecoder` on cached maps and their masks (all of one size, e.g. resized to the working size).

    Returns the decoder (in eval mode, on `device`) and the `TrainLog`; `evaluate(decoder)` runs after each epoch.
    """
    torch.manual_seed(cfg.seed)
    dec = SegDecoder([m.shape[0] for m in maps[0]], num_classes).to(device)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    targets = [torch.from_numpy(m.astype(np.int64)) for m in masks]
    ignore = -100 if ignore_index is None else int(ignore_index)

    def step(idx: list[int]) -> float:
        dec.train()
        batch = [torch.stack([maps[i][k] for i in idx]).to(device) for k in range(len(maps[0]))]
        y = torch.stack([targets[i] for i in idx]).to(device)
        loss = F.cross_entropy(dec(batch, tuple(y.shape[-2:])), y, ignore_index=ignore)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    def ev() -> float | None:
        return evaluate(dec) if evaluate is not None else None

    log = run_epochs(len(maps), step, cfg, clock or Clock(None), ev if evaluate is not None else None)
    return dec.eval(), log


def predict_segmenter(
    dec: nn.Module, maps: list[list[torch.Tensor]], shapes: list[tuple[int, int]]
) -> list[np.ndarray]:
    """Per image, the argmax class map of `dec` at that image's mask shape (H, W)."""

    dec.eval()
    dev = next(dec.parameters()).device
    out = []
    with torch.inference_mode():
        for m, shape in zip(maps, shapes, strict=True):
            logits = dec([x[None].to(dev) for x in m], tuple(shape))
            out.append(logits.argmax(1)[0].cpu().numpy().astype(np.int64))
    return out


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


def _head_pass(
    fpn: nn.Module, fcos: Any, maps: list[list[torch.Tensor]], idx: list[int], size: tuple[int, int]
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor], Any]:
    from torchvision.models.detection.image_list import ImageList

    batch = [torch.stack([maps[i][k] for i in idx]) for k in range(len(maps[0]))]
    feats = list(fpn(OrderedDict((str(i), m) for i, m in enumerate(batch))).values())
    head_out = fcos.head(feats)
    images = ImageList(torch.zeros(len(idx), 3, *size), [size] * len(idx))
    anchors = fcos.anchor_generator(images, feats)
    return head_out, anchors, feats, images


def det_targets(samples: list[DenseSample], size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """Boxes scaled to the working size (H, W); crowd boxes and boxes under 1 px per side dropped."""

    h, w = size
    out = []
    for s in samples:
        scale = np.array([w / s.width, h / s.height, w / s.width, h / s.height], dtype=np.float32)
        b = s.boxes.astype(np.float32).reshape(-1, 4) * scale
        keep = ~s.crowd_mask() & ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        labels = torch.from_numpy(s.labels[keep].astype(np.int64))
        out.append({"boxes": torch.from_numpy(b[keep]), "labels": labels})
    return out


def train_detector(
    maps: list[list[torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    num_classes: int,
    size: tuple[int, int],
    cfg: HeadTraining,
    clock: Clock | None = None,
    evaluate: Callable[[tuple[nn.Module, Any]], float | None] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[tuple[nn.Module, Any], TrainLog]:
    """Train the FPN + FCOS head on cached maps; returns ``(fpn, fcos)`` (in eval mode, on `device`) and the
    `TrainLog`; `evaluate((fpn, fcos))` runs after each epoch."""
    torch.manual_seed(cfg.seed)
    fpn, fcos = build_fcos_parts([m.shape[0] for m in maps[0]], num_classes)
    fpn.to(device)
    fcos.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    params = list(fpn.parameters()) + list(fcos.head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(idx: list[int]) -> float:
        fpn.train()
        fcos.train()
        head_out, anchors, feats, _im = _head_pass(fpn, fcos, maps, idx, size)
        n_per_level = [f.size(2) * f.size(3) for f in feats]
        parts = fcos.compute_loss([targets[i] for i in idx], head_out, anchors, n_per_level)
        return clipped_step(opt, sum(parts.values()), params)

    def ev() -> float | None:
        return evaluate((fpn, fcos)) if evaluate is not None else None

    log = run_epochs(len(maps), step, cfg, clock or Clock(None), ev if evaluate is not None else None)
    fpn.eval()
    fcos.eval()
    return (fpn, fcos), log


def predict_detector(
    parts: tuple[nn.Module, Any],
    maps: list[list[torch.Tensor]],
    samples: list[DenseSample],
    size: tuple[int, int],
) -> dict[str, Detections]:
    """Detections per sample id, boxes scaled back to the image's own pixels."""
    from advisor.dense.types import Detections

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
            per_level = [list(a.split(n)) for a in anchors]
            det = fcos.postprocess_detections(split, per_level, images.image_sizes)[0]
            scale = np.array([s.width / w, s.height / h, s.width / w, s.height / h], dtype=np.float32)
            out[s.id] = Detections(
                det["boxes"].cpu().numpy().astype(np.float32) * scale,
                det["scores"].cpu().numpy().astype(np.float32),
                det["labels"].cpu().numpy().astype(np.int64),
            )
    return out
