"""The ROI probe of detection data: ROI-aligned pyramid features, a class term and a box-regression term (TLogME-style).

Where the crop probe asks "do a backbone's pooled features of a ground-truth crop tell its class?", the ROI probe
asks what a two-stage detector head asks of the same frozen features: for proposals around the objects and in the
background, do the pyramid features at the proposal tell (1) its class or background and (2) how to move the
proposal onto the object? It is a proxy, not mAP.

- Images: a seeded subset (never the first N) of those with a usable box; each runs once through the backbone at
  its working size (the image's own, longer side capped at `MAX_SIDE`, sides rounded to multiples of 32), and the
  feature maps of its stride taps (8/16/32, `advisor.dense.backbones`) are kept.
- ROIs (`make_rois`, a function of the data and seed only, so every model sees the same ROIs): each non-crowd,
  non-tiny ground-truth box itself, `JITTER` seeded jittered proposals around it with IoU >= `FG_IOU` (foreground:
  its class and box-regression target), and `BACKGROUND` random proposals per box with IoU < `BG_IOU` with every
  box of the image, crowd and tiny ones included (background class). A class-stratified sample of `max_rois` is kept.
- Level (`roi_levels`): the FPN rule k = clip(k0 + floor(log2(sqrt(w h) / s0))), k0 = 4, s0 = 224, on the ROI's
  size at the working size; level k reads the tap of stride 2^k (the nearest tap when the backbone lacks it).
- Features: `torchvision.ops.roi_align` (aligned, 2x2 samples per bin) of the ROI on its level's map to a
  `GRID` x `GRID` grid, flattened. The backbones' levels have different channel counts and there is no FPN neck to
  equalise them, so the vector has one block per level and only the ROI's own level block is filled (the rest 0):
  a linear model on it is a separate linear head per level, as an FPN head is per level after its neck.
- Class term: the out-of-fold linear-probe accuracy (`advisor.probe.linear_probe`, group K-fold by image) over the
  data's classes + background, and LogME on the same features and labels.
- Box term: Faster R-CNN deltas (`encode_deltas`: dx, dy scaled by 10, dw, dh by 5) of the foreground ROIs to their
  box; the out-of-fold R² of a ridge regression (group K-fold by image, ridge strength by an inner group K-fold),
  mean over the 4 deltas; and the regression LogME (`advisor.scores.metrics.likelihood.logme_regression`, deltas
  z-scored, mean evidence over the 4).
- Value: TLogME-style, class LogME + box LogME (both per-sample log evidence, nats); accuracy and box R² are
  reported beside it (`ProxyResult.accuracy`, `ProxyResult.box_r2`, ``scores``, ``probe``).
- Floors: `RAW_PIXELS` (the ROI of the raw 0..1 RGB image at the working size, roi_align'ed to `RAW_GRID` x
  `RAW_GRID` x 3) and the random-init twin (``pretrained=False``), measured the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense import proxy_data as pdata
from advisor.dense.proxies import (
    RAW_PIXELS,
    ProxyResult,
    _backbone_info,
    _check_probeable,
    _drop_rare,
    _model,
    _name,
    _probe_summary,
    _scores,
)
from advisor.dense.types import DenseDataset
from advisor.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

    from advisor.dense.backbones import DenseBackbone

log = logging.getLogger(__name__)

JITTER = 2  # jittered foreground proposals per ground-truth box
BACKGROUND = 1  # background proposals per ground-truth box
FG_IOU, BG_IOU = 0.5, 0.3  # foreground: IoU >= 0.5 with its box; background: IoU < 0.3 with every box
GRID = 3  # roi_align output grid of the backbone's maps
RAW_GRID = 8  # the raw floor's roi_align grid (8 x 8 x 3)
MAX_SIDE = 512  # working size: the image's own, longer side capped here
K0, S0 = 4, 224  # FPN level rule (Lin et al. 2017, eq. 1)
BOX_WEIGHTS = (
    10.0,
    10.0,
    5.0,
    5.0,
)  # Faster R-CNN / torchvision BoxCoder weights (= 1 / (0.1, 0.1, 0.2, 0.2))
RIDGE_GRID = (
    0.01,
    0.1,
    1.0,
    10.0,
    100.0,
    1000.0,
    1e4,
)  # ridge strengths, relative to N (standardised features)
TRIES = 50  # rejection-sampling attempts per proposal
DELTAS = ("dx", "dy", "dw", "dh")


# ------------------------------------------------------------------------------------------------ box geometry
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of xyxy boxes."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def encode_deltas(
    proposals: np.ndarray, gt: np.ndarray, weights: Sequence[float] = BOX_WEIGHTS
) -> np.ndarray:
    """Faster R-CNN box deltas of `gt` relative to `proposals` (xyxy, same length): ``(N, 4)`` (dx, dy, dw, dh)
    = (wx (gx - px) / pw, wy (gy - py) / ph, ww log(gw / pw), wh log(gh / ph)), centres and sizes."""
    p, g = np.asarray(proposals, np.float64).reshape(-1, 4), np.asarray(gt, np.float64).reshape(-1, 4)
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    px, py, gx, gy = p[:, 0] + pw / 2, p[:, 1] + ph / 2, g[:, 0] + gw / 2, g[:, 1] + gh / 2
    wx, wy, ww, wh = weights
    return np.stack([wx * (gx - px) / pw, wy * (gy - py) / ph, ww * np.log(gw / pw), wh * np.log(gh / ph)], 1)


def decode_deltas(
    proposals: np.ndarray, deltas: np.ndarray, weights: Sequence[float] = BOX_WEIGHTS
) -> np.ndarray:
    """The inverse of `encode_deltas`: the xyxy boxes the deltas move `proposals` to."""
    p, d = np.asarray(proposals, np.float64).reshape(-1, 4), np.asarray(deltas, np.float64).reshape(-1, 4)
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    px, py = p[:, 0] + pw / 2, p[:, 1] + ph / 2
    wx, wy, ww, wh = weights
    cx, cy = px + d[:, 0] / wx * pw, py + d[:, 1] / wy * ph
    w, h = pw * np.exp(d[:, 2] / ww), ph * np.exp(d[:, 3] / wh)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def roi_levels(boxes: np.ndarray, strides: Sequence[int], *, k0: int = K0, s0: float = S0) -> np.ndarray:
    """Index into `strides` of each xyxy box's pyramid level: k = clip(k0 + floor(log2(sqrt(w h) / s0))) between
    the levels of the smallest and largest stride; level k reads stride 2^k (the nearest stride on a log scale
    when that one is missing)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    levels = np.log2(np.asarray(strides, dtype=np.float64))
    size = np.sqrt(np.clip(b[:, 2] - b[:, 0], 1e-6, None) * np.clip(b[:, 3] - b[:, 1], 1e-6, None))
    k = np.clip(k0 + np.floor(np.log2(size / s0) + 1e-9), levels.min(), levels.max())
    return np.abs(k[:, None] - levels[None, :]).argmin(axis=1)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """xyxy boxes clipped to the image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


def jitter_boxes(
    gt: np.ndarray, n: int, rng: np.random.Generator, width: float, height: float, min_iou: float = FG_IOU
) -> np.ndarray:
    """Up to `n` proposals around one xyxy box (centre shifted by up to 25 % of its size, sides scaled by up to
    e^±0.3, clipped to the image) with IoU >= `min_iou` with it (rejection sampling, `TRIES` per proposal)."""
    g = np.asarray(gt, dtype=np.float64).reshape(4)
    w, h = g[2] - g[0], g[3] - g[1]
    cx, cy = g[0] + w / 2, g[1] + h / 2
    out: list[np.ndarray] = []
    for _ in range(n * TRIES):
        if len(out) == n:
            break
        dx, dy = rng.uniform(-0.25, 0.25, 2)
        sw, sh = np.exp(rng.uniform(-0.3, 0.3, 2))
        nx, ny, nw, nh = cx + dx * w, cy + dy * h, w * sw, h * sh
        box = clip_boxes(np.array([nx - nw / 2, ny - nh / 2, nx + nw / 2, ny + nh / 2]), width, height)[0]
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1 and box_iou(box, g)[0, 0] >= min_iou:
            out.append(box)
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def background_boxes(
    all_boxes: np.ndarray,
    sizes: np.ndarray,
    n: int,
    rng: np.random.Generator,
    width: float,
    height: float,
    max_iou: float = BG_IOU,
) -> np.ndarray:
    """Up to `n` random proposals inside the image with IoU < `max_iou` with every box of `all_boxes`; sides are
    those of a random row of ``sizes`` ((w, h) of the image's boxes) scaled by 0.5..1.5."""
    out: list[np.ndarray] = []
    if len(sizes) == 0:
        return np.zeros((0, 4))
    for _ in range(n * TRIES):
        if len(out) == n:
            break
        w, h = sizes[rng.integers(len(sizes))] * rng.uniform(0.5, 1.5, 2)
        w, h = min(max(w, 2.0), width), min(max(h, 2.0), height)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = np.array([x1, y1, x1 + w, y1 + h])
        if len(all_boxes) == 0 or box_iou(box, all_boxes).max() < max_iou:
            out.append(box)
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


# ------------------------------------------------------------------------------------------------ ROIs
@dataclass
class Rois:
    """The ROIs of a probe run (independent of the model).

    Attributes:
        image: sample index of each ROI.
        boxes: ``(N, 4)`` xyxy ROI in the image's pixels.
        labels: class index, or ``num_classes`` for background.
        targets: ``(N, 4)`` box deltas to the matched box (NaN for background).
        kind: ``gt``, ``jitter`` or ``background``.
        skipped: boxes / proposals left out, by reason.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    kind: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    def take(self, idx: np.ndarray) -> Rois:
        """The ROIs at `idx`."""
        return Rois(
            self.image[idx], self.boxes[idx], self.labels[idx], self.targets[idx], [self.kind[i] for i in idx],
            dict(self.skipped),
        )  # fmt: skip


def _image_rois(
    ds: DenseDataset, i: int, rng: np.random.Generator, jitter: int, background: int, min_side: float
) -> tuple[np.ndarray, list[int], np.ndarray, list[str], dict[str, int]]:
    """(boxes, labels, targets, kinds, skipped counts) of one image's ROIs."""
    s = ds.samples[i]
    bg_label = ds.num_classes
    all_boxes = clip_boxes(s.boxes, s.width, s.height) if s.n_objects else np.zeros((0, 4))
    crowd = s.crowd_mask()
    wh = all_boxes[:, 2:] - all_boxes[:, :2]
    usable = ~crowd & (wh.min(axis=1) >= min_side) if len(all_boxes) else np.zeros(0, dtype=bool)
    skipped = {"crowd": int(crowd.sum()), "tiny": int((~crowd & ~usable).sum())}
    boxes, labels, targets, kinds = [], [], [], []
    for j in np.flatnonzero(usable):
        g = all_boxes[j]
        props = np.concatenate([g[None], jitter_boxes(g, jitter, rng, s.width, s.height)])
        boxes.append(props)
        labels += [int(s.labels[j])] * len(props)
        targets.append(encode_deltas(props, np.repeat(g[None], len(props), 0)))
        kinds += ["gt"] + ["jitter"] * (len(props) - 1)
    bg = background_boxes(all_boxes, wh[usable], background * int(usable.sum()), rng, s.width, s.height)
    skipped["no-background-proposal"] = background * int(usable.sum()) - len(bg)
    boxes.append(bg)
    labels += [bg_label] * len(bg)
    targets.append(np.full((len(bg), 4), np.nan))
    kinds += ["background"] * len(bg)
    return np.concatenate(boxes), labels, np.concatenate(targets), kinds, skipped


def make_rois(
    ds: DenseDataset,
    order: Sequence[int],
    *,
    max_rois: int,
    seed: int,
    jitter: int = JITTER,
    background: int = BACKGROUND,
    min_side: float = 4.0,
) -> Rois:
    """The ROIs of the images `order` (seeded by seed and image index only), a class-stratified sample of
    `max_rois` (background counts as a class)."""
    parts: list[tuple[int, Any]] = []
    skipped: dict[str, int] = {}
    for i in order:
        rois = _image_rois(ds, i, np.random.default_rng([seed, 606, i]), jitter, background, min_side)
        for k, v in rois[4].items():
            if v:
                skipped[k] = skipped.get(k, 0) + v
        parts.append((i, rois))
    if not parts:
        return Rois(
            np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros((0, 4)), [], skipped
        )
    full = Rois(
        np.concatenate([np.full(len(r[0]), i, dtype=np.int64) for i, r in parts]),
        np.concatenate([r[0] for _i, r in parts]),
        np.asarray([lab for _i, r in parts for lab in r[1]], dtype=np.int64),
        np.concatenate([r[2] for _i, r in parts]),
        [k for _i, r in parts for k in r[3]],
        skipped,
    )
    idx = pdata.stratified_take(full.labels, max_rois, np.random.default_rng([seed, 707]))
    return full.take(idx)


def roi_images(ds: DenseDataset, max_images: int | None, seed: int, min_side: float = 4.0) -> list[int]:
    """Indices of the images with a usable (non-crowd, non-tiny) box; a seeded subset when capped."""
    idx = []
    for i, s in enumerate(ds.samples):
        if not s.n_objects:
            continue
        wh = s.boxes[:, 2:4] - s.boxes[:, :2]
        if ((~s.crowd_mask()) & (wh.min(axis=1) >= min_side)).any():
            idx.append(i)
    if max_images is not None and len(idx) > max_images:
        rng = np.random.default_rng([seed, 505])
        idx = sorted(rng.choice(idx, size=max_images, replace=False).tolist())
    return idx


# ------------------------------------------------------------------------------------------------ features
def roi_features(
    bb: DenseBackbone | None,
    img: Image.Image,
    boxes: np.ndarray,
    *,
    side: int | None = None,
    grid: int = GRID,
) -> np.ndarray:
    """``(R, D)`` float32 features of the xyxy `boxes` (image pixels) of `img`: the raw floor's (``bb`` None:
    `RAW_GRID`² x 3 roi_align'ed 0..1 pixels) or the level-routed blocks of the backbone's maps (module docstring)."""
    import torch
    from torchvision.ops import roi_align

    from advisor.dense.backbones import feature_maps, image_tensor, working_size

    h, w = working_size(img.width, img.height, side or min(max(img.width, img.height), MAX_SIDE))
    sx, sy = w / img.width, h / img.height
    scaled = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
    if bb is None:
        x = image_tensor([img], (h, w), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        rb = torch.from_numpy(np.concatenate([np.zeros((len(scaled), 1)), scaled], 1)).float()
        out = roi_align(x, rb, output_size=RAW_GRID, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        return out.flatten(1).numpy().astype(np.float32)
    maps = feature_maps(bb, image_tensor([img], (h, w), bb.mean, bb.std))
    strides = [t.stride for t in bb.taps]
    level = roi_levels(scaled, strides)
    blocks = [np.zeros((len(scaled), t.channels * grid * grid), dtype=np.float32) for t in bb.taps]
    for li, m in enumerate(maps):
        sel = np.flatnonzero(level == li)
        if not len(sel):
            continue
        rb = torch.from_numpy(np.concatenate([np.zeros((len(sel), 1)), scaled[sel]], 1)).to(m)
        out = roi_align(
            m, rb, output_size=grid, spatial_scale=m.shape[-1] / w, sampling_ratio=2, aligned=True
        )
        blocks[li][sel] = out.flatten(1).cpu().numpy()
    return np.concatenate(blocks, axis=1)


def _gather(bb: DenseBackbone | None, ds: DenseDataset, rois: Rois, side: int | None, grid: int):
    """Features of every ROI (each image opened and run once); the mask of ROIs whose image could be read."""
    dim = None
    feats: dict[int, np.ndarray] = {}
    for i in np.unique(rois.image):
        img = pdata.open_rgb(ds.samples[int(i)].path)
        if img is None:
            continue
        sel = np.flatnonzero(rois.image == i)
        feats[int(i)] = roi_features(bb, img, rois.boxes[sel], side=side, grid=grid)
        dim = feats[int(i)].shape[1]
    ok = np.isin(rois.image, list(feats))
    x = np.zeros((len(rois.labels), dim or 0), dtype=np.float32)
    for i, f in feats.items():
        x[rois.image == i] = f
    return x, ok


# ------------------------------------------------------------------------------------------------ box regression
def _ridge_predict(
    x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, alphas: Sequence[float]
) -> np.ndarray:
    """``(len(alphas), N_te, T)`` ridge predictions (features centred on the train part and divided by one global
    scale, their train RMS, so each strength is relative to the train size; targets centred), from one symmetric
    eigendecomposition of the smaller Gram matrix (an ``eigh`` is several times faster than an SVD under a busy
    BLAS). One scale, not a per-column one: a column almost constant on the train part would be blown up on the
    test part by its own tiny sd (a raw pixel that is dark in every train ROI)."""
    mu = x_tr.mean(0)
    a = x_tr - mu
    scale = float(np.sqrt((a * a).mean())) or 1.0
    a, b = a / scale, (x_te - mu) / scale
    ym = y_tr.mean(0)
    yc = y_tr - ym
    n, d = a.shape
    if n <= d:  # dual: coef = A^T (A A^T + lam I)^-1 y
        w, u = np.linalg.eigh(a @ a.T)
        left, right = (b @ a.T) @ u, u.T @ yc
    else:  # primal: coef = (A^T A + lam I)^-1 A^T y
        w, u = np.linalg.eigh(a.T @ a)
        left, right = b @ u, u.T @ (a.T @ yc)
    w = np.clip(w, 0.0, None)
    return np.stack([left @ (right / (w + al * n)[:, None]) + ym for al in alphas])


def ridge_oof(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    *,
    folds: int,
    seed: int,
    alphas: Sequence[float] = RIDGE_GRID,
) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold ridge predictions of `y` (``(N, T)``) from `x`, group K-fold over `groups`; the ridge strength
    of each outer fold is chosen by an inner group K-fold (3) on its train part (least summed squared error).
    Returns the predictions and the chosen strength per fold."""
    from advisor.probe import group_folds
    from advisor.probe.folds import inner_seed

    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    g = np.asarray([str(v) for v in groups])
    zeros = np.zeros(len(g), dtype=np.int64)
    pred = np.zeros_like(y64)
    chosen = []
    for f, (tr, te) in enumerate(group_folds(zeros, g, folds, seed)):
        sse = np.zeros(len(alphas))
        if len(set(g[tr])) >= 2:
            for itr, ite in group_folds(zeros[tr], g[tr], 3, inner_seed(seed, f)):
                p = _ridge_predict(x64[tr][itr], y64[tr][itr], x64[tr][ite], alphas)
                sse += ((p - y64[tr][ite][None]) ** 2).sum(axis=(1, 2))
        best = float(alphas[int(np.argmin(sse))])
        pred[te] = _ridge_predict(x64[tr], y64[tr], x64[te], [best])[0]
        chosen.append(best)
    return pred, chosen


def r2_per_target(y: np.ndarray, pred: np.ndarray) -> list[float | None]:
    """Coefficient of determination of each column (None where the column is constant)."""
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    ss_res = ((y - pred) ** 2).sum(0)
    return [float(1 - r / t) if t > 0 else None for r, t in zip(ss_res, ss_tot, strict=True)]


def _box_term(x: np.ndarray, rois: Rois, groups: list[str], *, folds: int, seed: int) -> dict[str, Any]:
    """R² of the out-of-fold ridge and the regression LogME of the foreground ROIs' deltas."""
    from advisor.errors import ScoreError
    from advisor.scores.metrics.likelihood import logme_regression

    fg = np.flatnonzero(~np.isnan(rois.targets[:, 0]))
    fg_groups = [groups[k] for k in fg]
    out: dict[str, Any] = {"n_foreground": len(fg), "r2": None, "r2_per_target": {}, "logme": None}
    if len(fg) < 4 or len(set(fg_groups)) < 2:
        out["note"] = "box term not computed: fewer than 4 foreground ROIs or a single image"
        return out
    y = rois.targets[fg]
    pred, alphas = ridge_oof(x[fg], y, fg_groups, folds=folds, seed=seed)
    r2 = r2_per_target(y, pred)
    known = [v for v in r2 if v is not None]
    out |= {
        "r2": float(np.mean(known)) if known else None,
        "r2_per_target": dict(zip(DELTAS, r2, strict=True)),
    }
    out["ridge_alpha"] = alphas
    try:
        lm = logme_regression(x[fg], y)
        out |= {"logme": lm["value"], "logme_per_target": dict(zip(DELTAS, lm["per_target"], strict=True))}
    except ScoreError as e:
        out["note"] = f"regression LogME failed: {e.message}"
    return out


# ------------------------------------------------------------------------------------------------ the probe
def roi_probe(
    model_or_id: Any,
    ds: DenseDataset,
    *,
    max_images: int | None = 60,
    max_rois: int = 600,
    seed: int = 0,
    device: str = "cpu",
    pretrained: bool = True,
    folds: int = 5,
    side: int | None = None,
    grid: int = GRID,
    jitter: int = JITTER,
    background: int = BACKGROUND,
    min_box_side: float = 4.0,
    scores: Sequence[str] = ("logme",),
) -> ProxyResult:
    """The ROI probe of one backbone (or `RAW_PIXELS`) on a detection / instance-segmentation dataset.

    Args:
        model_or_id: a model id, a `LoadedModel`, or `RAW_PIXELS`.
        ds: the dataset (boxes and labels; crowd boxes are never ROIs and never background).
        max_images: images used (a seeded subset); None: all with a usable box.
        max_rois: ROIs kept, stratified by class (background counts as one).
        seed: image subset, proposals, ROI sample, folds.
        device: where the backbone runs.
        pretrained: False: the random-init twin of the id.
        folds: outer folds of the probe and of the ridge (group K-fold over images).
        side: longer side of the working size (default the image's own, capped at `MAX_SIDE`).
        grid: roi_align output side on the backbone's maps.
        jitter, background: foreground / background proposals per ground-truth box.
        min_box_side: boxes with a side under this many pixels are not ROIs (counted as ``tiny``).
        scores: scores of the class term (``logme`` always: it is half the value).

    Returns:
        A `ProxyResult` of kind ``roi-probe`` (value: class + box LogME; accuracy, box_r2: out-of-fold).

    Raises:
        UsageError: no usable box, fewer than 2 classes (background included) with 2+ ROIs, or a single image.
    """
    from advisor.dense.backbones import dense_backbone
    from advisor.probe import linear_probe

    t0 = time.perf_counter()
    order = roi_images(ds, max_images, seed, min_box_side)
    if not order:
        raise UsageError(
            f"{ds.root}: the ROI probe needs ground-truth boxes (non-crowd, sides >= {min_box_side:g} px); none found",
            hint="check the annotations, or use a detection dataset",
        )
    loaded = _model(model_or_id, pretrained, device)
    bb = dense_backbone(loaded) if loaded is not None else None
    model_id = RAW_PIXELS if loaded is None else loaded.model_id
    rois = make_rois(
        ds, order, max_rois=max_rois, seed=seed, jitter=jitter, background=background, min_side=min_box_side
    )
    x, ok = _gather(bb, ds, rois, side, grid)
    skipped = dict(rois.skipped)
    if (~ok).any():
        skipped["unreadable-image"] = int((~ok).sum())
    keep = np.flatnonzero(ok)
    keep = keep[_drop_rare(rois.labels[keep], skipped)] if len(keep) else keep
    rois, x = rois.take(keep), x[keep]
    groups = [ds.samples[int(i)].id for i in rois.image]
    _check_probeable("ROI probe", rois.labels, groups)
    names = [*ds.classes, "background"]
    pr = linear_probe(x, rois.labels, groups=groups, folds=folds, seed=seed, device=device)
    sc = _scores(x, rois.labels, None, tuple(dict.fromkeys(("logme", *scores))), seed)
    box = _box_term(x, rois, groups, folds=folds, seed=seed)
    cls_lm, box_lm = sc.get("logme"), box.get("logme")
    value = float(cls_lm + box_lm) if cls_lm is not None and box_lm is not None else float("nan")
    n_img = len(set(groups))
    return ProxyResult(
        name=_name("roi-probe", model_id, None if loaded is None else loaded.pretrained),
        model_id=model_id,
        kind="roi-probe",
        value=value,
        ci=None,
        scores=sc | {"logme_box": box_lm, "tlogme": None if np.isnan(value) else value},
        n_items=len(rois.labels),
        n_groups=n_img,
        seconds=time.perf_counter() - t0,
        measured=_measured(bb, rois, n_img, len(ds.classes), pr.folds, side, grid),
        pretrained=None if loaded is None else loaded.pretrained,
        accuracy=float(pr.accuracy),
        box_r2=box["r2"],
        per_class={names[c]: v for c, v in enumerate(pr.per_class_accuracy) if c < len(names)},
        oof_ids=[f"{ds.samples[int(i)].id}#roi{k}" for k, i in enumerate(rois.image)],
        oof_y=[int(v) for v in rois.labels],
        oof_pred=[int(v) for v in pr.oof_pred],
        probe=_probe_summary(pr)
        | {"accuracy": float(pr.accuracy), "box": box}
        | _roi_info(bb, ds, rois, side),
        skipped={k: v for k, v in skipped.items() if v},
        backbone=bb.describe() if bb is not None else _backbone_info(None),
        notes=list(pr.notes) + ([box["note"]] if box.get("note") else []),
    )


def _roi_info(bb: DenseBackbone | None, ds: DenseDataset, rois: Rois, side: int | None) -> dict[str, Any]:
    """ROIs by kind, and by pyramid stride (the FPN rule at each image's working size; None for the raw floor)."""
    from advisor.dense.backbones import working_size

    levels = None
    if bb is not None and len(rois.labels):
        strides = [t.stride for t in bb.taps]
        scale = np.zeros((len(rois.labels), 4))
        for i in np.unique(rois.image):
            s = ds.samples[int(i)]
            h, w = working_size(s.width, s.height, side or min(max(s.width, s.height), MAX_SIDE))
            scale[rois.image == i] = [w / s.width, h / s.height] * 2
        counts = np.bincount(roi_levels(rois.boxes * scale, strides), minlength=len(strides))
        levels = {str(st): int(c) for st, c in zip(strides, counts, strict=True)}
    return {"rois": _roi_counts(rois), "levels": levels}


def _roi_counts(rois: Rois) -> dict[str, int]:
    return {k: int(sum(1 for v in rois.kind if v == k)) for k in ("gt", "jitter", "background")}


def _measured(
    bb: DenseBackbone | None, rois: Rois, n_img: int, n_classes: int, folds: int, side: int | None, grid: int
) -> str:
    c = _roi_counts(rois)
    if bb is None:
        feats = f"{RAW_GRID}x{RAW_GRID}x3 roi-aligned raw pixels"
    else:
        strides = "/".join(str(t.stride) for t in bb.taps)
        feats = (
            f"{bb.loaded.model_id} maps at strides {strides}, {grid}x{grid} roi_align on the FPN-rule level"
        )
    where = f"longer side {side}" if side else f"own size, longer side at most {MAX_SIDE}"
    return (
        f"ROI probe on {len(rois.labels)} ROIs ({c['gt']} ground-truth boxes, {c['jitter']} jittered proposals "
        f"IoU at least {FG_IOU}, {c['background']} background IoU under {BG_IOU}) from {n_img} images ({where}): "
        f"class LogME + box-delta LogME (TLogME-style), beside the out-of-fold linear-probe accuracy over {n_classes} classes + "
        f"background and the ridge R² of the box deltas ({folds}-fold CV, images kept whole); features: {feats}"
    )
