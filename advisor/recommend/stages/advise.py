"""Stage 8: the strategy advice (linear probe or fine-tuning, how much to unfreeze) and the optional fine-tune check."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from advisor.recommend.config import ProgressFn
from advisor.recommend.finetune_check import _finetune_check
from advisor.recommend.state import RunState


def advise(state: RunState, say: ProgressFn) -> RunState:
    """Advice from the winner's probe, the domain gap and samples per class; ``--finetune-top`` checks it."""
    from advisor.recommend.strategy import advise_strategy

    cfg, dataset, probed = state.cfg, state.dataset, state.probed
    labels_all = np.asarray(dataset.labels_array())
    counts = np.bincount(labels_all[labels_all >= 0], minlength=len(dataset.classes))
    state.label_counts = counts
    per_class = float(np.median(counts)) if len(counts) else 0.0
    advice: dict[str, Any] = {}
    if probed:
        w = probed[0]
        gap = w.domain.get("source_entropy_norm")
        advice = advise_strategy(
            samples_per_class=per_class,
            n_classes=len(dataset.classes),
            domain_gap=gap,
            probe_accuracy=(w.probe or {})["accuracy"],
            model_id=w.model_id,
            gap_source="mean normalised entropy of the source head on the subsample"
            if gap is not None
            else None,
        )
        advice["next_command"] = (
            f"advisor finetune --data {cfg.data} --model {w.model_id} --unfreeze {advice['unfreeze']}"
        )
    if state.floor_headlines:
        advice["headline"] = state.floor_headlines[0]
    if cfg.finetune_top > 0 and probed:
        t_ft = time.perf_counter()
        advice["finetune_check"] = _finetune_check(dataset, probed[: cfg.finetune_top], advice, cfg, say)
        state.timings["finetune"] = time.perf_counter() - t_ft
    state.advice = advice
    return state
