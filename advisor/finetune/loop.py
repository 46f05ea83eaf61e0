"""The fine-tuning loop: new linear head on pooled features, AdamW with warm-up + cosine, OOM micro-batching,
early stopping, budget, and atomic per-epoch checkpoints that a killed run resumes from exactly."""

from __future__ import annotations

import hashlib
import json
import math
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advisor.errors import AdvisorError, ResultsError, UsageError
from advisor.finetune.config import EpochRecord, FinetuneConfig
from advisor.finetune.unfreeze import (
    UnfreezePlan,
    apply_unfreeze,
    build_param_groups,
    freeze_unused,
    set_train_modes,
)
from advisor.io import atomic_write

STATE_FILE = "state.pt"
BEST_FILE = "best.safetensors"
STATE_FORMAT = "advisor-finetune-state-v1"
CHECKPOINT_FORMAT = "advisor-finetune-v1"

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
    stopped_reason: str
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


def _loader(
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


def _batches(n: int, batch_size: int, order: np.ndarray | None = None) -> list[list[int]]:
    idx = np.arange(n) if order is None else order
    return [idx[s : s + batch_size].tolist() for s in range(0, n, batch_size)]


# ---------------------------------------------------------------------------------------------- helpers


def _example_batch(task: TrainTask) -> tuple[torch.Tensor, ...] | None:
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


def _key(obj: Any) -> str:
    """A short content hash of plain data (kept local so the loop needs no CLI dependencies)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 7]).integers(0, 2**62))


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def _is_oom(e: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return (bool(oom_type) and isinstance(e, oom_type)) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )


def _rng_state() -> dict[str, Any]:
    # Only tensors and plain python values: the state file must load with torch.load(weights_only=True).
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu_clone(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True).contiguous()


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion ``correct / n`` ((0, 1) when n == 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _peak_memory(device: torch.device) -> tuple[float | None, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_peak_rss"


# ---------------------------------------------------------------------------------------------- checkpoints


def save_best_checkpoint(
    path: Path, head: nn.Module, backbone_state: dict[str, torch.Tensor], meta: dict[str, str]
) -> None:
    """Write the head and the trained backbone tensors as one safetensors file (``head.*``, ``backbone.*``)."""
    from safetensors.torch import save_file

    tensors = {f"head.{k}": _cpu_clone(v) for k, v in head.state_dict().items()}
    tensors.update({f"backbone.{k}": _cpu_clone(v) for k, v in backbone_state.items()})
    metadata = {"format": CHECKPOINT_FORMAT, **{k: str(v) for k, v in meta.items()}}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def load_best_checkpoint(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint written by `save_best_checkpoint`: (head state, backbone state, metadata).

    Raises:
        ResultsError: missing or not an advisor fine-tuning checkpoint.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no fine-tuning checkpoint at {path}", hint="run `advisor finetune` first")
    head, backbone = {}, {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ResultsError(f"{path} is not an advisor fine-tuning checkpoint")
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            target, name = (head, k[5:]) if k.startswith("head.") else (backbone, k[len("backbone.") :])
            target[name] = f.get_tensor(k)
    return head, backbone, meta


def _save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda p: torch.save(state, str(p)))


def load_state(path: Path) -> dict[str, Any]:
    """Load a resumable training state (tensors and plain python values only: ``weights_only=True``)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which and what to do
        raise ResultsError(
            f"cannot read the fine-tuning state {path}: {e}",
            hint="delete the out dir or choose another --out to start over",
        ) from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResultsError(
            f"{path} is not an advisor fine-tuning state file", hint="choose another --out to start over"
        )
    return state


# ---------------------------------------------------------------------------------------------- the loop


def _resolve_precision(config: FinetuneConfig, device: torch.device) -> str:
    if config.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return config.precision


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
    start_wall = time.perf_counter()
    notes: list[str] = []
    emit = callback or (lambda _e: None)
    if len(task.train.items) == 0 or len(task.val.items) == 0:
        raise UsageError(
            "fine-tuning needs at least one training and one validation item",
            hint="add labelled items or lower --val-fraction",
        )
    n_classes = len(task.classes)
    precision = _resolve_precision(config, device)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else nullcontext()
    )

    plan = apply_unfreeze(task.backbone, task.blocks, config.unfreeze)
    task.backbone.to(device)
    if not plan.frozen_backbone:
        example = _example_batch(task)
        if example is not None:
            unused = freeze_unused(task.backbone, plan, tuple(t.to(device) for t in example))
            if unused:
                notes.append(
                    f"{len(unused)} parameter tensors the features never use stay frozen ({unused[0]}, ...)"
                )
    torch.manual_seed(config.seed)
    head = nn.Linear(task.feature_dim, n_classes).to(device)
    groups = build_param_groups(
        head,
        task.backbone,
        lr=config.lr,
        backbone_lr_mult=config.backbone_lr_mult,
        weight_decay=config.weight_decay,
    )
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)

    steps_per_epoch = math.ceil(len(task.train.items) / config.batch_size)
    sched = {"total": config.epochs * steps_per_epoch, "epochs": config.epochs}
    sched["warmup"] = round(config.warmup_fraction * sched["total"]) if config.warmup_fraction > 0 else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, sched["total"], sched["warmup"])
    )

    data_key = _key(
        {
            "train": [task.train.ids, task.train.labels.tolist()],
            "val": [task.val.ids, task.val.labels.tolist()],
            "classes": task.classes,
        }
    )
    run_key = _key(config.training_key())
    out = Path(out_dir) if out_dir is not None else None
    state_path = out / STATE_FILE if out else None
    best_path = out / BEST_FILE if out else None

    # --- mutable run state (all of it goes into state.pt)
    epoch_done = 0
    history: list[EpochRecord] = []
    best = {"epoch": 0, "acc": -1.0, "loss": math.inf, "correct": 0, "n": 0, "per_class": []}
    bad_epochs = 0
    micro = config.batch_size
    elapsed_before = 0.0
    finished: str | None = None
    resumed_from: int | None = None
    best_mem: dict[str, torch.Tensor] | None = None

    if state_path is not None and state_path.exists():
        if not resume:
            raise UsageError(
                f"{out} already holds a fine-tuning run",
                hint="pass --resume to continue it, or choose another --out",
            )
        st = load_state(state_path)
        if st["run_key"] != run_key or st["data_key"] != data_key:
            what = "config" if st["run_key"] != run_key else "data split"
            diff = ""
            if what == "config":
                old = st.get("config", {})
                diff = ": " + ", ".join(
                    f"{k} {old.get(k)!r} -> {v!r}"
                    for k, v in config.training_key().items()
                    if old.get(k) != v
                )
            raise UsageError(
                f"cannot resume {out}: the {what} differs from the stored run{diff}",
                hint="resume with the same options, or choose another --out",
            )
        head.load_state_dict(st["head"])
        task.backbone.load_state_dict(st["backbone"], strict=False)
        optimizer.load_state_dict(st["optimizer"])
        sched.update(st["sched"])
        scheduler.load_state_dict(st["scheduler"])
        _set_rng_state(st["rng"])
        epoch_done = int(st["epoch"])
        history = [EpochRecord(**h) for h in st["history"]]
        best = dict(st["best"])
        bad_epochs = int(st["bad_epochs"])
        micro = int(st["micro_batch"])
        elapsed_before = float(st["elapsed_seconds"])
        finished = st.get("finished")
        notes = list(st.get("notes", []))
        resumed_from = epoch_done
    elif resume and out is not None:
        notes.append(f"--resume given but {out} held no state; started a fresh run")

    def elapsed() -> float:
        return elapsed_before + (time.perf_counter() - start_wall)

    budget_s = config.budget_minutes * 60 if config.budget_minutes else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # Frozen backbone: validation features never change, so compute them once.
    val_feat_cache: list | None = None
    skipped: set[str] = set()

    def features(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if plan.frozen_backbone:
            with torch.no_grad():
                return task.backbone(*batch)
        return task.backbone(*batch)

    # Frozen backbone and no augmentation: training features never change either; compute them once too.
    cache_train = plan.frozen_backbone and not (config.augment and task.augment is not None)
    train_cache: dict[str, Any] = {}

    def cached_train_batches(order: np.ndarray):
        if not train_cache:
            rows, feats, labels = {}, [], []
            loader = _loader(
                task,
                task.train,
                _batches(len(task.train.items), max(1, micro)),
                seed=config.seed,
                epoch=0,
                augment=False,
                workers=config.num_workers,
            )
            with torch.no_grad():
                for got, bad in loader:
                    skipped.update(task.train.ids[i] for i in bad)
                    if got is None:
                        continue
                    batch, y, idx = got
                    with autocast:
                        f = task.backbone(*to_dev(batch))
                    for i in idx.tolist():
                        rows[i] = len(rows)
                    feats.append(f.float())
                    labels.append(y)
            train_cache.update(
                rows=rows,
                feats=torch.cat(feats) if feats else None,
                labels=torch.cat(labels) if labels else None,
            )
        rows = train_cache["rows"]
        for b in _batches(len(order), config.batch_size, order):
            r = [rows[i] for i in b if i in rows]
            bad = [i for i in b if i not in rows]
            if not r:
                yield None, bad
                continue
            r_t = torch.tensor(r, device=train_cache["feats"].device)
            yield ((train_cache["feats"][r_t],), train_cache["labels"][r_t.cpu()], None), bad

    def to_dev(batch):
        return tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)

    def evaluate() -> tuple[float, float, int, int, list[float | None]]:
        nonlocal val_feat_cache, skipped
        set_train_modes(task.backbone, False)
        head.eval()
        total_loss, correct, n = 0.0, 0, 0
        per_class_correct = np.zeros(n_classes, dtype=np.int64)
        per_class_n = np.zeros(n_classes, dtype=np.int64)
        eval_bs = max(1, micro)
        if val_feat_cache is not None:
            chunks = val_feat_cache
        else:
            chunks = []
            loader = _loader(
                task,
                task.val,
                _batches(len(task.val.items), eval_bs),
                seed=config.seed,
                epoch=0,
                augment=False,
                workers=config.num_workers,
            )
            with torch.no_grad():
                for got, bad in loader:
                    skipped.update(task.val.ids[i] for i in bad)
                    if got is None:
                        continue
                    batch, y, _ = got
                    with autocast:
                        f = task.backbone(*to_dev(batch))
                    chunks.append((f.float(), y.to(device)))
            if plan.frozen_backbone:
                val_feat_cache = chunks
        with torch.no_grad():
            for f, y in chunks:
                with autocast:
                    logits = head(f)
                logits = logits.float()
                total_loss += F.cross_entropy(logits, y, reduction="sum").item()
                pred = logits.argmax(1)
                hit = pred == y
                correct += int(hit.sum())
                n += len(y)
                np.add.at(per_class_n, y.cpu().numpy(), 1)
                np.add.at(per_class_correct, y.cpu().numpy(), hit.cpu().numpy().astype(np.int64))
        per_class = [float(c / m) if m else None for c, m in zip(per_class_correct, per_class_n, strict=True)]
        return total_loss / max(1, n), correct / max(1, n), correct, n, per_class

    def accumulate(batch: tuple[torch.Tensor, ...], y: torch.Tensor, micro: int) -> tuple[float, int]:
        n = len(y)
        loss_sum, correct = 0.0, 0
        for s in range(0, n, micro):
            mb = tuple(t[s : s + micro] for t in batch)
            my = y[s : s + micro]
            with autocast:
                logits = head(mb[0] if cache_train else features(mb))
            loss = F.cross_entropy(logits.float(), my, label_smoothing=config.label_smoothing)
            (loss * (len(my) / n)).backward()
            loss_sum += loss.item() * len(my)
            correct += int((logits.argmax(1) == my).sum())
        return loss_sum, correct

    def train_step(batch: tuple[torch.Tensor, ...], y: torch.Tensor) -> tuple[float, int, int]:
        """One optimizer step over the batch, in micro-batches; halves the micro-batch on OOM."""
        nonlocal micro
        while True:
            optimizer.zero_grad(set_to_none=True)
            oom = False
            try:
                loss_sum, correct = accumulate(batch, y, micro)
            except Exception as e:
                if not _is_oom(e):
                    raise
                oom = True
            if not oom:
                break
            # Outside the except block the traceback (and the activations its frames hold) is released.
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if micro <= 1:
                raise TrainingOutOfMemory(
                    "out of device memory even with a micro-batch of 1",
                    hint="use --unfreeze head or last-1, a smaller model, or --device cpu",
                )
            micro = max(1, micro // 2)
            emit(
                {
                    "event": "oom",
                    "micro_batch": micro,
                    "accumulation_steps": math.ceil(config.batch_size / micro),
                }
            )
        if config.grad_clip is not None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if params:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        return loss_sum, correct, len(y)

    def backbone_state() -> dict[str, torch.Tensor]:
        sd = task.backbone.state_dict()
        return {k: sd[k] for k in plan.state_keys}

    def write_state() -> None:
        if state_path is None:
            return
        state = {
            "format": STATE_FORMAT,
            "run_key": run_key,
            "data_key": data_key,
            "config": config.training_key(),
            "epoch": epoch_done,
            "head": {k: _cpu_clone(v) for k, v in head.state_dict().items()},
            "backbone": {k: _cpu_clone(v) for k, v in backbone_state().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sched": dict(sched),
            "rng": _rng_state(),
            "history": [h.to_dict() for h in history],
            "best": best,
            "bad_epochs": bad_epochs,
            "micro_batch": micro,
            "elapsed_seconds": elapsed(),
            "finished": finished,
            "notes": notes,
        }
        _save_state(state_path, state)

    emit(
        {
            "event": "start",
            "epochs": sched["epochs"],
            "steps_per_epoch": steps_per_epoch,
            "n_train": len(task.train.items),
            "n_val": len(task.val.items),
            "resumed_from": resumed_from,
            "trainable": len(plan.trainable),
            "precision": precision,
            "device": str(device),
        }
    )

    while finished is None:
        if epoch_done >= sched["epochs"]:
            finished = "completed"
            break
        epoch = epoch_done + 1
        ep_start = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        order = np.random.default_rng([config.seed, epoch]).permutation(len(task.train.items))
        if cache_train:
            loader = cached_train_batches(order)
        else:
            loader = _loader(
                task,
                task.train,
                _batches(len(order), config.batch_size, order),
                seed=config.seed,
                epoch=epoch,
                augment=config.augment,
                workers=config.num_workers,
            )
        set_train_modes(task.backbone, True)
        head.train()
        loss_sum, correct, seen, step = 0.0, 0, 0, 0
        partial = False
        for got, bad in loader:
            skipped.update(task.train.ids[i] for i in bad)
            step += 1
            if got is None:
                scheduler.step()  # keep the schedule aligned with the planned step count
                continue
            batch, y, _ = got
            ls, c, n = train_step(to_dev(batch), y.to(device))
            loss_sum, correct, seen = loss_sum + ls, correct + c, seen + n
            ep_elapsed = time.perf_counter() - ep_start
            per_step = ep_elapsed / step
            prev_epochs = [h.seconds for h in history if not h.partial]
            est_epoch = (sum(prev_epochs) / len(prev_epochs)) if prev_epochs else per_step * steps_per_epoch
            eta = per_step * (steps_per_epoch - step) + est_epoch * (sched["epochs"] - epoch)
            emit(
                {
                    "event": "step",
                    "epoch": epoch,
                    "epochs": sched["epochs"],
                    "step": step,
                    "steps": steps_per_epoch,
                    "loss": loss_sum / max(1, seen),
                    "accuracy": correct / max(1, seen),
                    "eta_seconds": eta,
                }
            )
            if budget_s is not None and elapsed() > budget_s and step < steps_per_epoch:
                partial = True
                notes.append(f"the budget ended epoch {epoch} after {step}/{steps_per_epoch} steps")
                break
        val_loss, val_acc, val_correct, val_n, per_class = evaluate()
        rec = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / max(1, seen),
            train_accuracy=correct / max(1, seen),
            val_loss=val_loss,
            val_accuracy=val_acc,
            val_correct=val_correct,
            val_n=val_n,
            lr_head=float(optimizer.param_groups[0]["lr"]),
            seconds=time.perf_counter() - ep_start,
            partial=partial,
        )
        history.append(rec)
        epoch_done = epoch
        # Patience counts epochs without an accuracy gain; an accuracy tie at lower loss still updates the
        # kept checkpoint, but does not reset patience.
        acc_gain = val_acc > best["acc"]
        bad_epochs = 0 if acc_gain else bad_epochs + 1
        if acc_gain or (val_acc == best["acc"] and val_loss < best["loss"]):
            best = {
                "epoch": epoch,
                "acc": val_acc,
                "loss": val_loss,
                "correct": val_correct,
                "n": val_n,
                "per_class": per_class,
            }
            if best_path is not None:
                save_best_checkpoint(
                    best_path,
                    head,
                    backbone_state(),
                    {
                        **task.meta,
                        "epoch": str(epoch),
                        "unfreeze": config.unfreeze,
                        "classes": "\n".join(task.classes),
                    },
                )
            else:
                best_mem = {"head." + k: _cpu_clone(v) for k, v in head.state_dict().items()}
                best_mem.update({"backbone." + k: _cpu_clone(v) for k, v in backbone_state().items()})

        # Decide whether to go on: epochs left, patience, budget (re-planning the cosine to the epochs that fit).
        if partial:
            finished = "budget"
        elif config.patience > 0 and bad_epochs >= config.patience and epoch < sched["epochs"]:
            finished = "early_stopping"
        elif epoch >= sched["epochs"]:
            finished = "completed"
        elif budget_s is not None:
            full = [h.seconds for h in history if not h.partial]
            per_epoch = sum(full) / len(full)
            fit = epoch + int((budget_s - elapsed()) // per_epoch)
            if fit <= epoch:
                finished = "budget"
                notes.append(
                    f"the budget ({config.budget_minutes:g} min) stopped the run after epoch {epoch} "
                    f"of {sched['epochs']} (about {per_epoch:.1f} s per epoch)"
                )
            elif fit < sched["epochs"]:
                notes.append(
                    f"the budget ({config.budget_minutes:g} min) fits {fit} of {sched['epochs']} epochs "
                    f"(about {per_epoch:.1f} s per epoch); the schedule was re-planned to {fit}"
                )
                sched["epochs"] = fit
                sched["total"] = fit * steps_per_epoch
                emit({"event": "replan", "epochs": fit})
        if finished is not None:
            emit({"event": "stop", "reason": finished, "epoch": epoch})
        write_state()
        emit(
            {
                "event": "epoch",
                "record": rec,
                "best_epoch": best["epoch"],
                "epochs": sched["epochs"],
                "eta_seconds": (sum(h.seconds for h in history) / len(history)) * (sched["epochs"] - epoch),
            }
        )

    # Leave the caller with the best epoch's weights.
    if best_path is not None and best_path.exists():
        head_sd, bb_sd, _ = load_best_checkpoint(best_path)
    elif best_mem is not None:
        head_sd = {k[5:]: v for k, v in best_mem.items() if k.startswith("head.")}
        bb_sd = {k[9:]: v for k, v in best_mem.items() if k.startswith("backbone.")}
    else:
        head_sd, bb_sd = None, None
    if head_sd is not None:
        head.load_state_dict(head_sd)
        task.backbone.load_state_dict(bb_sd, strict=False)
    set_train_modes(task.backbone, False)
    head.eval()

    peak, peak_kind = _peak_memory(device)
    if skipped:
        shown = ", ".join(sorted(skipped)[:5]) + (", ..." if len(skipped) > 5 else "")
        notes.append(
            f"{len(skipped)} item{'s' if len(skipped) != 1 else ''} could not be read and were skipped ({shown})"
        )
    return TrainOutcome(
        history=history,
        best_epoch=int(best["epoch"]),
        best_val_accuracy=float(best["acc"]),
        best_val_loss=float(best["loss"]),
        best_val_correct=int(best["correct"]),
        best_val_n=int(best["n"]),
        per_class_accuracy=list(best["per_class"]),
        stopped_reason=finished,
        epochs_planned=int(sched["epochs"]),
        micro_batch_size=micro,
        grad_accum_steps=math.ceil(config.batch_size / micro),
        plan=plan,
        head=head,
        resumed_from_epoch=resumed_from,
        total_seconds=elapsed(),
        peak_memory_mb=peak,
        peak_memory_kind=peak_kind,
        precision=precision,
        device=str(device),
        checkpoint=best_path if best_path is not None and best_path.exists() else None,
        skipped_items=len(skipped),
        notes=notes,
    )
