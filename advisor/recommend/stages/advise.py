"""Stage 8: the strategy advice (linear probe or fine-tuning, how much to unfreeze) and the optional fine-tune check."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from advisor.recommend.config import ProgressFn
from advisor.recommend.finetune_check import _finetune_check
from advisor.recommend.state import RunState


def advise(state: RunState, say: ProgressFn) -> RunState:
    """Advice from the winner's probe, the domain gap and samples per class (`strategy.build_advice`); measured
    ``--finetune-top`` runs of the winner revise it (`strategy.revise_with_finetune_check`)."""
    from advisor.recommend.strategy import build_advice, revise_with_finetune_check

    cfg, dataset, probed = state.cfg, state.dataset, state.probed
    labels_all = np.asarray(dataset.labels_array())
    state.label_counts = np.bincount(labels_all[labels_all >= 0], minlength=len(dataset.classes))
    runtimes = {m: (fs.meta.get("signature") or {}).get("runtime") for m, fs in state.feats.items()}
    advice: dict[str, Any] = build_advice(dataset, probed, cfg, runtimes=runtimes)
    state.notes.extend(advice.get("notes", []))
    if state.floor_headlines:
        advice["headline"] = state.floor_headlines[0]
    if cfg.finetune_top > 0 and probed:
        t_ft = time.perf_counter()
        checks = _finetune_check(dataset, probed[: cfg.finetune_top], advice, cfg, say, runtimes=runtimes)
        advice = revise_with_finetune_check(advice, checks, cfg)
        advice["finetune_check"] = checks
        state.timings["finetune"] = time.perf_counter() - t_ft
    state.advice = advice
    return state
