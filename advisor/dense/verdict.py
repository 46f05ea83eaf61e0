"""The verdict of a dense run: rank each rung, mark ties, choose the route, and say why in plain lines.

Routes (what the user should do next):
- ``zero-shot``: a pretrained model covers every class of the data; use it as is (its mAP/mIoU on the sample is a
  measured figure, not a proxy);
- ``fine-tune-head``: a pretrained model covers some classes; fine-tune its head on the data's classes;
- ``new-head``: no label set overlaps; put a new detection head / decoder on the best backbone by the proxy.

The ROI probe of box tasks (``proxy["roi_probe"]``) is reported beside the crop probe in the reasons (its best row,
and each floor that reaches its model on it) but does not change the ranking.

Ties among backbones come from the paired exact McNemar test on the crop probe's shared out-of-fold predictions
(`advisor.recommend.ranking.paired_tie_groups`, Holm-corrected), else from interval overlap; a backbone is called
best only when the evidence separates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advisor.dense.results import DenseCandidate, Role
from advisor.dense.types import BOX_TASKS, TASK_METRIC, DenseDataset

if TYPE_CHECKING:
    from advisor.recommend.config import RunConfig


# Below this zero-shot mAP / mIoU on the user's sample a model that covers every class is not "usable as is":
# published COCO detectors score 0.2-0.55 box mAP, so under 0.10 the model fails on this data.
USABLE_ZERO_SHOT = 0.10


def _rank_proxies(rows: Sequence[DenseCandidate]) -> list[DenseCandidate]:
    """Backbones by proxy value (best first), with ``rank`` and ``tied_with_best`` set."""
    from advisor.recommend.ranking import PairedCandidate, paired_tie_groups

    scored = [r for r in rows if r.role == Role.BACKBONE and r.proxy_value is not None and not r.error]
    scored.sort(key=lambda r: -(r.proxy_value or 0.0))
    if not scored:
        return []
    cands = []
    for r in scored:
        p = r.proxy or {}
        ci = tuple(p["ci"]) if p.get("ci") else None
        cands.append(
            PairedCandidate(
                model_id=r.model_id,
                accuracy=float(r.proxy_value or 0.0),
                ci=ci,  # type: ignore[arg-type]
                ids=p.get("oof_ids"),
                y=p.get("oof_y"),
                pred=p.get("oof_pred"),
            )
        )
    ties = paired_tie_groups(cands)
    for i, r in enumerate(scored, start=1):
        r.rank = i
        t = ties[r.model_id]
        r.tied_with_best = i > 1 and t.group == 1
        if i > 1:
            r.proxy = dict(r.proxy or {}) | {"tie_test": t.to_dict()}
    return scored


def _paired(a: DenseCandidate, b: DenseCandidate) -> float | None:
    """Exact McNemar p-value of `a` vs `b` on their shared out-of-fold crop predictions (None: not paired)."""
    from advisor.recommend.ranking import PairedCandidate, _aligned_correct, mcnemar_exact

    def pc(r: DenseCandidate) -> PairedCandidate:
        p = r.proxy or {}
        return PairedCandidate(
            r.model_id, float(r.proxy_value or 0.0), None, p.get("oof_ids"), p.get("oof_y"), p.get("oof_pred")
        )

    al = _aligned_correct(pc(a), pc(b))
    return None if al is None else mcnemar_exact(al[0], al[1])[0]


def _separated(best: DenseCandidate, other: DenseCandidate, alpha: float = 0.05) -> tuple[bool, str]:
    """Whether `best` is better than `other` by the paired test (else by disjoint intervals), and how it was told."""
    p = _paired(best, other)
    if p is not None:
        return p < alpha, f"paired exact McNemar p = {p:.3g}"
    lo = ((best.proxy or {}).get("ci") or [best.proxy_value])[0]
    hi = ((other.proxy or {}).get("ci") or [None, other.proxy_value])[-1]
    sep = lo is not None and hi is not None and float(lo) > float(hi)
    return sep, "95% intervals " + ("disjoint" if sep else "overlap")


def _floor_lines(rows: Sequence[DenseCandidate], best: DenseCandidate | None) -> tuple[list[str], bool]:
    """What the floors say: each random-init twin against its own pretrained model, the raw-pixel floor against
    the best backbone; and whether every one of those comparisons is separated by the evidence."""
    from advisor.dense.candidates import base_id

    lines: list[str] = []
    all_separated = True
    if best is None or best.proxy_value is None:
        return lines, False
    by_id = {r.model_id: r for r in rows}
    for r in rows:
        if r.role not in (Role.FLOOR, Role.TWIN) or r.proxy_value is None:
            continue
        ref = by_id.get(base_id(r.model_id), best) if r.role == Role.TWIN else best
        if ref.proxy_value is None:
            continue
        sep, how = _separated(ref, r)
        all_separated &= sep and ref.proxy_value > r.proxy_value
        if r.proxy_value >= ref.proxy_value:
            lines.append(
                f"the {r.role} {r.model_id} scores {r.proxy_value:.3f} >= {ref.model_id} ({ref.proxy_value:.3f}): "
                "pretraining shows no advantage on this proxy"
            )
        elif sep:
            lines.append(
                f"{ref.model_id} beats the {r.role} {r.model_id}: {ref.proxy_value:.3f} vs {r.proxy_value:.3f} ({how})"
            )
        else:
            lines.append(
                f"{ref.model_id} is not significantly better than the {r.role} {r.model_id}: "
                f"{ref.proxy_value:.3f} vs {r.proxy_value:.3f} ({how}); more images would tell"
            )
    return lines, all_separated


def roi_value(r: DenseCandidate) -> float | None:
    """The ROI probe's value (class + box LogME) of a row, None when not measured."""
    v = ((r.proxy or {}).get("roi_probe") or {}).get("value")
    return None if v is None else float(v)


def roi_order(rows: Sequence[DenseCandidate]) -> list[str]:
    """Ids of the rows with an ROI-probe value, best first."""
    return [
        r.model_id for r in sorted(rows, key=lambda r: -(roi_value(r) or 0.0)) if roi_value(r) is not None
    ]


def _roi_lines(rows: Sequence[DenseCandidate], best: DenseCandidate | None) -> list[str]:
    """The ROI probe's lines: its best row (against the crop probe's best) and each floor that reaches its model."""
    from advisor.dense.candidates import base_id

    scored = [r for r in rows if roi_value(r) is not None and not r.error]
    bbs = sorted((r for r in scored if r.role == Role.BACKBONE), key=lambda r: -(roi_value(r) or 0.0))
    if not bbs:
        return []
    top = bbs[0]
    p = (top.proxy or {})["roi_probe"]
    agree = (
        "as the crop probe"
        if best is not None and best.model_id == top.model_id
        else (f"the crop probe's best is {best.model_id}" if best is not None else "no crop-probe ranking")
    )
    r2 = p.get("box_r2")
    lines = [
        f"ROI probe (beside the crop probe, not used for the ranking): best backbone {top.model_id}, class+box LogME "
        f"{roi_value(top):.3f} (class accuracy {p.get('accuracy') or 0.0:.3f}, box-delta R² "
        f"{'-' if r2 is None else f'{r2:.3f}'}); {agree}"
    ]
    by_id = {r.model_id: r for r in rows}
    for r in scored:
        if r.role not in (Role.FLOOR, Role.TWIN):
            continue
        ref = by_id.get(base_id(r.model_id), top) if r.role == Role.TWIN else top
        rv, fv = roi_value(ref), roi_value(r)
        if rv is not None and fv is not None and fv >= rv:
            lines.append(
                f"on the ROI probe the {r.role} {r.model_id} scores {fv:.3f} >= {ref.model_id} ({rv:.3f}): "
                "pretraining shows no advantage there"
            )
    return lines


def _zero_shot(
    rows: Sequence[DenseCandidate], n_classes: int
) -> tuple[DenseCandidate | None, list[DenseCandidate]]:
    zs = [r for r in rows if r.role == Role.ZERO_SHOT and r.zero_shot_value is not None and not r.error]
    zs.sort(key=lambda r: (-int((r.zero_shot or {}).get("classes_matched", 0)), -(r.zero_shot_value or 0.0)))
    for i, r in enumerate(zs, start=1):
        r.rank = r.rank or i
    return (zs[0] if zs else None), zs


def _arch_speed_line(rows: Sequence[DenseCandidate]) -> str | None:
    """The fastest timed architecture, called fastest only on a reliable figure whose IQR band lies wholly below
    every other one's (as recommend's "faster" rule); otherwise the lowest p50 with why it is no speed claim."""
    arch = [r for r in rows if r.role == Role.ARCH and r.latency_ms is not None and not r.error]
    if not arch:
        return None
    arch.sort(key=lambda r: r.latency_ms or 0.0)
    first, rest = arch[0], arch[1:]

    def band(r: DenseCandidate, side: int) -> float:
        return float(r.latency_ms or 0.0) + side * float((r.latency or {}).get("iqr_ms") or 0.0) / 2

    shaky = [r.model_id for r in arch if (r.latency or {}).get("unreliable")]
    near = [r.model_id for r in rest if band(first, +1) >= band(r, -1)]
    at = f"{first.model_id} at p50 {first.latency_ms:.1f} ms per image (pre/post-processing included)"
    if not shaky and not near:
        return f"fastest architecture timed here: {at}"
    why = (
        f"unreliable figures ({', '.join(shaky)}: see the p50 column)"
        if shaky
        else f"within the measurement spread of {', '.join(near)}"
    )
    return f"lowest p50 of the architectures timed here: {at}; no speed claim: {why}"


def _next_command(cfg: RunConfig, task: str, ids: Sequence[str], n_sampled: int, n_total: int) -> str | None:
    """A rerun on more images for the tied or leading models (what would separate them); None when the sample
    already held every image."""
    from advisor.recommend.rerun import rerun_command

    extra = ["--no-roi-probe"] if task in BOX_TASKS and not cfg.roi_probe else []
    return rerun_command(cfg, ids, n_sampled, n_total, task=task, extra=extra)


def decide(
    rows: list[DenseCandidate],
    ds: DenseDataset,
    cfg: RunConfig,
    notes: list[str],
    n_sampled: int | None = None,
) -> dict[str, Any]:
    """The verdict record: route, headline, the best of each rung, reasons, next command (sets row ranks).

    `n_sampled`: images the figures were measured on (default: all of `ds`).
    """
    metric = TASK_METRIC.get(ds.task, "mIoU")
    from advisor.dense.labels import foreground

    n_cls = len(foreground(ds.classes))
    best_zs, zs = _zero_shot(rows, n_cls)
    ranked = _rank_proxies(rows)
    best_bb = ranked[0] if ranked else None
    reasons, floors_separated = _floor_lines(rows, best_bb)
    reasons += _roi_lines(rows, best_bb)
    speed = _arch_speed_line(rows)
    if speed is not None:
        reasons.append(speed)
    matched = int((best_zs.zero_shot or {}).get("classes_matched", 0)) if best_zs else 0
    weak = best_zs is not None and (best_zs.zero_shot_value or 0.0) < USABLE_ZERO_SHOT
    if best_zs is not None and matched >= n_cls and weak:
        route = "fine-tune-head"
        headline = (
            f"fine-tune {best_zs.model_id}: its label set covers all {n_cls} classes, but its {metric} "
            f"{best_zs.zero_shot_value:.3f} on your sample is below {USABLE_ZERO_SHOT:.2f}, too low to use it as is"
        )
        winner = best_zs.model_id
    elif best_zs is not None and matched >= n_cls:
        route = "zero-shot"
        headline = (
            f"use {best_zs.model_id} as is: {metric} {best_zs.zero_shot_value:.3f} on your sample, all {n_cls} "
            "classes covered by its label set (measured, not a proxy)"
        )
        winner = best_zs.model_id
    elif best_zs is not None and matched > 0:
        route = "fine-tune-head"
        headline = (
            f"fine-tune the head of {best_zs.model_id}: its label set covers {matched} of {n_cls} classes "
            f"({metric} {best_zs.zero_shot_value:.3f} on those)"
        )
        winner = best_zs.model_id
    elif best_bb is not None:
        route = "new-head"
        tied = [r.model_id for r in ranked if r.tied_with_best]
        what = "crop-probe accuracy" if ds.task in BOX_TASKS else "pixel-probe mIoU"
        heads = {"detection": "a detection head", "instance-segmentation": "a detection and mask head"}
        head = heads.get(ds.task, "a segmentation decoder")
        if tied:
            headline = (
                f"train {head} on one of {best_bb.model_id}, {', '.join(tied)}: tied by the proxy ({what} "
                f"{best_bb.proxy_value:.3f}); no label set of a pretrained {ds.task} model overlaps your classes"
            )
        else:
            headline = (
                f"train {head} on {best_bb.model_id}: best {what} {best_bb.proxy_value:.3f} (a proxy, not "
                f"{metric}); no label set of a pretrained {ds.task} model overlaps your classes"
            )
        winner = best_bb.model_id
        raw = next((r for r in rows if r.role == Role.FLOOR and r.proxy_value is not None), None)
        above = raw is not None and (best_bb.proxy_value or 0.0) > (raw.proxy_value or 0.0)
        if raw is not None and not (above and _separated(best_bb, raw)[0]):
            headline += (
                f"; but the raw-pixel floor ({raw.proxy_value:.3f}) is not significantly below it, so pretrained "
                "features are not shown to help on this proxy"
            )
    else:
        route, headline, winner = "none", "no candidate could be measured; see the notes", None
    ids = [winner] if winner else []
    ids += [r.model_id for r in ranked if r.tied_with_best]
    n_total = len(ds.samples)
    unsure = route == "new-head" and (len(ids) > 1 or not floors_separated)
    next_command = _next_command(cfg, ds.task, ids, n_sampled or n_total, n_total) if unsure else None
    if unsure and next_command is None:
        notes.append("every image was used: more labelled images would be needed to separate the tied rows")
    return {
        "route": route,
        "headline": headline,
        "winner": winner,
        "metric": metric,
        "best_zero_shot": best_zs.model_id if best_zs else None,
        "best_backbone": best_bb.model_id if best_bb else None,
        "tied_with_best": [r.model_id for r in ranked if r.tied_with_best],
        "zero_shot_order": [r.model_id for r in zs],
        "proxy_order": [r.model_id for r in ranked],
        "roi_order": roi_order(rows),
        "reasons": reasons,
        "next_command": next_command,
        "next_why": "more images, to separate the tied or floor-level rows" if next_command else None,
    }
