"""The ``--finetune-top K`` stage of a dense run: short fine-tunes of the verdict's best rows, as the confirmation.

Which rows, by the verdict's route (`advisor.dense.verdict`):

- ``zero-shot`` / ``fine-tune-head``: the K best zero-shot models (their own head re-trained for the data's classes,
  backbone frozen: ``fine-tune-head`` specs), each scored beside its own zero-shot figure on the same held-out
  images and shared classes;
- ``new-head``: the K best backbones by the proxy (a new head on each frozen backbone: ``new-head`` specs).

Each run's record goes on its row (``DenseCandidate.finetune``, the bootstrap values left out); the verdict gets
``finetune``: which fine-tuned best, whether it is separated from the others and whether it beats the zero-shot
figure, by a paired image bootstrap when both were measured on the same held-out images and resamples, else by
their 95% intervals (the record says which).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from advisor.dense.results import DenseCandidate
from advisor.errors import AdvisorError

if TYPE_CHECKING:
    from advisor.dense.finetune import DenseFinetuneResult, DenseFinetuneSpec
    from advisor.dense.pipeline import DenseRunState, ProgressFn

log = logging.getLogger(__name__)

# rough costs on a 2-core CPU (measured on the demos): one head step (batch 4, 320x320) and one held-out evaluation
HEAD_STEP_S = {"detection": 0.35, "segmentation": 0.08}
EVAL_S = 1.0
_WORDS = {"a_better": "better", "b_better": "worse", "tied": "not separated", "not tested": "not tested"}


def pick_rows(
    rows: list[DenseCandidate], verdict: dict[str, Any], k: int
) -> tuple[list[DenseCandidate], str]:
    """The top `k` rows of the verdict's route and the fine-tune kind they get (no rows: route ``none``)."""
    by_id = {r.model_id: r for r in rows}
    route = verdict.get("route")
    if route in ("zero-shot", "fine-tune-head"):
        order, kind = verdict.get("zero_shot_order") or [], "fine-tune-head"
    elif route == "new-head":
        order, kind = verdict.get("proxy_order") or [], "new-head"
    else:
        return [], "none"
    picked = [by_id[m] for m in order if m in by_id and not by_id[m].error]
    return picked[:k], kind


def spec_for(state: DenseRunState, row: DenseCandidate, kind: str) -> DenseFinetuneSpec:
    """The fine-tune spec of `row`: the run's data, sample, seed, device, epochs and budget."""
    from advisor.dense.candidates import base_id
    from advisor.dense.finetune import DenseFinetuneSpec

    cfg = state.cfg
    return DenseFinetuneSpec(
        model_id=base_id(row.model_id),
        kind=kind,
        data=str(state.dataset.root if state.dataset is not None else cfg.data),
        task=state.task,
        split=cfg.split,
        ignore_index=cfg.ignore_index,
        sample_ids=tuple(s.id for s in state.get_sample().samples),
        group_pattern=cfg.group_pattern,
        epochs=cfg.finetune_epochs,
        budget_minutes=cfg.finetune_budget_minutes,
        seed=cfg.seed,
        device=cfg.device,
        pretrained=row.pretrained,
    )


def estimate_seconds(
    row: DenseCandidate,
    kind: str,
    task: str,
    n_images: int,
    epochs: int,
    sizes: tuple[tuple[int, int], tuple[int, int]],
) -> float | None:
    """A rough duration from the row's measured latency (None: not timed).

    New head: the frozen features once per image (the latency scaled from the timed size ``sizes[1]`` to the
    fine-tune size ``sizes[0]``, both (H, W)), plus `HEAD_STEP_S` per step and `EVAL_S` per epoch. Own head:
    forward + backward (about 3 forward passes) per training image and epoch, plus the held-out passes.
    """
    from advisor.dense.finetune import VAL_FRACTION

    ms = row.latency_ms
    if ms is None:
        return None
    n_val = max(1, int(round(VAL_FRACTION * n_images)))
    n_train = max(1, n_images - n_val)
    if kind == "new-head":
        (h, w), (th, tw) = sizes
        features = ms / 1000.0 * (h * w) / max(1, th * tw) * n_images
        steps = epochs * -(-n_train // 4)
        return features + steps * HEAD_STEP_S.get(task, 0.4) * (h * w) / (320 * 320) + epochs * EVAL_S
    return ms / 1000.0 * (3.0 * n_train * epochs + n_val * (epochs + 2))


def row_record(res: DenseFinetuneResult, estimate_s: float | None) -> dict[str, Any]:
    """What the row keeps: the result without the per-resample values (they stay in the cache)."""
    d = res.to_dict()
    d.pop("boot", None)
    d["split"] = {k: v for k, v in d.get("split", {}).items() if k != "val_ids"}
    if d.get("zero_shot"):
        d["zero_shot"] = {k: v for k, v in d["zero_shot"].items() if not k.startswith("boot_")}
    return d | {"summary": res.summary(), "estimated_s": estimate_s}


def finetune_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """Fine-tune the verdict's top ``cfg.finetune_top`` rows and add the outcome to their rows and the verdict."""
    from advisor.dense.finetune import finetune_dense

    k = state.cfg.finetune_top
    if k <= 0:
        return state
    t0 = time.perf_counter()
    if state.task not in ("detection", "segmentation"):
        state.notes.append(
            f"--finetune-top: no fine-tune check for {state.task} (detection and segmentation only)"
        )
        return state
    picked, kind = pick_rows(state.rows, state.verdict, k)
    if not picked:
        state.notes.append(
            f"--finetune-top {k}: no measured row to fine-tune (route {state.verdict.get('route')})"
        )
        return state
    if state.cfg.finetune_unfreeze not in (None, "head"):
        state.notes.append(
            f"--finetune-unfreeze {state.cfg.finetune_unfreeze}: not used by dense fine-tunes (the backbone stays "
            "frozen; only the head or decoder is trained)"
        )
    from advisor.dense.finetune import working_size

    results: list[tuple[DenseCandidate, DenseFinetuneResult]] = []
    sample = state.get_sample().samples
    timed = (state.working_size[1], state.working_size[0])  # (W, H) -> (H, W)
    for i, row in enumerate(picked, 1):
        spec = spec_for(state, row, kind)
        est = estimate_seconds(row, kind, state.task, len(sample), spec.epochs, (working_size(sample), timed))
        about = f", about {est:.0f} s by its latency (a rough CPU estimate)" if est is not None else ""
        say(
            f"[{i}/{len(picked)}] fine-tune ({kind}, {spec.epochs} epochs, {spec.device}{about}): {row.model_id}"
        )
        try:
            res = finetune_dense(spec, dataset=state.dataset, progress=say)
        except (AdvisorError, RuntimeError, ValueError, OSError) as e:  # one row failing keeps the others
            from advisor.dense.finetune import DenseFinetuneResult
            from advisor.dense.types import TASK_METRIC

            msg = getattr(e, "message", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
            res = DenseFinetuneResult(
                row.model_id, kind, state.task, TASK_METRIC[state.task], status="failed", error=msg
            )
        row.finetune = row_record(res, est)
        results.append((row, res))
    state.verdict["finetune"] = compare(results, kind, state.verdict)
    state.timings["finetune_s"] = time.perf_counter() - t0
    return state


def _pair(
    a: DenseFinetuneResult, b_boot: list[Any], b_ci: Any, b_value: float, same_images: bool
) -> dict[str, Any]:
    """`a` against another figure: paired bootstrap when the resamples pair up, else by intervals."""
    from advisor.dense.finetune_eval import interval_compare, paired

    if same_images and a.boot and len(a.boot) == len(b_boot):
        return paired(a.boot, b_boot, a.value or 0.0, b_value)
    out = interval_compare(a.ci, b_ci)
    return {
        "difference": (a.value or 0.0) - b_value,
        "outcome": out,
        "method": "95% intervals (overlap: tied)",
    }


def compare(
    results: list[tuple[DenseCandidate, DenseFinetuneResult]], kind: str, verdict: dict[str, Any]
) -> dict[str, Any]:
    """The verdict's ``finetune`` record: best fine-tuned row, its comparisons, and one summary line."""
    done = [(r, x) for r, x in results if x.value is not None]
    rec: dict[str, Any] = {"kind": kind, "rows": [r.model_id for r, _ in results], "best": None}
    if not done:
        why = "; ".join(f"{r.model_id}: {x.error or x.status}" for r, x in results)
        return rec | {"summary": f"fine-tune check: no fine-tune gave a figure ({why})"}
    done.sort(key=lambda t: -(t[1].value or 0.0))
    best_row, best = done[0]
    metric, n_val = best.metric, best.split.get("val_images")
    ci = f" [{best.ci[0]:.3f}, {best.ci[1]:.3f}]" if best.ci else ""
    rising = (
        " (still rising at the last epoch: more --finetune-epochs would raise it)"
        if best.still_rising
        else ""
    )
    parts = [
        f"fine-tune check ({best.epochs_run} epochs, {_kind_words(kind)}, {n_val} held-out images): "
        f"{best_row.model_id} fine-tuned best, val {metric} {best.value:.3f}{ci}{rising}"
    ]
    others = []
    for row, x in done[1:]:
        same = x.split.get("val_ids") == best.split.get("val_ids")
        c = _pair(best, x.boot, x.ci, x.value or 0.0, same) | {"model_id": row.model_id, "value": x.value}
        others.append(c)
        parts.append(f"vs {row.model_id} {x.value:.3f}: {_WORDS[c['outcome']]} ({_how(c)})")
    rec |= {"best": best_row.model_id, "best_value": best.value, "best_ci": best.ci, "vs_others": others}
    rec |= _zero_shot_lines(best_row, best, kind, parts)
    proxy_best = verdict.get("best_backbone") if kind == "new-head" else verdict.get("best_zero_shot")
    if proxy_best and proxy_best != best_row.model_id and any(r.model_id == proxy_best for r, _ in done):
        rung = "the proxy" if kind == "new-head" else "the zero-shot figure"
        parts.append(f"{rung} ranked {proxy_best} first: the fine-tune orders them differently")
    return rec | {"summary": "; ".join(parts)}


def _kind_words(kind: str) -> str:
    return "a new head on each frozen backbone" if kind == "new-head" else "new class layers, backbone frozen"


def _how(c: dict[str, Any]) -> str:
    ci = c.get("ci")
    diff = f"difference {c['difference']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
    return f"{diff}, {c.get('method', '')}"


def _zero_shot_lines(
    row: DenseCandidate, best: DenseFinetuneResult, kind: str, parts: list[str]
) -> dict[str, Any]:
    """Whether the best fine-tune beats the zero-shot figure (its own, on the same images and shared classes)."""
    if kind == "new-head":
        parts.append("no zero-shot figure to beat (no pretrained model's label set overlaps your classes)")
        return {"beats_zero_shot": None}
    zs = best.zero_shot
    if not zs or zs.get("zero_shot_value") is None:
        parts.append(f"no zero-shot figure of {row.model_id} on the held-out images to compare with")
        return {"beats_zero_shot": None}
    c = zs["comparison"]
    n = len(zs.get("classes") or [])
    words = {"a_better": "beats", "b_better": "is below", "tied": "does not beat"}
    word = words.get(c["outcome"], "is not compared with")
    parts.append(
        f"on the {n} shared class(es) it {word} its zero-shot {best.metric} ({zs['finetuned_value']:.3f} vs "
        f"{zs['zero_shot_value']:.3f} on the same images; {_how(c)})"
    )
    beats = None if c["outcome"] == "not tested" else c["outcome"] == "a_better"
    return {"beats_zero_shot": beats, "vs_zero_shot": c}


__all__ = ["compare", "finetune_stage", "pick_rows", "row_record", "spec_for"]
