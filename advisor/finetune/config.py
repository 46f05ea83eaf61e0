"""The fine-tuning run config (one frozen, validated record) and the typed result it produces."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from advisor.errors import UsageError
from advisor.io import known_fields, plain_dict

Precision = Literal["auto", "fp32", "bf16"]
SplitSource = Literal["dataset", "group-held-out", "stratified"]
StopReason = Literal["completed", "early_stopping", "budget"]

_UNFREEZE_RE = re.compile(r"^(head|all|last-(\d+))$")


def parse_unfreeze(spec: str) -> tuple[str, int]:
    """Parse an unfreeze spec: ``head`` -> ("head", 0), ``all`` -> ("all", -1), ``last-N`` -> ("last", N).

    Raises:
        UsageError: for anything else (or N < 1).
    """
    m = _UNFREEZE_RE.match(spec.strip().lower()) if isinstance(spec, str) else None
    if m is None:
        raise UsageError(f"invalid --unfreeze value {spec!r}", hint="use head, all, or last-N (e.g. last-2)")
    if m.group(1) == "head":
        return "head", 0
    if m.group(1) == "all":
        return "all", -1
    n = int(m.group(2))
    if n < 1:
        raise UsageError(
            f"invalid --unfreeze value {spec!r}: N must be at least 1", hint="use last-1, last-2, ..."
        )
    return "last", n


# Defaults per unfreeze mode ("head", "last", "all"), used where a field is left as None.
# A new head on frozen features needs a large step: features are often L2-normalised (norm 1), so at 1e-3 the
# logits barely move in a few dozen steps (40 % where the probe had 92 % on 20 Banking77 classes); and with the
# backbone frozen and no augmentation the features are computed once, so many epochs cost about one pass.
# Unfrozen blocks keep the usual 1e-3 head / 1e-4 backbone (x backbone_lr_mult); the whole network a bit less.
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "head": {"lr": 0.05, "epochs": 30, "augment": False},
    "last": {"lr": 1e-3, "epochs": 10, "augment": True},
    "all": {"lr": 5e-4, "epochs": 10, "augment": True},
}


def mode_defaults(unfreeze: str) -> dict[str, Any]:
    """The learning rate, epochs and augmentation `FinetuneConfig` uses for an unfreeze spec (see MODE_DEFAULTS)."""
    return dict(MODE_DEFAULTS[parse_unfreeze(unfreeze)[0]])


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides a fine-tuning run; serialised into every result so a number can be traced back.

    Attributes:
        unfreeze: ``head`` (linear head on frozen features), ``last-N`` (the last N backbone blocks plus the
            layers after them) or ``all``.
        epochs: maximum number of epochs (fewer when early stopping or the budget ends the run); None = the
            unfreeze mode's default (`MODE_DEFAULTS`: 30 for head, 10 otherwise).
        budget_minutes: wall-time cap in minutes for training + validation (None = no cap); the cosine
            schedule is re-planned to the epochs that fit once the first epoch has been timed.
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        batch_size: effective batch size per optimizer step (micro-batches accumulate to it after an OOM).
        lr: learning rate of the new head; the backbone gets ``lr * backbone_lr_mult``; None = the unfreeze
            mode's default (`MODE_DEFAULTS`: 0.05 for head, 1e-3 for last-N, 5e-4 for all).
        backbone_lr_mult: discriminative learning-rate factor for unfrozen backbone parameters.
        weight_decay: AdamW decoupled weight decay (not applied to biases and norm parameters).
        warmup_fraction: share of the planned optimizer steps spent in linear warm-up, then cosine decay to 0.
        patience: early stopping: epochs without a validation-accuracy improvement before stopping (0 = never).
        val_fraction: share of each class held out for validation when the dataset has no own val split.
        max_per_class: cap on labelled samples per class (stratified, seeded), None = all.
        augment: light standard augmentation on training items (images: mild random resized crop + flip);
            None = the unfreeze mode's default (off for head, so frozen features are computed once).
        label_smoothing: cross-entropy label smoothing.
        grad_clip: max global gradient norm (None = no clipping).
        precision: ``auto`` = bf16 autocast on CUDA, fp32 elsewhere.
        num_workers: DataLoader worker processes for decoding/preprocessing (0 = in-process).
        seed: seeds the split, shuffling, augmentation, head initialisation and dropout.
        group_column: table/manifest column with each sample's group (speaker, patient); without a given
            train/val split, validation then holds out whole groups (none on both sides).
        group_pattern: the same from a regex on file names (its first group, else the match); not with
            ``group_column``.
    """

    unfreeze: str = "head"
    epochs: int | None = None
    budget_minutes: float | None = None
    device: str = "auto"
    batch_size: int = 32
    lr: float | None = None
    backbone_lr_mult: float = 0.1
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    patience: int = 3
    val_fraction: float = 0.2
    max_per_class: int | None = None
    augment: bool | None = None
    label_smoothing: float = 0.0
    grad_clip: float | None = 1.0
    precision: Precision = "auto"
    num_workers: int = 0
    seed: int = 0
    group_column: str | None = None
    group_pattern: str | None = None

    def __post_init__(self) -> None:
        for name, value in mode_defaults(self.unfreeze).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # frozen: resolve the mode's default once, here
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be an integer >= 1"),
            (
                self.budget_minutes is None
                or (math.isfinite(self.budget_minutes) and self.budget_minutes > 0),
                "budget must be a positive number of minutes",
            ),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch size must be >= 1"),
            (math.isfinite(self.head_lr) and self.head_lr > 0, "lr must be > 0"),
            (
                math.isfinite(self.backbone_lr_mult) and self.backbone_lr_mult >= 0,
                "backbone lr multiplier must be >= 0",
            ),
            (self.weight_decay >= 0, "weight decay must be >= 0"),
            (0 <= self.warmup_fraction < 1, "warm-up fraction must be in [0, 1)"),
            (isinstance(self.patience, int) and self.patience >= 0, "patience must be an integer >= 0"),
            (0 < self.val_fraction < 1, "validation fraction must be in (0, 1)"),
            (self.max_per_class is None or self.max_per_class >= 2, "max per class must be >= 2"),
            (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
            (self.grad_clip is None or self.grad_clip > 0, "grad clip must be > 0"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (isinstance(self.num_workers, int) and self.num_workers >= 0, "workers must be >= 0"),
            (
                self.group_column is None or self.group_pattern is None,
                "give either a group column or a group pattern, not both",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise UsageError(f"invalid fine-tuning config: {msg}", hint="see `advisor finetune --help`")

    @property
    def head_lr(self) -> float:
        """The head's learning rate (``lr`` after the mode default is applied)."""
        return float(self.lr if self.lr is not None else MODE_DEFAULTS[self.unfreeze_mode[0]]["lr"])

    @property
    def max_epochs(self) -> int:
        """The epoch cap (``epochs`` after the mode default is applied)."""
        return int(self.epochs if self.epochs is not None else MODE_DEFAULTS[self.unfreeze_mode[0]]["epochs"])

    @property
    def augments(self) -> bool:
        """Whether training items are augmented (``augment`` after the mode default is applied)."""
        return bool(
            self.augment if self.augment is not None else MODE_DEFAULTS[self.unfreeze_mode[0]]["augment"]
        )

    @property
    def unfreeze_mode(self) -> tuple[str, int]:
        """The parsed unfreeze spec (see `parse_unfreeze`)."""
        return parse_unfreeze(self.unfreeze)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy of every field; the group options only when set, so the records (and the cache
        keys built from them) of runs without groups are as they were before those options existed."""
        d = dataclasses.asdict(self)
        for k in ("group_column", "group_pattern"):
            if d[k] is None:
                d.pop(k)
        return d

    def training_key(self) -> dict[str, Any]:
        """The fields that change the trajectory of training; a resumed run must match these exactly.

        The budget and the worker count are left out: they change when a run stops or how fast, not what an
        epoch computes (unset group options are absent, see `to_dict`: runs stored before them still resume).
        """
        d = self.to_dict()
        for k in ("budget_minutes", "num_workers"):
            d.pop(k)
        return d


@dataclass
class EpochRecord:
    """Metrics of one completed epoch."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_correct: int
    val_n: int
    lr_head: float
    seconds: float
    partial: bool = False  # the budget ended the epoch before all batches ran

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced, with the provenance to trace each number.

    ``val_accuracy`` is that of the best epoch (the kept checkpoint); ``val_accuracy_ci`` is its 95 % Wilson
    interval over ``n_val`` validation items. ``val_split`` says how validation was held out (``dataset``,
    ``group-held-out`` or ``stratified``); ``groups`` gives, for a group-held-out split, the group option and the
    number of groups on each side (``{"by", "train", "val", "val_groups"}``), else None.
    """

    model_id: str
    modality: str
    classes: list[str]
    n_train: int
    n_val: int
    split_source: SplitSource
    unfreeze: str
    trainable_params: int
    total_params: int
    epochs_planned: int
    epochs_run: int
    best_epoch: int
    stopped_reason: StopReason
    val_accuracy: float
    val_accuracy_ci: tuple[float, float]
    val_loss: float
    per_class_accuracy: dict[str, float | None]
    seconds_per_epoch: float
    total_seconds: float
    peak_memory_mb: float | None
    peak_memory_kind: str
    device: str
    precision: str
    micro_batch_size: int
    grad_accum_steps: int
    resumed_from_epoch: int | None
    checkpoint: str | None
    out_dir: str | None
    config: dict[str, Any]
    seed: int
    dataset_fingerprint: str | None
    versions: dict[str, str | None]
    history: list[EpochRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pretrained: bool = True
    model_revision: str | None = None
    val_split: str | None = None
    groups: dict[str, Any] | None = None
    schema_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (history as plain dicts, the CI as a 2-list)."""
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneResult:
        """Rebuild a result from `to_dict` output (e.g. a stored result.json)."""
        d = dict(d)
        d["history"] = [EpochRecord(**h) for h in d.get("history", [])]
        d["val_accuracy_ci"] = tuple(d["val_accuracy_ci"])
        return cls(**known_fields(cls, d))
