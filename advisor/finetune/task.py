"""What the fine-tuning loop takes and gives: the task and its splits, the outcome, and the data feeding."""

from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advisor.errors import AdvisorError
from advisor.finetune.config import EpochRecord, FinetuneConfig, StopReason
from advisor.finetune.unfreeze import UnfreezePlan

ProgressCallback = Callable[[dict[str, Any]], None]


class TrainingOutOfMemory(AdvisorError):
    """Even a micro-batch of one item does not fit in device memory."""


@dataclass
class Split:
    """One side of the train/validation split: item references, their class indices and stable ids."""

    items: Sequence[Any]
    labels: np.ndarray
    ids: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not (len(self.items) == len(self.labels) == len(self.ids)):
            raise ValueError("items, labels and ids must have the same length")


@dataclass
class TrainTask:
    """Everything the loop needs, independent of where the model came from.

    Attributes:
        backbone: module whose ``forward(*batch)`` returns pooled features (N, feature_dim).
        feature_dim: width of the pooled features.
        blocks: ordered backbone blocks (input side first) for ``last-N`` unfreezing.
        classes: class names; labels index into them.
        load: item reference -> raw item (PIL image, str, waveform); may raise one of ``skip_errors``.
        preprocess: list of raw items -> tuple of batch tensors (the model's own preprocessing).
        augment: (raw item, numpy Generator) -> augmented raw item, for training items; None = no augmentation.
        train / val: the split.
        skip_errors: exception types meaning "skip this item" (e.g. ``advisor.data.SkipItem``).
        meta: string metadata stored in the checkpoint (model id, modality, ...).
    """

    backbone: nn.Module
    feature_dim: int
    blocks: Sequence[nn.Module]
    classes: list[str]
    load: Callable[[Any], Any]
    preprocess: Callable[[list], tuple[torch.Tensor, ...]]
    train: Split
    val: Split
    augment: Callable[[Any, np.random.Generator], Any] | None = None
    skip_errors: tuple[type[BaseException], ...] = ()
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainOutcome:
    """What the loop returns (``run.finetune`` wraps it into a ``FinetuneResult``)."""

    history: list[EpochRecord]
    best_epoch: int
    best_val_accuracy: float
    best_val_loss: float
    best_val_correct: int
    best_val_n: int
    per_class_accuracy: list[float | None]
    stopped_reason: StopReason
    epochs_planned: int
    micro_batch_size: int
    grad_accum_steps: int
    plan: UnfreezePlan
    head: nn.Linear
    resumed_from_epoch: int | None
    total_seconds: float
    peak_memory_mb: float | None
    peak_memory_kind: str
    precision: str
    device: str
    checkpoint: Path | None
    skipped_items: int
    notes: list[str]


# ---------------------------------------------------------------------------------------------- data feeding


class _ItemDataset(torch.utils.data.Dataset):
    """Loads (and, for training, augments) item ``i``; augmentation is seeded by (seed, epoch, i), so any worker
    count and a resumed run see the same augmented item."""

    def __init__(self, task: TrainTask, split: Split, seed: int, epoch: int, augment: bool) -> None:
        self.task, self.split, self.seed, self.epoch, self.augment = task, split, seed, epoch, augment

    def __len__(self) -> int:
        return len(self.split.items)

    def __getitem__(self, i: int):
        try:
            x = self.task.load(self.split.items[i])
        except self.task.skip_errors:
            return None, None, int(i)
        if self.augment and self.task.augment is not None:
            x = self.task.augment(x, np.random.default_rng([self.seed, self.epoch, int(i)]))
        return x, int(self.split.labels[i]), int(i)


class _Collate:
    def __init__(self, preprocess: Callable[[list], tuple[torch.Tensor, ...]]) -> None:
        self.preprocess = preprocess

    def __call__(self, rows: list):
        kept = [r for r in rows if r[1] is not None]
        skipped = [r[2] for r in rows if r[1] is None]
        if not kept:
            return None, skipped
        batch = self.preprocess([r[0] for r in kept])
        if isinstance(batch, torch.Tensor):
            batch = (batch,)
        y = torch.tensor([r[1] for r in kept], dtype=torch.long)
        idx = torch.tensor([r[2] for r in kept], dtype=torch.long)
        return (tuple(batch), y, idx), skipped


def make_loader(
    task: TrainTask,
    split: Split,
    batches: list[list[int]],
    *,
    seed: int,
    epoch: int,
    augment: bool,
    workers: int,
):
    ds = _ItemDataset(task, split, seed, epoch, augment)
    return torch.utils.data.DataLoader(
        ds,
        batch_sampler=batches,
        collate_fn=_Collate(task.preprocess),
        num_workers=workers,
        persistent_workers=False,
    )


def index_batches(n: int, batch_size: int, order: np.ndarray | None = None) -> list[list[int]]:
    idx = np.arange(n) if order is None else order
    return [idx[s : s + batch_size].tolist() for s in range(0, n, batch_size)]


def example_batch(task: TrainTask) -> tuple[torch.Tensor, ...] | None:
    """Two preprocessed validation items (the first readable ones), to probe which parameters are used."""
    items = []
    for ref in task.val.items:
        try:
            items.append(task.load(ref))
        except task.skip_errors:
            continue
        if len(items) == 2:
            break
    if not items:
        return None
    batch = task.preprocess(items)
    return (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)


# ---------------------------------------------------------------------------------------------- helpers


def content_key(obj: Any) -> str:
    """A short content hash of plain data (kept local so the loop needs no CLI dependencies)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 7]).integers(0, 2**62))


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def peak_memory(device: torch.device) -> tuple[float | None, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_peak_rss"


def resolve_precision(config: FinetuneConfig, device: torch.device) -> str:
    if config.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return config.precision
