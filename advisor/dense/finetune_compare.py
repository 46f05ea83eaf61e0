"""A head fine-tune beside its own zero-shot figure: both scored on the same held-out images and shared classes.

A pretrained detector's or segmenter's zero-shot predictions can only be scored on the classes its label set
shares with the data (`advisor.dense.labels.match_classes`); the fine-tuned model (new class layers for every
class of the data) is scored on exactly those classes too, on the same images, so the two figures differ only by
the fine-tune, and their per-resample bootstrap values pair up (`advisor.dense.finetune_eval.paired`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from advisor.dense.finetune_eval import (
    evaluate_val,
    image_confusion,
    lut,
    miou,
    paired,
    restricted_det,
    seg_luts,
)
from advisor.dense.labels import match_classes
from advisor.dense.types import BOX_TASKS, DenseDataset

NOT_SCORED = -2  # restricted segmentation targets of classes outside the shared ones


def _predict(model: Any, val: DenseDataset) -> Any:
    """Raw predictions of `model` on `val`: ``{id: Detections}`` (detection) or one class map per image."""
    from advisor.dense.zero_shot import predict_all

    preds = predict_all(model, val)
    return preds if val.task in BOX_TASKS else [np.asarray(preds[s.id]) for s in val.samples]


def zero_shot_on_val(model: Any, val: DenseDataset) -> dict[str, Any] | None:
    """The pretrained `model`'s predictions on `val` before its head is replaced (None: no class is shared)."""
    mapping = match_classes(val.classes, model.classes)
    if not mapping:
        return None
    return {"mapping": mapping, "model_classes": list(model.classes), "preds": _predict(model, val)}


def own_head_predictions(model: Any, val: DenseDataset) -> tuple[float | None, Any, dict[str, Any], Any]:
    """The fine-tuned `model` (after `adapt_head`) on `val`: its metric, the inputs of
    `finetune_eval.evaluate_val` (predictions, keyword arguments), and the raw predictions."""
    raw = _predict(model, val)
    if val.task in BOX_TASKS:
        from advisor.dense.finetune_eval import det_map

        class_map: dict[int, int | None] = {k + 1: k for k in range(val.num_classes)} | {0: None}
        return det_map(val, raw, None, class_map), raw, {"class_map": class_map}, raw
    confs = [
        image_confusion(p, val.read_mask(s), val.num_classes, val.ignore_index)
        for p, s in zip(raw, val.samples, strict=True)
    ]
    return miou(np.sum(confs, axis=0)), confs, {}, raw


def shared_class_figures(
    zs: dict[str, Any], ft_raw: Any, val: DenseDataset, *, b: int, seed: int
) -> dict[str, Any]:
    """Zero-shot and fine-tuned figures on the shared classes of the same held-out images, compared pairwise.

    Returns ``{classes, zero_shot_value, zero_shot_ci, finetuned_value, finetuned_ci, comparison, boot_*}``;
    ``comparison.outcome`` is ``a_better`` when the fine-tune is better (a = fine-tuned, b = zero-shot).
    """
    mapping: dict[int, int] = {int(k): int(v) for k, v in zs["mapping"].items()}
    if val.task in BOX_TASKS:
        sub, new_of_old, zs_map = restricted_det(val, mapping)
        ft_map: dict[int, int | None] = {k + 1: new_of_old.get(k) for k in range(val.num_classes)} | {0: None}
        z = evaluate_val(val.task, sub, zs["preds"], b=b, seed=seed, class_map=zs_map)
        f = evaluate_val(val.task, sub, ft_raw, b=b, seed=seed, class_map=ft_map)
        names = list(sub.classes)
    else:
        names, t_lut, d_lut, m_lut = seg_luts(val.classes, mapping, zs["model_classes"])
        z_conf, f_conf = [], []
        for s, zp, fp in zip(val.samples, zs["preds"], ft_raw, strict=True):
            t = lut(t_lut, val.read_mask(s))
            z_conf.append(image_confusion(lut(m_lut, zp), t, len(names), NOT_SCORED))
            f_conf.append(image_confusion(lut(d_lut, fp), t, len(names), NOT_SCORED))
        sub = replace(val, classes=names, ignore_index=NOT_SCORED)
        z = evaluate_val(val.task, sub, z_conf, b=b, seed=seed)
        f = evaluate_val(val.task, sub, f_conf, b=b, seed=seed)
    cmp = paired(f["boot"], z["boot"], f["value"] or 0.0, z["value"] or 0.0)
    return {
        "classes": names,
        "zero_shot_value": z["value"],
        "zero_shot_ci": z["ci"],
        "finetuned_value": f["value"],
        "finetuned_ci": f["ci"],
        "comparison": cmp,
        "boot_zero_shot": z["boot"],
        "boot_finetuned": f["boot"],
    }
