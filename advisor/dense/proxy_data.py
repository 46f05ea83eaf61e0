"""What the dense proxies look at: seeded, class-stratified samples of box crops and mask pixels, and raw-pixel floors.

Both samples depend only on the dataset and the seed (never on the model), so every backbone, twin and floor is
probed on the same crops / pixels and their out-of-fold predictions pair up.

- Crops: every non-crowd ground-truth box whose sides are at least ``min_side`` pixels (crowd and tiny boxes are
  counted, not used), sampled up to ``max_crops`` stratified by class (equal shares, a small class gives all it
  has and the rest goes to the others), cut out with a context margin and clipped to the image.
- Pixels: per image, up to ``n`` positions stratified by the classes present in its mask (the same water-filling
  shares); pixels equal to ``ignore_index`` or outside the declared classes are never sampled. Features at a pixel
  are the feature maps read bilinearly at its centre (`features_at`); the probe's predictions are scored with one
  confusion matrix (`miou_of`) and an image bootstrap (`bootstrap_miou`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.types import DenseDataset, DenseSample

if TYPE_CHECKING:
    from PIL import Image

    from advisor.metrics.segmentation import SegmentationMetrics

log = logging.getLogger(__name__)

RAW_CROP_SIDE = 16  # the raw crop floor: the crop downsampled to 16 x 16 x 3
RAW_PATCH = 5  # the raw pixel floor: RGB + mean/std over the 5 x 5 neighbourhood


def allocate(available: np.ndarray, n: int) -> np.ndarray:
    """Equal shares of `n` over groups with `available` items each; a group short of its share gives all it has and
    the rest is shared among the others (water-filling). Returns the count to take from each group."""
    avail = np.asarray(available, dtype=np.int64)
    take = np.zeros_like(avail)
    left = int(min(n, avail.sum()))
    while left > 0:
        open_ = np.flatnonzero(take < avail)
        share = max(1, left // len(open_))
        for g in open_:
            add = int(min(share, avail[g] - take[g], left))
            take[g] += add
            left -= add
            if left == 0:
                break
    return take


def stratified_take(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `n` items stratified by `labels` (`allocate` shares, seeded choice within class), sorted."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    take = allocate(counts, n)
    out = [
        rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


# ------------------------------------------------------------------------------------------------ crops
@dataclass
class CropSample:
    """The boxes a crop probe looks at.

    Attributes:
        picks: ``(sample index, box index)`` of each chosen box.
        labels: class index of each chosen box.
        skipped: counts of boxes left out, by reason (``crowd``, ``tiny``, ``unreadable-image``, ``rare-class``).
        n_available: usable boxes before the ``max_crops`` cap.
    """

    picks: list[tuple[int, int]]
    labels: np.ndarray
    skipped: Counter = field(default_factory=Counter)
    n_available: int = 0


def sample_boxes(ds: DenseDataset, *, max_crops: int, seed: int, min_side: float = 4.0) -> CropSample:
    """Choose up to `max_crops` ground-truth boxes of `ds`, stratified by class (seeded).

    Crowd boxes and boxes with a side under `min_side` pixels are counted in ``skipped`` and never chosen.
    """
    picks: list[tuple[int, int]] = []
    labels: list[int] = []
    skipped: Counter = Counter()
    for i, s in enumerate(ds.samples):
        crowd = s.crowd_mask()
        for j, (box, lab) in enumerate(zip(s.boxes, s.labels, strict=True)):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            if crowd[j]:
                skipped["crowd"] += 1
            elif w < min_side or h < min_side:
                skipped["tiny"] += 1
            else:
                picks.append((i, j))
                labels.append(int(lab))
    y = np.asarray(labels, dtype=np.int64)
    idx = (
        stratified_take(y, max_crops, np.random.default_rng([seed, 101])) if len(y) else np.zeros(0, np.int64)
    )
    return CropSample([picks[k] for k in idx], y[idx], skipped, len(y))


def crop_box(image: Image.Image, box: Sequence[float], context: float) -> Image.Image:
    """The box grown by `context` x its width/height on each side, clipped to the image, as an RGB crop."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    mx, my = context * (x2 - x1), context * (y2 - y1)
    w, h = image.size
    left, top = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    return image.crop((left, top, right, bottom))


def open_rgb(path: object) -> Image.Image | None:
    """The image at `path` as RGB, or None when it cannot be read (the caller counts it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # type: ignore[arg-type]
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        log.warning("cannot read image %s: %s", path, e)
        return None


def load_crops(
    ds: DenseDataset, sample: CropSample, *, context: float
) -> tuple[list[Image.Image], list[int]]:
    """The crops of ``sample.picks`` (each image opened once) and the positions (into picks) that could be read."""
    by_image: dict[int, list[int]] = {}
    for k, (i, _j) in enumerate(sample.picks):
        by_image.setdefault(i, []).append(k)
    crops: dict[int, Image.Image] = {}
    for i, ks in by_image.items():
        img = open_rgb(ds.samples[i].path)
        if img is None:
            sample.skipped["unreadable-image"] += len(ks)
            continue
        for k in ks:
            crops[k] = crop_box(img, ds.samples[i].boxes[sample.picks[k][1]], context)
    kept = sorted(crops)
    return [crops[k] for k in kept], kept


def raw_crop_features(crops: Sequence[Image.Image], side: int = RAW_CROP_SIDE) -> np.ndarray:
    """The raw crop floor: each crop resized (bilinear) to ``side x side x 3``, flattened, in 0..1."""
    from PIL import Image as PILImage

    rows = [
        np.asarray(c.resize((side, side), PILImage.Resampling.BILINEAR), dtype=np.float32).ravel()
        for c in crops
    ]
    return np.stack(rows) / 255.0 if rows else np.zeros((0, side * side * 3), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ pixels
def read_mask(ds: DenseDataset, sample: DenseSample) -> np.ndarray | None:
    """The class-index mask of `sample` (`DenseDataset.read_mask`: raw values mapped, e.g. binary 0/255 → 0/1) as
    ``(H, W)`` int64, or None when it is missing or unreadable (logged; the caller counts it)."""
    from PIL import UnidentifiedImageError

    if sample.mask_path is None:
        return None
    try:
        arr = ds.read_mask(sample)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        log.warning("cannot read mask %s: %s", sample.mask_path, e)
        return None
    return arr if arr.ndim == 2 else None


def sample_pixels(
    mask: np.ndarray, n: int, rng: np.random.Generator, *, ignore_index: int | None, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)`` of up to `n` mask pixels stratified by the classes present (never `ignore_index`, never a value
    outside ``0..num_classes-1``)."""
    flat = mask.reshape(-1)
    valid = (flat >= 0) & (flat < num_classes)
    if ignore_index is not None:
        valid &= flat != ignore_index
    cand = np.flatnonzero(valid)
    if len(cand) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pick = cand[stratified_take(flat[cand], n, rng)]
    ys, xs = np.divmod(pick, mask.shape[1])
    return ys.astype(np.int64), xs.astype(np.int64)


def raw_pixel_features(rgb: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch: int = RAW_PATCH) -> np.ndarray:
    """The raw pixel floor at ``(ys, xs)``: RGB and the mean and std of each channel over the ``patch x patch``
    neighbourhood (clipped at the border), in 0..1: ``(P, 9)``."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    pad = patch // 2
    mean = F.avg_pool2d(x, patch, stride=1, padding=pad, count_include_pad=False)
    sq = F.avg_pool2d(x * x, patch, stride=1, padding=pad, count_include_pad=False)
    std = (sq - mean * mean).clamp_min(0).sqrt()
    yi, xi = torch.from_numpy(ys), torch.from_numpy(xs)
    parts = [t[0][:, yi, xi].T for t in (x, mean, std)]
    return torch.cat(parts, dim=1).numpy()


def pixel_positions(
    mask: np.ndarray,
    *,
    n: int,
    seed: int,
    repeats: int,
    image_index: int,
    ignore_index: int | None,
    num_classes: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(ys, xs)`` sampled in one mask for each repeat (seeded by seed, repeat and image index only)."""
    return [
        sample_pixels(
            mask,
            n,
            np.random.default_rng([seed, r, image_index]),
            ignore_index=ignore_index,
            num_classes=num_classes,
        )
        for r in range(repeats)
    ]


def features_at(maps: Sequence[Any], ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each ``(1, C, h, w)`` map read bilinearly at the pixel centres ``(ys, xs)`` of an ``height x width`` image
    (the value of a bilinear, align_corners=False upsampling to the image size), concatenated: ``(P, sum C)``."""
    import torch
    import torch.nn.functional as F

    gx = (torch.from_numpy(xs).float() + 0.5) / width * 2 - 1
    gy = (torch.from_numpy(ys).float() + 0.5) / height * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).view(1, 1, -1, 2)
    cols = [
        F.grid_sample(m, grid.to(m.device), mode="bilinear", padding_mode="border", align_corners=False)[
            0, :, 0, :
        ].T
        for m in maps
    ]
    return torch.cat(cols, dim=1).cpu().numpy()


def image_order(ds: DenseDataset, max_images: int | None, seed: int) -> list[int]:
    """Indices of the images with a mask, a seeded random subset of `max_images` when capped (never the first N)."""
    idx = [i for i, s in enumerate(ds.samples) if s.mask_path is not None]
    if max_images is not None and len(idx) > max_images:
        rng = np.random.default_rng([seed, 202])
        idx = sorted(rng.choice(idx, size=max_images, replace=False).tolist())
    return idx


def miou_of(
    num_classes: int, y: np.ndarray, pred: np.ndarray, class_names: list[str] | None = None
) -> SegmentationMetrics:
    """Segmentation metrics of sampled pixels: one confusion matrix of classes `y` vs predictions `pred`."""
    from advisor.metrics.segmentation import SegmentationConfusion

    conf = SegmentationConfusion(num_classes, ignore_index=None, class_names=class_names)
    conf.update(pred, y)
    return conf.result()


def bootstrap_miou(
    num_classes: int, y: np.ndarray, pred: np.ndarray, image: np.ndarray, *, n_boot: int = 200, seed: int = 0
) -> tuple[float, float] | None:
    """95 % percentile interval of mIoU over images resampled with replacement (all repeats pooled)."""
    uniq = np.unique(image)
    if len(uniq) < 2 or n_boot <= 0:
        return None
    rows = {g: np.flatnonzero(image == g) for g in uniq}
    rng = np.random.default_rng([seed, 303])
    vals = []
    for _ in range(n_boot):
        take = np.concatenate([rows[g] for g in rng.choice(uniq, size=len(uniq), replace=True)])
        m = miou_of(num_classes, y[take], pred[take]).miou
        if m is not None:
            vals.append(m)
    if not vals:
        return None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)
