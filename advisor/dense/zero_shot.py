"""The zero-shot rung: a pretrained dense model's real metric on the labelled sample, for the shared classes.

Only the classes both label sets share are scored (`advisor.dense.labels.match_classes`): ground truth of the other
classes is left out (detection, instance segmentation) or not scored (segmentation: those pixels count as ignored), and the model's
predictions of classes the data does not have are dropped (detection) or read as background (segmentation, when
the data has a background class). What was left out is recorded with the figure. Instance segmentation is scored
twice on the same predictions: COCO mask AP (the headline, `advisor.dense.mask_ap`) and box AP.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from advisor.dense.labels import foreground, is_background, match_classes
from advisor.dense.results import DenseCandidate
from advisor.dense.types import DenseDataset, Detections

log = logging.getLogger(__name__)

BATCH = 8
EXAMPLES = 3  # images whose boxes the report draws
EXAMPLE_MIN_SCORE = 0.3


def _images(samples: Sequence[Any]) -> list[Any]:
    from PIL import Image

    out = []
    for s in samples:
        with Image.open(s.path) as im:
            out.append(im.convert("RGB"))
    return out


def predict_all(model: Any, ds: DenseDataset, batch: int = BATCH) -> dict[str, Any]:
    """``{sample id: prediction}`` of `model` over `ds` (images decoded in batches)."""
    out: dict[str, Any] = {}
    for i in range(0, len(ds.samples), batch):
        chunk = ds.samples[i : i + batch]
        for s, p in zip(chunk, model.predict(_images(chunk)), strict=True):
            out[s.id] = p
    return out


def _restricted_detection(
    ds: DenseDataset, mapping: dict[int, int]
) -> tuple[DenseDataset, dict[int, int | None]]:
    """`ds` with only the shared classes (re-indexed 0..k-1), and the model-label → new-index map."""
    keep = sorted(mapping)
    new_of_old = {old: new for new, old in enumerate(keep)}
    samples = []
    for s in ds.samples:
        m = np.isin(s.labels, keep)
        labels = np.asarray([new_of_old[int(v)] for v in s.labels[m]], dtype=np.int64)
        crowd = None if s.crowd is None else np.asarray(s.crowd)[m]
        masks = None if s.masks is None else s.masks.select(m)
        samples.append(
            replace(s, boxes=s.boxes[m], labels=labels, crowd=crowd, masks=masks, **_areas_kw(s, m))
        )
    sub = DenseDataset(ds.root, ds.task, ds.format, [ds.classes[k] for k in keep], samples, ds.ignore_index)
    model_map: dict[int, int | None] = {mapping[old]: new_of_old[old] for old in keep}
    return sub, model_map


def _areas_kw(s: Any, m: np.ndarray) -> dict[str, Any]:
    areas = getattr(s, "areas", None)
    return {} if areas is None else {"areas": np.asarray(areas)[m]}


def _detection(model: Any, ds: DenseDataset, mapping: dict[int, int]) -> dict[str, Any]:
    from advisor.metrics.detection import detection_metrics

    sub, model_map = _restricted_detection(ds, mapping)
    preds: dict[str, Detections] = predict_all(model, sub)
    m = detection_metrics(sub, preds, class_map=model_map)
    return m.to_dict() | {"value": m.map, "examples": _examples(sub, preds, model_map)}


def _instance(model: Any, ds: DenseDataset, mapping: dict[int, int]) -> dict[str, Any]:
    """Mask AP (the value) and box AP of an instance segmenter, both from one pass of predictions."""
    from advisor.dense.mask_ap import mask_metrics
    from advisor.metrics.detection import detection_metrics

    sub, model_map = _restricted_detection(ds, mapping)
    preds: dict[str, Detections] = predict_all(model, sub)
    masks = mask_metrics(sub, preds, class_map=model_map)
    boxes = detection_metrics(replace(sub, task="detection"), preds, class_map=model_map)
    box = boxes.summary() | {"per_class_ap": boxes.per_class_ap, "protocol": boxes.protocol}
    return masks.to_dict() | {"value": masks.map, "box": box, "examples": _examples(sub, preds, model_map)}


def _examples(
    ds: DenseDataset, preds: dict[str, Detections], model_map: dict[int, int | None], n: int = EXAMPLES
) -> list[dict[str, Any]]:
    """Up to `n` images with their ground-truth and predicted boxes (score >= `EXAMPLE_MIN_SCORE`), for the report."""
    out = []
    for s in ds.samples[:n]:
        d = preds.get(s.id) or Detections.empty()
        keep = d.scores >= EXAMPLE_MIN_SCORE
        pred = [
            [*map(float, b), float(sc), ds.classes[k] if (k := model_map.get(int(lab))) is not None else "?"]
            for b, sc, lab in zip(d.boxes[keep], d.scores[keep], d.labels[keep], strict=True)
        ]
        gt = [[*map(float, b), ds.classes[int(lab)]] for b, lab in zip(s.boxes, s.labels, strict=True)]
        out.append({"image": str(s.path), "width": s.width, "height": s.height, "gt": gt, "pred": pred})
    return out


def _segmentation(model: Any, ds: DenseDataset, mapping: dict[int, int]) -> dict[str, Any]:
    from advisor.metrics.segmentation import SegmentationConfusion, read_index_mask

    bg_data = next((i for i, c in enumerate(ds.classes) if is_background(c)), None)
    bg_model = next((j for j, c in enumerate(model.classes) if is_background(c)), None)
    kept = sorted(mapping) + ([bg_data] if bg_data is not None else [])
    names = [ds.classes[k] for k in kept]
    new_of_old = {old: new for new, old in enumerate(kept)}
    ignore = ds.ignore_index if ds.ignore_index is not None else 255
    n_model = len(model.classes)
    pred_lut = np.full(max(n_model, 1) + 1, -1 if bg_data is None else new_of_old[bg_data], dtype=np.int64)
    for old, j in mapping.items():
        pred_lut[j] = new_of_old[old]
    if bg_model is not None and bg_data is not None:
        pred_lut[bg_model] = new_of_old[bg_data]
    conf = SegmentationConfusion(len(kept), ignore_index=ignore, class_names=names)
    by_id = {x.id: x for x in ds.samples}
    for sid, pred in predict_all(model, ds).items():
        sample = by_id[sid]
        assert sample.mask_path is not None  # a segmentation sample always has its mask
        target = read_index_mask(sample.mask_path).astype(np.int64)
        t = np.full(target.shape, ignore, dtype=np.int64)
        for old, new in new_of_old.items():
            t[target == old] = new
        p = pred_lut[np.clip(np.asarray(pred, dtype=np.int64), 0, n_model)]
        conf.update(p, t)
    res = conf.result()
    return res.to_dict() | {"value": res.miou}


def evaluate_zero_shot(row: DenseCandidate, sample: DenseDataset, *, device: str = "cpu") -> None:
    """Fill ``row.zero_shot`` with the metric on `sample` for the shared classes (or ``row.error``)."""
    from advisor.dense.models import load_dense_model
    from advisor.errors import AdvisorError

    try:
        model = load_dense_model(row.model_id, pretrained=True, device=device)
        prompt = getattr(model, "set_classes", None)  # open vocabulary (OWL-ViT): the data's class names
        if model.label_set == "open" and prompt is not None:
            prompt(foreground(sample.classes))
        mapping = match_classes(sample.classes, model.classes)
        if not mapping:
            row.error = "no class shared with the data"
            return
        score = {"detection": _detection, "instance-segmentation": _instance}.get(sample.task, _segmentation)
        rec = score(model, sample, mapping)
    except (AdvisorError, RuntimeError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        row.error = f"zero-shot failed: {msg}"
        log.info("%s: %s", row.model_id, msg)
        return
    n_total = len(foreground(sample.classes))
    rec |= {
        "classes_matched": len(mapping),
        "classes_total": n_total,
        "matched": {sample.classes[i]: model.classes[j] for i, j in sorted(mapping.items())},
        "images": len(sample.samples),
    }
    row.zero_shot = rec
