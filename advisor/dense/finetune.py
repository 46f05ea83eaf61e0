"""Short dense fine-tunes, the confirmation rung of ``advisor recommend --finetune-top K`` for detection and
semantic segmentation: a serialisable `DenseFinetuneSpec` in, a typed `DenseFinetuneResult` out.

Two kinds, one per route of the verdict (`advisor.dense.verdict`):

- ``new-head``: a new head on a *frozen* image backbone (``pkg:efficientnet_lite0``, ``timm:…``): an FCOS head
  over a trainable FPN (detection) or a light multi-stride decoder (segmentation), trained on the backbone's cached
  maps (`advisor.dense.finetune_heads`);
- ``fine-tune-head``: a pretrained torchvision detector/segmenter with new class layers for the data's classes,
  its backbone frozen (`advisor.dense.finetune_torchvision`); its zero-shot predictions on the same held-out images
  are scored beside it, on the classes its label set shares with the data, for a paired comparison.

The held-out split honours the data: its own val split (else test) when the images carry one; whole groups held
out with ``group_pattern``; else a seeded 25% of the images, stratified by each image's rarest class (detection).
The value is the real metric on the held-out images (COCO box mAP; accumulated-confusion mIoU) with a 95% image
bootstrap interval (`advisor.dense.finetune_eval`). The run is seeded, stops cleanly between two steps when the
time budget is spent, and is cached by content (spec + data fingerprint), so a rerun is read back.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from advisor.dense.types import BOX_TASKS, TASK_METRIC, DenseDataset, DenseSample
from advisor.errors import DatasetError, UsageError, check_choice
from advisor.io import known_fields, plain_dict

if TYPE_CHECKING:
    from advisor.dense.finetune_heads import Clock, HeadTraining, TrainLog

log = logging.getLogger(__name__)

FT_VERSION = 1
KINDS = ("new-head", "fine-tune-head")
VAL_FRACTION = 0.25
# new-head working size: the median image with its longer side brought into [MIN_SIDE, MAX_SIDE] (multiples of
# 32): small images are upscaled so that stride-8 maps still resolve small objects (on the 160 px detection demo,
# lite0 reached val mAP 0.22 after 3 epochs at 320 px against 0.03 at 160 px)
MIN_SIDE, MAX_SIDE = 320, 512
VAL_SPLITS = ("val", "test")  # a dataset's own held-out split, in order of preference


@dataclass(frozen=True)
class DenseFinetuneSpec:
    """Everything a dense fine-tune depends on (its cache key, stored with its result).

    Attributes:
        model_id: an image backbone (``new-head``) or a torchvision dense model id (``fine-tune-head``).
        kind: ``new-head`` or ``fine-tune-head``.
        data: the dataset path (read by `advisor.dense.readers.load_dense`).
        task: ``detection`` or ``segmentation`` (None: from the data).
        split: the run's ``--split`` (which images are read), None for all.
        ignore_index: segmentation: the mask value not scored (None: 255).
        sample_ids: the images used (the run's sample); empty: every image.
        group_pattern: regex on file names whose first group (else the match) is an image's group: whole groups
            are held out.
        val_fraction: share of the images held out when the data has no split of its own.
        epochs, batch, lr: training (AdamW, constant lr).
        budget_minutes: wall-clock cap of this fine-tune (None: no cap beyond the epochs).
        seed: seeds the split, the head's initialisation, the batch order and the bootstrap.
        device: where the model runs (``auto``, ``cpu``, ``cuda``…).
        pretrained: False trains on the random-init twin (tests, floors).
        bootstrap: image-bootstrap resamples for the interval (None: 100 detection, 1000 segmentation).
    """

    model_id: str
    kind: str
    data: str
    task: str | None = None
    split: str | None = None
    ignore_index: int | None = None
    sample_ids: tuple[str, ...] = ()
    group_pattern: str | None = None
    val_fraction: float = VAL_FRACTION
    epochs: int = 3
    batch: int = 4
    lr: float = 1e-3
    budget_minutes: float | None = None
    seed: int = 0
    device: str = "cpu"
    pretrained: bool = True
    bootstrap: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, KINDS, "dense fine-tune kind")
        if self.epochs < 1 or self.batch < 1:
            raise UsageError(f"--finetune-epochs must be at least 1, got {self.epochs}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UsageError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the sample ids as a list)."""
        return plain_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenseFinetuneSpec:
        """Inverse of `to_dict`."""
        kw = known_fields(cls, d)
        kw["sample_ids"] = tuple(kw.get("sample_ids") or ())
        return cls(**kw)

    def training(self) -> HeadTraining:
        """The training settings of the head."""
        from advisor.dense.finetune_heads import HeadTraining

        return HeadTraining(epochs=self.epochs, batch=self.batch, lr=self.lr, seed=self.seed)


@dataclass
class DenseFinetuneResult:
    """A dense fine-tune's outcome: the held-out metric with its interval, and how it was obtained.

    Attributes:
        status: ``done``; ``stopped`` (the budget ran out before any training: no value); ``skipped`` (the model
            cannot be fine-tuned here: `error` says why); ``failed``.
        value, ci: the metric (`metric`) on the held-out images and its 95% image-bootstrap interval (None below
            5 held-out images).
        boot: the metric on each seeded bootstrap resample (pairs with any other result on the same images).
        metrics: the full summary on the held-out images (AP50, per-class AP; per-class IoU, pixel accuracy).
        zero_shot: ``fine-tune-head``: the model's zero-shot figure on the same held-out images and the fine-tuned
            figure on the same shared classes, with their resample values (None otherwise).
        epochs, epochs_run, steps: asked, completed, optimiser steps run.
        stopped_reason: ``epochs`` (all ran), ``budget``, ``max-steps``.
        history: per epoch: mean loss, steps, seconds, validation metric.
        split: how the held-out images were chosen, and how many on each side.
        seconds, seconds_features: wall time in all, and of reading the frozen features.
    """

    model_id: str
    kind: str
    task: str
    metric: str
    status: str = "done"
    value: float | None = None
    ci: list[float] | None = None
    ci_method: str | None = None
    boot: list[float | None] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    zero_shot: dict[str, Any] | None = None
    epochs: int = 0
    epochs_run: int = 0
    steps: int = 0
    stopped_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    split: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    seconds_features: float = 0.0
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (everything, the bootstrap values included)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenseFinetuneResult:
        """Inverse of `to_dict` (unknown keys ignored)."""
        return cls(**known_fields(cls, d))

    @property
    def still_rising(self) -> bool:
        """Whether the held-out metric rose by more than 0.01 over the last completed epoch (not converged)."""
        vals = [float(h["val"]) for h in self.history if h.get("val") is not None]
        return len(vals) >= 2 and vals[-1] - vals[-2] > 0.01

    def summary(self) -> str:
        """One line: ``fine-tuned 3 epochs (new head on the frozen backbone): val mAP 0.412 [0.35, 0.47] …``."""
        if self.status in ("skipped", "failed"):
            return f"not fine-tuned: {self.error}"
        what = (
            "new head on the frozen backbone"
            if self.kind == "new-head"
            else "new class layers, backbone frozen"
        )
        if self.value is None:
            return f"fine-tune stopped before a figure ({self.error or self.stopped_reason}), {self.seconds:.0f} s"
        ci = (
            f" [{self.ci[0]:.3f}, {self.ci[1]:.3f}]" if self.ci else " (no interval: too few held-out images)"
        )
        stop = "" if self.stopped_reason == "epochs" else f", stopped by the {self.stopped_reason}"
        if self.still_rising:
            stop += "; still rising at the last epoch: more --finetune-epochs would raise it"
        return (
            f"fine-tuned {self.epochs_run} of {self.epochs} epochs ({what}{stop}): val {self.metric} {self.value:.3f}"
            f"{ci} on {self.split.get('val_images', '?')} held-out images, {self.seconds:.0f} s"
        )


# ----------------------------------------------------------------------------------------------- split
def _rarest_keys(samples: Sequence[DenseSample], n_classes: int) -> list[int]:
    """Each image's rarest class (by object count over `samples`), -1 for an image without objects."""
    freq = np.zeros(max(n_classes, 1), dtype=np.int64)
    for s in samples:
        np.add.at(freq, s.labels.astype(np.int64), 1)
    return [int(min(set(s.labels.tolist()), key=lambda c: freq[c])) if s.n_objects else -1 for s in samples]


def split_samples(
    ds: DenseDataset, *, seed: int, val_fraction: float = VAL_FRACTION, group_pattern: str | None = None
) -> tuple[list[DenseSample], list[DenseSample], dict[str, Any]]:
    """The (train, held-out) images of `ds` and how they were chosen (see the module docstring).

    Raises:
        DatasetError: fewer than 2 training or 1 held-out image would be left, or the group pattern leaves fewer
            than two groups.
        UsageError: an invalid `group_pattern`.
    """
    samples = list(ds.samples)
    own = next((v for v in VAL_SPLITS if any(s.split == v for s in samples)), None)
    if own is not None and any(s.split == "train" for s in samples):
        train = [s for s in samples if s.split == "train"]
        val = [s for s in samples if s.split == own]
        unused = len(samples) - len(train) - len(val)
        how = f"the data's own {own} split held out (train: its train split"
        how += f"; {unused} images of other splits unused)" if unused else ")"
    elif group_pattern is not None:
        train, val, how = _group_split(samples, seed, val_fraction, group_pattern)
    else:
        keys = _rarest_keys(samples, ds.num_classes) if ds.task in BOX_TASKS else [0] * len(samples)
        held = _stratified_held_out(keys, val_fraction, seed)
        train = [s for i, s in enumerate(samples) if i not in held]
        val = [s for i, s in enumerate(samples) if i in held]
        strat = ", stratified by each image's rarest class" if ds.task in BOX_TASKS else ""
        how = f"{len(val)} of {len(samples)} images held out at random (seed {seed}{strat})"
    if len(train) < 2 or not val:
        raise DatasetError(
            f"{ds.root}: {len(train)} training and {len(val)} held-out images: too few for a fine-tune check",
            hint="use more images (--max-samples) or drop --finetune-top",
        )
    return train, val, {"how": how, "train_images": len(train), "val_images": len(val)}


def _stratified_held_out(keys: list[int], val_fraction: float, seed: int) -> set[int]:
    """Indices to hold out: ``round(val_fraction * n)`` (at least 1) in all, shared among the strata of `keys` in
    proportion to their sizes (largest remainders), each stratum's picks drawn at random (seeded)."""
    rng = np.random.default_rng([seed, 11])
    strata = {k: [i for i, key in enumerate(keys) if key == k] for k in sorted(set(keys))}
    for idx in strata.values():
        rng.shuffle(idx)
    target = max(1, int(round(val_fraction * len(keys))))
    exact = {k: val_fraction * len(v) for k, v in strata.items()}
    quota = {k: int(np.floor(x)) for k, x in exact.items()}
    order = sorted(strata, key=lambda k: (-(exact[k] - quota[k]), k))
    for k in order[: max(0, target - sum(quota.values()))]:
        quota[k] += 1
    return {i for k, idx in strata.items() for i in idx[: quota[k]]}


def _group_split(
    samples: list[DenseSample], seed: int, val_fraction: float, pattern: str
) -> tuple[list[DenseSample], list[DenseSample], str]:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--group-pattern {pattern!r} is not a valid regex: {e}") from None

    def group(s: DenseSample) -> str:
        m = rx.search(s.path.name)
        return (m.group(1) if m.groups() else m.group(0)) if m else s.id

    groups = sorted({group(s) for s in samples})
    if len(groups) < 2:
        raise DatasetError(
            f"--group-pattern {pattern!r} gives {len(groups)} group: nothing can be held out whole",
            hint="check the pattern against the image file names",
        )
    order = list(np.random.default_rng([seed, 13]).permutation(len(groups)))
    held: set[str] = set()
    for gi in order:
        if (
            sum(group(s) in held for s in samples) >= val_fraction * len(samples)
            or len(held) == len(groups) - 1
        ):
            break
        held.add(groups[int(gi)])
    val = [s for s in samples if group(s) in held]
    train = [s for s in samples if group(s) not in held]
    return (
        train,
        val,
        f"whole groups held out (--group-pattern {pattern}): {len(held)} of {len(groups)} groups",
    )


# ----------------------------------------------------------------------------------------------- running
# model-id prefix -> why a ``fine-tune-head`` cannot run on it (None: it can); the first match wins
_HEAD_FINETUNE_BY_PREFIX: tuple[tuple[str, str | None], ...] = (
    ("torchvision:", None),
    (
        "pkg:ultralytics/",
        "Ultralytics models train with their own CLI (`yolo train`), out of process; not run here",
    ),
    ("hf:", "hf: detectors and segmenters fine-tune with transformers' own training loop; not run here"),
    ("pkg:", "a packaged ONNX/TFLite (or fixed-head) model: it has no trainable class head here"),
)


def trainable_reason(model_id: str, kind: str) -> str | None:
    """Why `model_id` cannot be fine-tuned as `kind` here (None: it can)."""
    if kind == "new-head":
        return None
    for prefix, reason in _HEAD_FINETUNE_BY_PREFIX:
        if model_id.startswith(prefix):
            return reason
    return "only torchvision detectors and segmenters have a head fine-tune here"


def working_size(samples: Sequence[DenseSample]) -> tuple[int, int]:
    """(H, W) of a new-head fine-tune: the median image, longer side in [`MIN_SIDE`, `MAX_SIDE`], multiples of 32."""
    from advisor.dense.backbones import working_size as scaled

    w = int(np.median([s.width for s in samples]))
    h = int(np.median([s.height for s in samples]))
    return scaled(w, h, min(max(w, h, MIN_SIDE), MAX_SIDE))


def _select(ds: DenseDataset, ids: Sequence[str]) -> DenseDataset:
    if not ids:
        return ds
    by_id = {s.id: s for s in ds.samples}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DatasetError(
            f"{ds.root}: {len(missing)} sample id(s) of the fine-tune are not in the data (e.g. {missing[0]})",
            hint="the data changed since the run drew its sample; rerun advisor recommend",
        )
    return dataclasses.replace(ds, samples=[by_id[i] for i in ids])


def load_spec_data(spec: DenseFinetuneSpec) -> DenseDataset:
    """The dataset a spec names (read with its task, split and ignore index)."""
    from advisor.dense.readers import load_dense

    ignore = 255 if spec.ignore_index is None else int(spec.ignore_index)
    return load_dense(spec.data, task=spec.task, split=spec.split, ignore_index=ignore)


def finetune_dense(
    spec: DenseFinetuneSpec,
    *,
    dataset: DenseDataset | None = None,
    cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> DenseFinetuneResult:
    """Run (or read back from the cache) the fine-tune `spec` describes.

    Args:
        spec: what to fine-tune, on which images, how long.
        dataset: the already read dataset ``spec.data`` names (saves reading it again).
        cache: read and write the result in the cache (``cache_dir("dense-finetune")``).
        progress: one-line progress messages.

    Returns:
        The result; a model that cannot be fine-tuned here is a ``skipped`` result, not an error.

    Raises:
        DatasetError, UsageError: the data cannot give a held-out split; ModelLoadError: the model cannot load.
    """
    from advisor.dense.finetune_heads import Clock

    ds = _select(dataset if dataset is not None else load_spec_data(spec), spec.sample_ids)
    if ds.task not in ("detection", "segmentation"):
        raise UsageError(
            f"{ds.root}: fine-tune checks cover detection and semantic segmentation, not {ds.task}",
            hint="use --task detection to fine-tune on the boxes, or drop --finetune-top",
        )
    base = DenseFinetuneResult(spec.model_id, spec.kind, ds.task, TASK_METRIC[ds.task], epochs=spec.epochs)
    reason = trainable_reason(spec.model_id, spec.kind)
    if reason is not None:
        return dataclasses.replace(base, status="skipped", error=reason)
    path = _cache_path(spec, ds) if cache else None
    if path is not None and path.is_file():
        try:
            return dataclasses.replace(DenseFinetuneResult.from_dict(_read_json(path)), cached=True)
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)  # damaged: recomputed
    train, val, split = split_samples(
        ds, seed=spec.seed, val_fraction=spec.val_fraction, group_pattern=spec.group_pattern
    )
    tr, va = dataclasses.replace(ds, samples=train), dataclasses.replace(ds, samples=val)
    clock = Clock(None if spec.budget_minutes is None else 60.0 * spec.budget_minutes)
    say = progress or (lambda _m: None)
    run = _new_head if spec.kind == "new-head" else _own_head
    res = run(
        _Job(spec, tr, va, clock, say),
        dataclasses.replace(base, split=split | {"val_ids": [s.id for s in val]}),
    )
    res.seconds = clock.elapsed()
    res.settings = spec.training().to_dict() | res.settings
    # a run the budget cut short depends on the machine's speed: not kept
    keep = res.status == "done" and res.stopped_reason != "budget"
    if path is not None and keep:
        from advisor.io import atomic_write_json

        atomic_write_json(path, res.to_dict())
    return res


def _read_json(path: Path) -> dict[str, Any]:
    import json

    d = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(d, dict):
        raise ValueError("not an object")
    return d


def _cache_path(spec: DenseFinetuneSpec, ds: DenseDataset) -> Path:
    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    spec_d = spec.to_dict() | {"device": "any"}  # the device changes the cost, not what is measured
    key = stable_hash({"spec": spec_d, "data": ds.fingerprint(), "version": FT_VERSION})
    return cache_dir("dense-finetune") / f"{key}.json"


class _Job(NamedTuple):
    """What a fine-tune runner (`_new_head`, `_own_head`) works from."""

    spec: DenseFinetuneSpec
    train: DenseDataset
    val: DenseDataset
    clock: Clock
    say: Callable[[str], None]


def _bootstrap(spec: DenseFinetuneSpec, task: str) -> int:
    from advisor.dense.finetune_eval import BOOTSTRAP

    return spec.bootstrap if spec.bootstrap is not None else BOOTSTRAP[task]


def _finish(
    res: DenseFinetuneResult, spec: DenseFinetuneSpec, val: DenseDataset, preds: Any, log: TrainLog, **kw: Any
) -> DenseFinetuneResult:
    """Fill `res` from the training log and the held-out predictions (`finetune_eval.evaluate_val`)."""
    from advisor.dense.finetune_eval import evaluate_val

    b = _bootstrap(spec, val.task)
    ev = evaluate_val(val.task, val, preds, b=b, seed=spec.seed, **kw)
    res.value, res.ci, res.boot, res.metrics = ev["value"], ev["ci"], ev["boot"], ev["metrics"]
    res.ci_method = (
        f"95% percentile image bootstrap ({b} resamples of the {len(val.samples)} held-out images)"
    )
    res.epochs_run, res.steps, res.stopped_reason = log.epochs_run, log.steps, log.stopped_reason
    res.history = log.history
    return res


def _new_head(job: _Job, res: DenseFinetuneResult) -> DenseFinetuneResult:
    """A new head (FCOS / decoder) on the frozen backbone's cached maps."""
    from advisor.dense import finetune_heads as H
    from advisor.dense.backbones import dense_backbone, load_backbone
    from advisor.dense.finetune_eval import det_map, image_confusion
    from advisor.runtime import resolve_device

    spec, train, val, clock, say = job
    dev = resolve_device(spec.device)
    bb = dense_backbone(load_backbone(spec.model_id, pretrained=spec.pretrained, device=str(dev)))
    size = working_size(train.samples + val.samples)
    say(
        f"fine-tune {spec.model_id}: reading frozen features of {len(train.samples) + len(val.samples)} images"
    )
    try:
        tr_maps = H.cache_maps(bb, train.samples, size, clock)
        va_maps = H.cache_maps(bb, val.samples, size, clock)
    except TimeoutError as e:
        return dataclasses.replace(res, status="stopped", stopped_reason="budget", error=str(e))
    res.seconds_features = clock.elapsed()
    res.settings = {
        "working_size_hw": list(size),
        "taps": [[t.module, t.stride, t.channels] for t in bb.taps],
    }
    cfg = spec.training()
    n = val.num_classes
    if val.task in BOX_TASKS:
        targets = H.det_targets(train.samples, size)

        def val_map(parts: Any) -> float | None:
            return det_map(val, H.predict_detector(parts, va_maps, val.samples, size))

        parts, log = H.train_detector(tr_maps, targets, n, size, cfg, clock, evaluate=val_map, device=dev)
        return _finish(res, spec, val, H.predict_detector(parts, va_maps, val.samples, size), log)
    masks = [val.read_mask(s) for s in val.samples]
    tr_masks = [H.resize_mask(train.read_mask(s), size) for s in train.samples]

    def confusions(dec: Any) -> list[np.ndarray]:
        preds = H.predict_segmenter(dec, va_maps, [m.shape for m in masks])
        return [image_confusion(p, t, n, val.ignore_index) for p, t in zip(preds, masks, strict=True)]

    def val_miou(dec: Any) -> float | None:
        from advisor.dense.finetune_eval import miou

        return miou(np.sum(confusions(dec), axis=0))

    dec, log = H.train_segmenter(
        tr_maps, tr_masks, n, val.ignore_index, cfg, clock, evaluate=val_miou, device=dev
    )
    return _finish(res, spec, val, confusions(dec), log)


def _own_head(job: _Job, res: DenseFinetuneResult) -> DenseFinetuneResult:
    """A torchvision model with new class layers (backbone frozen), beside its zero-shot figure."""
    from advisor.dense.finetune_compare import own_head_predictions, zero_shot_on_val
    from advisor.dense.finetune_torchvision import adapt_head, train_torchvision
    from advisor.dense.models import load_dense_model

    spec, train, val, clock, say = job
    model: Any = load_dense_model(spec.model_id, pretrained=spec.pretrained, device=spec.device)
    say(f"fine-tune {spec.model_id}: zero-shot on {len(val.samples)} held-out images")
    zs = zero_shot_on_val(model, val)
    res.settings = adapt_head(model, list(train.classes))

    def evaluate() -> float | None:
        return own_head_predictions(model, val)[0]

    log = train_torchvision(model, train, spec.training(), clock, evaluate)
    _value, preds, kw, raw = own_head_predictions(model, val)
    res = _finish(res, spec, val, preds, log, **kw)
    if zs is not None:
        from advisor.dense.finetune_compare import shared_class_figures

        res.zero_shot = shared_class_figures(zs, raw, val, b=_bootstrap(spec, val.task), seed=spec.seed)
    return res
