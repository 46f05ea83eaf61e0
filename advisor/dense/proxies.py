"""Frozen-feature proxies for dense tasks: the crop probe (detection), the pixel probe (segmentation), their floors.

A proxy says how well a backbone's frozen features separate the data's classes; it is not the task metric
(mAP / mIoU of a trained detector or segmenter) and is always labelled as a proxy.

- `crop_probe`: ground-truth box crops (`advisor.dense.proxy_data.sample_boxes`, class-stratified, with a context
  margin) → pooled features through the model's own preprocessing → the existing linear probe
  (`advisor.probe.linear_probe`, group K-fold with the image as the group, so the crops of one image are never on
  both sides of a fold) and the existing transferability scores (`advisor.scores.compute_scores`). The value is the
  out-of-fold probe accuracy with its 95 % Wilson interval.
- `pixel_probe`: class-stratified mask pixels per image (`ignore_index` never sampled) → the backbone's feature
  maps at strides 8/16/32 (`advisor.dense.backbones`) read bilinearly at each pixel centre (the value a bilinear
  upsampling to the image size gives there), concatenated → the linear probe grouped by image → mIoU of the
  out-of-fold predictions from one confusion matrix (`advisor.metrics.segmentation.SegmentationConfusion`).
  Repeated with fresh pixels (mean ± sd over repeats); the 95 % interval is a bootstrap over images of the pooled
  repeats. Pixels are class-balanced within each image, so this mIoU weighs rare classes up compared with the mIoU
  of a full mask.
- Floors, evaluated the same way: `RAW_PIXELS` (crops: 16x16x3 downsampled pixels; pixels: RGB + 5x5 neighbourhood
  mean/std) and the random-init twin (the same id with ``pretrained=False``, see `advisor.dense.backbones`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from advisor.dense import proxy_data as pdata
from advisor.dense.types import DenseDataset
from advisor.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

    from advisor.dense.backbones import DenseBackbone
    from advisor.models.base import LoadedModel
    from advisor.probe import ProbeResult

log = logging.getLogger(__name__)

ProxyKind = Literal["crop-probe", "pixel-probe", "roi-probe"]
RAW_PIXELS = "floor:raw-pixel"  # the model id of the raw-pixel floor
DEFAULT_PROXY_SCORES: tuple[str, ...] = ("logme", "hscore_shrinkage", "knn_loo", "ncm_loo", "leep", "nce")
PIXEL_SCORE_CAP = 3000  # pixels the transferability scores see (a stratified subsample of repeat 0)
N_BOOT = 200  # image-bootstrap resamples for the pixel probe's interval
BATCH = 32
MAX_SIDE = 512  # pixel probe: default working size = the image's own, its longer side capped here
_PROBE_SUMMARY = ("protocol", "folds", "best_c", "macro_f1", "accuracy_ci", "seconds", "notes")


@dataclass
class ProxyResult:
    """One frozen-feature proxy measurement.

    Attributes:
        name: ``<kind> <model id>`` plus ``(random-init)`` for a twin.
        model_id: the backbone id (`RAW_PIXELS` for the raw-pixel floor).
        kind: ``crop-probe``, ``pixel-probe`` or ``roi-probe`` (`advisor.dense.roi_probe`).
        value: crop probe: out-of-fold probe accuracy; pixel probe: mean pixel-probe mIoU over repeats; ROI probe:
            class LogME + box-regression LogME (TLogME-style).
        ci: 95 % interval of `value` (crop: Wilson; pixel: bootstrap over images), None when not computed.
        scores: transferability score name → value (None when not applicable or degenerate).
        n_items: crops, or sampled pixels per repeat.
        n_groups: images the items come from.
        seconds: wall time of the whole measurement (loading, features, probe, scores).
        measured: one line saying what was measured.
        pretrained: the backbone's weights are pretrained (False: random-init twin; None: the raw floor).
        accuracy: crop: = value; pixel: mean out-of-fold pixel accuracy over repeats; ROI: the class probe's
            out-of-fold accuracy (classes + background).
        box_r2: ROI probe: mean out-of-fold ridge R² of the foreground ROIs' box deltas (None otherwise).
        value_sd: pixel probe: sd of mIoU over repeats (0.0 for one repeat, None for the crop probe).
        repeat_values: pixel probe: mIoU of each repeat.
        per_class: class name → out-of-fold recall (crop) or IoU (pixel, repeat 0).
        oof_ids, oof_y, oof_pred: crop probe: each crop's id (``<image id>#<box index>``), class and out-of-fold
            prediction (paired across models: the crops depend only on the data and seed); None for pixels, whose
            neighbouring samples are not independent enough for a paired test.
        probe: the probe's protocol, folds, chosen C and macro-F1.
        skipped: items left out, by reason.
        backbone: taps / normalisation / weights of the backbone (pixel probe), or its id and revision.
        notes: caveats worth showing.
    """

    name: str
    model_id: str
    kind: ProxyKind
    value: float
    ci: tuple[float, float] | None
    scores: dict[str, float | None]
    n_items: int
    n_groups: int
    seconds: float
    measured: str
    pretrained: bool | None = None
    accuracy: float | None = None
    box_r2: float | None = None
    value_sd: float | None = None
    repeat_values: list[float] = field(default_factory=list)
    per_class: dict[str, float | None] = field(default_factory=dict)
    oof_ids: list[str] | None = None
    oof_y: list[int] | None = None
    oof_pred: list[int] | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (every field, in field order; the interval as a list)."""
        return dataclasses.asdict(self) | {"ci": list(self.ci) if self.ci is not None else None}


def _name(kind: str, model_id: str, pretrained: bool | None) -> str:
    return f"{kind} {model_id}" + (" (random-init)" if pretrained is False else "")


def _model(model_or_id: str | LoadedModel, pretrained: bool, device: str) -> LoadedModel | None:
    """The loaded backbone, or None for the raw-pixel floor."""
    if isinstance(model_or_id, str) and model_or_id == RAW_PIXELS:
        return None
    from advisor.dense.backbones import load_backbone

    return load_backbone(model_or_id, pretrained=pretrained, device=device)


def _scores(x: np.ndarray, y: np.ndarray, logits: np.ndarray | None, names: Sequence[str], seed: int) -> dict:
    """The transferability scores of (x, y) by name; a degenerate or inapplicable score is None."""
    from advisor.errors import ScoreError
    from advisor.scores import compute_scores

    if not names:
        return {}
    try:
        res = compute_scores(x, y, logits=logits, metrics=list(names), seed=seed)
    except ScoreError as e:
        log.warning("transferability scores failed: %s", e.message)
        return dict.fromkeys(names)
    return {k: (r.value if r.applicable else None) for k, r in res.items()}


def _probe_summary(pr: ProbeResult) -> dict[str, Any]:
    """The `ProbeResult.to_dict` fields a proxy result keeps (`ProxyResult.probe`)."""
    d = pr.to_dict()
    return {k: d[k] for k in _PROBE_SUMMARY}


def _drop_rare(y: np.ndarray, skipped: dict[str, int]) -> np.ndarray:
    """A mask of the items whose class has at least 2 items (the probe needs 2 per class); counts the rest."""
    counts = np.bincount(y, minlength=int(y.max()) + 1 if len(y) else 0)
    keep = counts[y] >= 2 if len(y) else np.zeros(0, dtype=bool)
    if (~keep).any():
        skipped["rare-class"] = skipped.get("rare-class", 0) + int((~keep).sum())
    return keep


def _check_probeable(what: str, y: np.ndarray, groups: Sequence[str]) -> None:
    if len(np.unique(y)) < 2:
        raise UsageError(
            f"the {what} needs items of at least 2 classes (with 2 or more each), got {len(np.unique(y))}",
            hint="use more images or a larger sample",
        )
    if len(set(groups)) < 2:
        raise UsageError(f"the {what} needs items from at least 2 images", hint="use more images")


# ------------------------------------------------------------------------------------------------ crop probe
def crop_features(
    loaded: LoadedModel, crops: Sequence[Image.Image], *, batch_size: int = BATCH
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled features (and source-head logits, when the model has a head) of `crops`, in the model's own
    preprocessing: ``((N, D), (N, Z) or None)``."""
    import torch

    feats, logits = [], []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            out = loaded.forward(loaded.preprocess(list(crops[i : i + batch_size])))
            feats.append(out.features.cpu().numpy())
            if out.logits is not None:
                logits.append(out.logits.cpu().numpy())
    x = np.concatenate(feats) if feats else np.zeros((0, loaded.feature_dim), dtype=np.float32)
    return x, (np.concatenate(logits) if logits and len(logits) == len(feats) else None)


def crop_probe(
    model_or_id: str | LoadedModel,
    ds: DenseDataset,
    *,
    max_crops: int = 500,
    seed: int = 0,
    context: float = 0.1,
    device: str = "cpu",
    pretrained: bool = True,
    min_box_side: float = 4.0,
    folds: int = 5,
    scores: Sequence[str] = DEFAULT_PROXY_SCORES,
) -> ProxyResult:
    """The crop probe of one backbone (or `RAW_PIXELS`) on a detection dataset.

    Args:
        model_or_id: a model id (loaded through `advisor.models.load_model`), a `LoadedModel`, or `RAW_PIXELS`.
        ds: the dataset (boxes and labels; crowd boxes are never used).
        max_crops: crops sampled, stratified by class.
        seed: crop sampling, probe folds and scores.
        context: margin added on each side, as a fraction of the box's width/height.
        device: where the backbone runs.
        pretrained: False: the random-init twin of the id.
        min_box_side: boxes with a side under this many pixels are skipped (counted as ``tiny``).
        folds: outer folds of the probe (group K-fold over images).
        scores: transferability scores to compute on the same features.

    Returns:
        A `ProxyResult` (value: probe accuracy; ci: Wilson).

    Raises:
        UsageError: fewer than 2 classes with 2+ crops, or crops from a single image.
    """
    from advisor.probe import linear_probe

    t0 = time.perf_counter()
    loaded = _model(model_or_id, pretrained, device)
    model_id = RAW_PIXELS if loaded is None else loaded.model_id
    pre = None if loaded is None else loaded.pretrained
    sample = pdata.sample_boxes(ds, max_crops=max_crops, seed=seed, min_side=min_box_side)
    crops, kept = pdata.load_crops(ds, sample, context=context)
    logits = None
    if loaded is None:
        x = pdata.raw_crop_features(crops)
    else:
        x, logits = crop_features(loaded, crops)
    y = sample.labels[kept]
    skipped = dict(sample.skipped)
    keep = _drop_rare(y, skipped)
    picks = [sample.picks[k] for k in kept]
    ids = [f"{ds.samples[i].id}#{j}" for (i, j), k in zip(picks, keep, strict=True) if k]
    groups = [ds.samples[i].id for (i, _j), k in zip(picks, keep, strict=True) if k]
    x, y = x[keep], y[keep]
    logits = logits[keep] if logits is not None else None
    _check_probeable("crop probe", y, groups)
    pr = linear_probe(x, y, groups=groups, folds=folds, seed=seed, device=device)
    sc = _scores(x, y, logits, scores, seed)
    n_img = len(set(groups))
    measured = (
        f"linear-probe accuracy (out-of-fold, {pr.folds}-fold CV, images kept whole) on {len(y)} ground-truth box "
        f"crops (+{context:.0%} context) of {len(np.unique(y))} classes from {n_img} images; features: "
        + ("16x16x3 raw crop pixels" if loaded is None else f"pooled {model_id} in its own preprocessing")
    )
    return ProxyResult(
        name=_name("crop-probe", model_id, pre),
        model_id=model_id,
        kind="crop-probe",
        value=float(pr.accuracy),
        ci=(float(pr.accuracy_ci[0]), float(pr.accuracy_ci[1])),
        scores=sc,
        n_items=len(y),
        n_groups=n_img,
        seconds=time.perf_counter() - t0,
        measured=measured,
        pretrained=pre,
        accuracy=float(pr.accuracy),
        per_class={ds.classes[c]: v for c, v in enumerate(pr.per_class_accuracy) if c < len(ds.classes)},
        oof_ids=ids,
        oof_y=[int(v) for v in y],
        oof_pred=[int(v) for v in pr.oof_pred],
        probe=_probe_summary(pr),
        skipped=skipped,
        backbone=_backbone_info(loaded),
        notes=list(pr.notes),
    )


def _backbone_info(loaded: LoadedModel | None) -> dict[str, Any]:
    if loaded is None:
        return {"model_id": RAW_PIXELS}
    return {"model_id": loaded.model_id, "pretrained": loaded.pretrained, "revision": loaded.revision}


# ------------------------------------------------------------------------------------------------ pixel probe
@dataclass
class _PixelItems:
    """Sampled pixels of every repeat: features, classes, image id and repeat of each."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    image: list[np.ndarray] = field(default_factory=list)
    repeat: list[np.ndarray] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def _gather_pixels(
    bb: DenseBackbone | None,
    ds: DenseDataset,
    order: Sequence[int],
    *,
    n: int,
    seed: int,
    repeats: int,
    side: int | None,
) -> _PixelItems:
    """Features and classes of the sampled pixels of every image in `order`, all repeats at one forward pass."""
    items = _PixelItems()
    for i in order:
        s = ds.samples[i]
        mask = pdata.read_mask(ds, s)
        img = pdata.open_rgb(s.path)
        if mask is None or img is None:
            items.skip("unreadable-image" if img is None else "unreadable-mask")
            continue
        if mask.shape != (img.height, img.width):
            items.skip("mask-size-mismatch")
            log.warning("%s: mask %s != image %s; skipped", s.id, mask.shape, (img.height, img.width))
            continue
        pos = pdata.pixel_positions(
            mask,
            n=n,
            seed=seed,
            repeats=repeats,
            image_index=i,
            ignore_index=ds.ignore_index,
            num_classes=ds.num_classes,
        )
        ys = np.concatenate([p[0] for p in pos])
        xs = np.concatenate([p[1] for p in pos])
        if len(ys) == 0:
            items.skip("no-scored-pixels")
            continue
        items.x.append(pixel_features(bb, img, ys, xs, side=side))
        items.y.append(mask[ys, xs])
        items.image.append(np.full(len(ys), i, dtype=np.int64))
        items.repeat.append(
            np.concatenate([np.full(len(p[0]), r, dtype=np.int64) for r, p in enumerate(pos)])
        )
    return items


def pixel_features(
    bb: DenseBackbone | None, img: Image.Image, ys: np.ndarray, xs: np.ndarray, *, side: int | None = None
) -> np.ndarray:
    """``(P, D)`` float32 features of the pixels ``(ys, xs)`` of `img`: the raw floor's (``bb`` None) or the
    backbone's multi-stride maps (the image resized so its longer side is `side`, default its own capped at
    `MAX_SIDE`) read bilinearly at each pixel centre."""
    from advisor.dense.backbones import feature_maps, image_tensor, working_size

    if bb is None:
        return pdata.raw_pixel_features(np.asarray(img), ys, xs).astype(np.float32)
    work = working_size(img.width, img.height, side or min(max(img.width, img.height), MAX_SIDE))
    maps = feature_maps(bb, image_tensor([img], work, bb.mean, bb.std))
    return pdata.features_at(maps, ys, xs, img.height, img.width).astype(np.float32)


def pixel_probe(
    model_or_id: str | LoadedModel,
    ds: DenseDataset,
    *,
    pixels_per_image: int = 64,
    seed: int = 0,
    repeats: int = 3,
    device: str = "cpu",
    pretrained: bool = True,
    side: int | None = None,
    max_images: int | None = None,
    folds: int = 5,
    scores: Sequence[str] = DEFAULT_PROXY_SCORES,
) -> ProxyResult:
    """The pixel probe of one backbone (or `RAW_PIXELS`) on a segmentation dataset.

    Args:
        model_or_id: a model id, a `LoadedModel`, or `RAW_PIXELS`.
        ds: the dataset (index masks; `DenseDataset.ignore_index` is never sampled).
        pixels_per_image: pixels sampled per image and repeat, stratified by the classes in its mask.
        seed: pixel sampling, probe folds, bootstrap.
        repeats: independent pixel samples; the value is the mean mIoU over them.
        device: where the backbone runs.
        pretrained: False: the random-init twin of the id.
        side: longer side of the working size each image is resized to (sides rounded to multiples of 32;
            default: the image's own size, its longer side capped at `MAX_SIDE`).
        max_images: cap on images (a seeded random subset).
        folds: outer folds of the probe (group K-fold over images).
        scores: transferability scores computed on repeat 0's pixels (a stratified subsample of at most
            `PIXEL_SCORE_CAP`).

    Returns:
        A `ProxyResult` (value: mean pixel-probe mIoU; ci: bootstrap over images; value_sd over repeats).

    Raises:
        UsageError: no masks, fewer than 2 classes, or pixels from a single image.
    """
    from advisor.dense.backbones import dense_backbone

    t0 = time.perf_counter()
    if repeats < 1:
        raise UsageError(f"repeats must be at least 1, got {repeats}")
    loaded = _model(model_or_id, pretrained, device)
    bb = dense_backbone(loaded) if loaded is not None else None
    model_id = RAW_PIXELS if loaded is None else loaded.model_id
    order = pdata.image_order(ds, max_images, seed)
    if not order:
        raise UsageError(
            f"{ds.root}: the pixel probe needs segmentation masks; none found", hint="check the dataset"
        )
    items = _gather_pixels(bb, ds, order, n=pixels_per_image, seed=seed, repeats=repeats, side=side)
    if not items.x:
        raise UsageError(f"{ds.root}: no image with scored mask pixels could be read", hint="check the masks")
    x, y = np.concatenate(items.x), np.concatenate(items.y)
    image, rep = np.concatenate(items.image), np.concatenate(items.repeat)
    runs = [
        _pixel_repeat(
            x, y, image, rep == r, ds, seed=seed + r, folds=folds, device=device, skipped=items.skipped
        )
        for r in range(repeats)
    ]
    pred = np.full(len(y), -1, dtype=np.int64)
    for r, (p, _m, _pr) in enumerate(runs):
        pred[rep == r] = p
    scored = pred >= 0
    ci = pdata.bootstrap_miou(
        ds.num_classes, y[scored], pred[scored], image[scored], n_boot=N_BOOT, seed=seed
    )
    vals = [float(m.miou or 0.0) for _p, m, _pr in runs]
    first = rep == 0
    sub = pdata.stratified_take(y[first], PIXEL_SCORE_CAP, np.random.default_rng([seed, 404]))
    sc = _scores(x[first][sub], y[first][sub], None, scores, seed)
    m0, pr0 = runs[0][1], runs[0][2]
    return ProxyResult(
        name=_name("pixel-probe", model_id, None if loaded is None else loaded.pretrained),
        model_id=model_id,
        kind="pixel-probe",
        value=float(np.mean(vals)),
        ci=ci,
        scores=sc,
        n_items=int(first.sum()),
        n_groups=len(np.unique(image)),
        seconds=time.perf_counter() - t0,
        measured=_pixel_measured(bb, ds, int(first.sum()), len(np.unique(image)), repeats, pr0.folds, side),
        pretrained=None if loaded is None else loaded.pretrained,
        accuracy=float(np.mean([pr.accuracy for _p, _m, pr in runs])),
        value_sd=float(np.std(vals, ddof=1)) if repeats > 1 else 0.0,
        repeat_values=vals,
        per_class=dict(m0.per_class_iou),
        probe=_probe_summary(pr0) | {"pixel_accuracy": [float(pr.accuracy) for _p, _m, pr in runs]},
        skipped=dict(items.skipped),
        backbone=bb.describe() if bb is not None else {"model_id": RAW_PIXELS},
        notes=list(pr0.notes),
    )


def _pixel_repeat(
    x: np.ndarray,
    y: np.ndarray,
    image: np.ndarray,
    sel: np.ndarray,
    ds: DenseDataset,
    *,
    seed: int,
    folds: int,
    device: str,
    skipped: dict[str, int],
) -> tuple[np.ndarray, Any, Any]:
    """One repeat: the probe grouped by image on the pixels `sel`; ``(out-of-fold predictions, metrics, probe)``.

    Pixels of a class sampled fewer than twice are left out (counted in `skipped` as ``rare-class``)."""
    from advisor.probe import linear_probe

    xs, ys, gs = x[sel], y[sel], image[sel]
    keep = _drop_rare(ys, skipped)
    groups = [ds.samples[int(g)].id for g in gs[keep]]
    _check_probeable("pixel probe", ys[keep], groups)
    pr = linear_probe(xs[keep], ys[keep], groups=groups, folds=folds, seed=seed, device=device)
    pred = np.full(len(ys), -1, dtype=np.int64)
    pred[keep] = np.asarray(pr.oof_pred, dtype=np.int64)
    return pred, pdata.miou_of(ds.num_classes, ys[keep], pred[keep], list(ds.classes)), pr


def _pixel_measured(
    bb: DenseBackbone | None, ds: DenseDataset, n: int, n_img: int, repeats: int, folds: int, side: int | None
) -> str:
    if bb is None:
        feats = "RGB + 5x5 neighbourhood mean/std of the raw pixels"
    else:
        strides = "/".join(str(t.stride) for t in bb.taps)
        feats = f"{bb.loaded.model_id} maps at strides {strides} (images resized to longer side {side or f'own, at most {MAX_SIDE}'}), bilinear"
    return (
        f"pixel-probe mIoU (out-of-fold, {folds}-fold CV, images kept whole) on {n} class-stratified pixels from "
        f"{n_img} images (ignore index {ds.ignore_index} never sampled), mean of {repeats} repeats; features: {feats}"
    )


# ------------------------------------------------------------------------------------------------ floors, dispatch
def raw_pixel_floor(ds: DenseDataset, **kwargs: Any) -> ProxyResult:
    """The raw-pixel floor for `ds`'s task: `crop_probe` or `pixel_probe` with `RAW_PIXELS` (same keywords)."""
    return proxy_for(RAW_PIXELS, ds, **kwargs)


def random_init_proxy(model_id: str, ds: DenseDataset, **kwargs: Any) -> ProxyResult:
    """The random-init twin's proxy: `proxy_for` the same id with ``pretrained=False``."""
    return proxy_for(model_id, ds, pretrained=False, **kwargs)


def proxy_for(model_or_id: str | LoadedModel, ds: DenseDataset, **kwargs: Any) -> ProxyResult:
    """The task's proxy: `crop_probe` for detection and instance segmentation (the boxes), `pixel_probe` for
    segmentation.

    Raises:
        UsageError: the dataset's task is neither.
    """
    if ds.task in ("detection", "instance-segmentation"):
        return crop_probe(model_or_id, ds, **kwargs)
    if ds.task == "segmentation":
        return pixel_probe(model_or_id, ds, **kwargs)
    raise UsageError(f"no dense proxy for task {ds.task!r}", hint="detection or segmentation")
