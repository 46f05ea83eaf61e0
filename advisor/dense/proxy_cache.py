"""The proxy rung of a dense run, cached by content.

Detection and instance segmentation get two proxies per row: the crop probe (the row's ``proxy``, which the verdict
ranks by) and the ROI probe (`advisor.dense.roi_probe`, stored beside it as ``proxy["roi_probe"]``, without its
per-ROI arrays); segmentation gets the pixel probe.

A proxy figure is a pure function of the model (id and whether its weights are pretrained), the data (fingerprint
of the annotations and files, the sampled image ids), the proxy's settings and the seed; its cache key is the hash of
exactly those (`advisor.io.stable_hash`), so a changed input is never served from the cache. Entries are JSON,
written atomically; a damaged entry is deleted and recomputed (`advisor.cache.Cache`).
"""

from __future__ import annotations

from typing import Any

from advisor.dense.candidates import RAW_FLOOR_ID, ModelPool, base_id
from advisor.dense.results import DenseCandidate
from advisor.dense.types import BOX_TASKS, DenseDataset

PROXY_VERSION = 1
MAX_CROPS = 600  # detection: ground-truth box crops probed per model
PIXELS_PER_IMAGE = (
    96  # segmentation: pixels sampled per image and repeat (stratified by class within the image)
)
PIXEL_REPEATS = 2  # segmentation: independent pixel draws, each probed (the value is their mean)
PIXEL_FOLDS = 3  # segmentation: outer folds over images
ROI_VERSION = 1  # part of the ROI probe's cache key: bump when its ROIs, features or terms change
ROI_MAX_IMAGES = 60  # detection: images the ROI probe runs the backbone on (a seeded subset of the sample)
ROI_MAX_ROIS = 600  # detection: ROIs probed per model (class-stratified, background a class)
ROI_DROPPED = (
    "oof_ids",
    "oof_y",
    "oof_pred",
)  # per-ROI arrays: not kept in the results (no paired test uses them)


def proxy_settings(task: str) -> dict[str, Any]:
    """The settings a proxy of `task` runs with (part of its cache key)."""
    if task in BOX_TASKS:
        return {"kind": "crop-probe", "max_crops": MAX_CROPS}
    return {
        "kind": "pixel-probe",
        "pixels_per_image": PIXELS_PER_IMAGE,
        "repeats": PIXEL_REPEATS,
        "folds": PIXEL_FOLDS,
    }


def compute_proxy(
    row: DenseCandidate, sample: DenseDataset, *, seed: int, device: str, pool: ModelPool | None = None
) -> dict[str, Any]:
    """The proxy of one row on `sample` (uncached): crop probe for detection, pixel probe for segmentation."""
    from advisor.dense.proxies import RAW_PIXELS, crop_probe, pixel_probe

    settings = proxy_settings(sample.task)
    model: Any = RAW_PIXELS if row.model_id == RAW_FLOOR_ID else base_id(row.model_id)
    if pool is not None and row.model_id != RAW_FLOOR_ID:
        model = pool.get(row)
    kw: dict[str, Any] = {"seed": seed, "device": device, "pretrained": row.pretrained}
    if sample.task in BOX_TASKS:
        res = crop_probe(model, sample, max_crops=settings["max_crops"], **kw)
    else:
        res = pixel_probe(
            model,
            sample,
            pixels_per_image=settings["pixels_per_image"],
            repeats=settings["repeats"],
            folds=settings["folds"],
            **kw,
        )
    out: dict[str, Any] = res.to_dict()
    return out


def roi_settings() -> dict[str, Any]:
    """The settings the ROI probe runs with (part of its cache key)."""
    from advisor.dense import roi_probe as rp

    return {
        "kind": "roi-probe",
        "v": ROI_VERSION,
        "max_images": ROI_MAX_IMAGES,
        "max_rois": ROI_MAX_ROIS,
        "grid": rp.GRID,
        "jitter": rp.JITTER,
        "background": rp.BACKGROUND,
    }


def compute_roi_proxy(
    row: DenseCandidate, sample: DenseDataset, *, seed: int, device: str, pool: ModelPool | None = None
) -> dict[str, Any]:
    """The ROI probe of one row on a box-task `sample` (uncached), without its per-ROI arrays."""
    from advisor.dense.proxies import RAW_PIXELS
    from advisor.dense.roi_probe import roi_probe

    st = roi_settings()
    model: Any = RAW_PIXELS if row.model_id == RAW_FLOOR_ID else base_id(row.model_id)
    if pool is not None and row.model_id != RAW_FLOOR_ID:
        model = pool.get(row)
    res = roi_probe(
        model, sample, max_images=st["max_images"], max_rois=st["max_rois"], grid=st["grid"], jitter=st["jitter"],
        background=st["background"], seed=seed, device=device, pretrained=row.pretrained,
    )  # fmt: skip
    out = {k: v for k, v in res.to_dict().items() if k not in ROI_DROPPED}
    if out["value"] is not None and out["value"] != out["value"]:  # NaN: one LogME term could not be computed
        out["value"] = None
    return out


def _cached(
    row: DenseCandidate, sample: DenseDataset, settings: dict[str, Any], seed: int, compute: Any
) -> dict[str, Any]:
    """`compute()`, served from ``cache_dir("dense-proxies")`` when the same inputs were measured before."""
    from advisor.cache import Cache
    from advisor.io import stable_hash

    key = stable_hash(
        {
            "v": PROXY_VERSION,
            "model": base_id(row.model_id),
            "pretrained": row.pretrained,
            "data": sample.fingerprint(),
            "ids": [s.id for s in sample.samples],
            "settings": settings,
            "seed": seed,
        }
    )
    cache = Cache("dense-proxies", suffix=".json")
    hit = cache.get_json(key)
    if isinstance(hit, dict) and hit.get("value") is not None:
        return hit | {"cached": True}
    rec = compute()
    cache.put_json(key, rec)
    return dict(rec)


def cached_proxy(
    row: DenseCandidate, sample: DenseDataset, *, seed: int, device: str, pool: ModelPool | None = None
) -> dict[str, Any]:
    """`compute_proxy`, served from ``cache_dir("dense-proxies")`` when the same inputs were measured before."""
    return _cached(
        row, sample, proxy_settings(sample.task), seed,
        lambda: compute_proxy(row, sample, seed=seed, device=device, pool=pool),
    )  # fmt: skip


def cached_roi_proxy(
    row: DenseCandidate, sample: DenseDataset, *, seed: int, device: str, pool: ModelPool | None = None
) -> dict[str, Any]:
    """`compute_roi_proxy`, served from the same cache (its settings, `roi_settings`, in the key)."""
    return _cached(
        row, sample, roi_settings(), seed,
        lambda: compute_roi_proxy(row, sample, seed=seed, device=device, pool=pool),
    )  # fmt: skip
