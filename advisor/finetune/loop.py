"""The fine-tuning loop: new linear head on pooled features, AdamW with warm-up + cosine, OOM micro-batching,
early stopping, budget, and atomic per-epoch checkpoints that a killed run resumes from exactly."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from advisor.errors import UsageError
from advisor.finetune.checkpoint import (
    BEST_FILE,
    CHECKPOINT_FORMAT,
    STATE_FILE,
    STATE_FORMAT,
    load_best_checkpoint,
    load_state,
    save_best_checkpoint,
)
from advisor.finetune.config import FinetuneConfig
from advisor.finetune.task import ProgressCallback, Split, TrainingOutOfMemory, TrainOutcome, TrainTask
from advisor.finetune.trainer import TrainingRun

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FORMAT",
    "STATE_FILE",
    "STATE_FORMAT",
    "ProgressCallback",
    "Split",
    "TrainOutcome",
    "TrainTask",
    "TrainingOutOfMemory",
    "load_best_checkpoint",
    "load_state",
    "save_best_checkpoint",
    "train",
    "wilson_interval",
]


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion ``correct / n`` ((0, 1) when n == 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def train(
    task: TrainTask,
    config: FinetuneConfig,
    *,
    device: torch.device | str = "cpu",
    out_dir: str | Path | None = None,
    resume: bool = False,
    callback: ProgressCallback | None = None,
) -> TrainOutcome:
    """Fine-tune ``task.backbone`` plus a new linear head; keep the best epoch by validation accuracy.

    With ``out_dir``, each completed epoch atomically writes ``state.pt`` (model + optimizer + scheduler +
    epoch + RNG states) and each improvement ``best.safetensors``, so a kill loses at most the epoch in
    progress; ``resume=True`` continues from the last completed epoch and reaches the same result as an
    uninterrupted run (augmentation, shuffling and dropout are seeded per epoch).

    Args:
        task: model, data and preprocessing (see `TrainTask`).
        config: the run config.
        device: where to train.
        out_dir: folder for checkpoints (None: keep the best weights in memory only).
        resume: continue the run stored in ``out_dir``.
        callback: receives progress events (dicts with an ``event`` key: start, step, epoch, oom, replan,
            stop); an exception raised there aborts the run like a kill would.

    Returns:
        The outcome; the backbone and the returned head hold the best epoch's weights.

    Raises:
        UsageError: an existing run in ``out_dir`` without ``resume``, or one made with another config/data.
        TrainingOutOfMemory: a micro-batch of 1 does not fit.
    """
    device = torch.device(device)
    if len(task.train.items) == 0 or len(task.val.items) == 0:
        raise UsageError(
            "fine-tuning needs at least one training and one validation item",
            hint="add labelled items or lower --val-fraction",
        )
    run = TrainingRun(task, config, device, out_dir)
    if callback is not None:
        run.emit = callback
    run.restore(resume)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run.emit(
        {
            "event": "start",
            "epochs": run.sched["epochs"],
            "steps_per_epoch": run.steps_per_epoch,
            "n_train": len(task.train.items),
            "n_val": len(task.val.items),
            "resumed_from": run.st.resumed_from,
            "trainable": len(run.plan.trainable),
            "precision": run.precision,
            "device": str(device),
        }
    )
    run.loop()
    return run.outcome()
