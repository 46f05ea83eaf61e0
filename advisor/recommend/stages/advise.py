"""Stage 8: the strategy advice (linear probe or fine-tuning, how much to unfreeze) and the optional fine-tune check."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from advisor.recommend.config import ProgressFn
from advisor.recommend.finetune_check import _finetune_check
from advisor.recommend.state import RunState


def source_runtime(meta: dict[str, Any]) -> str | None:
    """The runtime of the model's own source, from its features' meta: what fine-tuning would train.

    Features may run on a runtime derived from the model's torch module (``--runtime auto`` picks ONNX Runtime or
    channels-last on CPU); the module itself is still there to fine-tune, so such a model counts as ``torch``.
    """
    choice = meta.get("runtime")
    if isinstance(choice, dict) and choice.get("runtime") not in (None, "eager"):
        return (
            "torch"  # only a model with a torch module is given another runtime (`models.runtimes._eligible`)
        )
    return (meta.get("signature") or {}).get("runtime")


def _rerun_for_floor(state: RunState, advice: dict[str, Any]) -> None:
    """When no candidate beats a no-pretraining floor, training the winner is not the next step. If the floor is
    significantly better, other candidates or the floor's features are; else a rerun on more samples (it separates
    the best model from the floor, or shows it cannot), or, when every sample was used, more labelled data. The
    training command stays under ``train_command`` for whoever needs a pretrained model."""
    from advisor.recommend.rerun import rerun_command

    advice["train_command"] = advice.get("next_command")
    floor, significantly = state.floors_ahead[0] if state.floors_ahead else (None, False)
    if significantly:  # more samples would not change a clear verdict
        advice["next_command"] = None
        advice["next_why"] = (
            f"the no-pretraining floor {floor} is significantly better on this data: other candidates (--models) "
            "or the floor's own features are the next thing to try, not more samples of these"
        )
        return
    best = state.probed[0]
    ids = [best.model_id] + [
        c.model_id
        for c in state.probed[1:]
        if c.tie_group is not None
        and c.tie_group == best.tie_group
        and not c.model_id.startswith("baseline:")
    ]
    cmd = rerun_command(state.cfg, ids, len(state.samples), len(state.dataset.samples))
    advice["next_command"] = cmd
    advice["next_why"] = (
        "more samples, to separate the best model from the no-pretraining floor"
        if cmd
        else "every sample was used: only more labelled data can separate the best model from the floor"
    )
    if cmd is None:
        state.notes.append(advice["next_why"])


def advise(state: RunState, say: ProgressFn) -> RunState:
    """Advice from the winner's probe, the domain gap and samples per class (`strategy.build_advice`); measured
    ``--finetune-top`` runs of the winner revise it (`strategy.revise_with_finetune_check`)."""
    from advisor.recommend.strategy import build_advice, revise_with_finetune_check

    cfg, dataset, probed = state.cfg, state.dataset, state.probed
    labels_all = np.asarray(dataset.labels_array())
    state.label_counts = np.bincount(labels_all[labels_all >= 0], minlength=len(dataset.classes))
    runtimes = {m: source_runtime(fs.meta) for m, fs in state.feats.items()}
    advice: dict[str, Any] = build_advice(dataset, probed, cfg, runtimes=runtimes)
    state.notes.extend(advice.get("notes", []))
    if state.floor_headlines and advice:
        advice["headline"] = state.floor_headlines[0]
    if cfg.finetune_top > 0 and probed:
        t_ft = time.perf_counter()
        checks = _finetune_check(dataset, probed[: cfg.finetune_top], advice, cfg, say, runtimes=runtimes)
        advice = revise_with_finetune_check(advice, checks, cfg)
        advice["finetune_check"] = checks
        state.timings["finetune"] = time.perf_counter() - t_ft
    # a measured fine-tune that beat its probe keeps its command (it may well beat the floor); otherwise a floor
    # ahead of every candidate decides what comes next
    tuned = advice.get("revised_by") == "finetune_check" and advice.get("strategy") != "linear-probe"
    if state.floor_headlines and advice and not tuned:
        _rerun_for_floor(state, advice)
    state.advice = advice
    return state
