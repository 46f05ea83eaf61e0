"""Stage 7: the no-pretraining floors (raw pixels / bag of words / MFCC) probed like the candidates."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from advisor.errors import AdvisorError
from advisor.recommend.config import CACHE_VERSION, ProgressFn
from advisor.recommend.protocol import _probe_inputs, _probe_inputs_key
from advisor.recommend.records import ProbeRecord
from advisor.recommend.results import CandidateResult
from advisor.recommend.state import RunState
from advisor.recommend.store import _cache_get, _cache_put


def probe_floors(state: RunState, say: ProgressFn) -> RunState:
    """Probe each floor of the task for the modality (``--no-baselines`` skips) and compare it with the winner."""
    if not state.cfg.baselines:
        return state
    for bid in state.get_task().floors(state.dataset.modality):
        say(f"floor: {bid}")
        cr = CandidateResult(model_id=bid, status="baseline", stage="probe", source="baseline")
        state.results[bid] = cr
        rec = _floor_probe(state, bid, cr)
        if rec is not None:
            _compare_with_winner(state, bid, cr, rec)
    return state


def _floor_probe(state: RunState, bid: str, cr: CandidateResult) -> dict[str, Any] | None:
    """The floor's probe record (cached), or None when its features cannot be computed (error recorded)."""
    from advisor.io import stable_hash
    from advisor.probe import PROBE_VERSION

    cfg, samples, protocol = state.cfg, state.samples, state.protocol
    bkey = stable_hash(
        {
            "v": PROBE_VERSION,
            "c": CACHE_VERSION,
            "b": bid,
            "data": state.dataset.fingerprint,
            "ids": state.ids_hash,
            "folds": cfg.folds,
            "seed": cfg.seed,
            "protocol": _probe_inputs_key(_probe_inputs([smp.id for smp in samples], protocol)),
        }
    )
    cached = _cache_get("baseline", bkey)
    cr.cached["probe"] = cached is not None
    if cached is None:
        task = state.get_task()
        label_of = {name: i for i, name in enumerate(state.dataset.classes)}
        try:
            x, kept = task.floor_features(bid, samples)
            y = np.array([label_of.get(samples[i].label, -1) for i in kept], dtype=np.int64)
            bkw = _probe_inputs([samples[i].id for i in kept], protocol)
            cached = task.evaluate(
                x, y, folds=cfg.folds, seed=cfg.seed, device=state.probe_device, **bkw
            ).to_dict()
        except AdvisorError as e:
            cr.error = f"floor not computed: {e.message}"
            return None
        _cache_put("baseline", bkey, cached)
    cr.probe = cast(ProbeRecord, cached)
    return cached


def _compare_with_winner(state: RunState, bid: str, cr: CandidateResult, rec: dict[str, Any]) -> None:
    """The floor's reason line, and a headline/note when the best candidate does not clearly beat it."""
    from advisor.recommend.baselines import BASELINES

    lo, hi = rec["accuracy_ci"]
    cr.reasons = [
        f"no-pretraining floor ({BASELINES[bid][1]}): probe accuracy {100 * rec['accuracy']:.1f} ± "
        f"{100 * (hi - lo) / 2:.1f} %"
    ]
    if not state.probed:
        return
    best = state.probed[0]
    bp = best.probe or {}
    if rec["accuracy"] >= bp["accuracy"]:
        w_acc, w_hi = bp["accuracy"], bp["accuracy_ci"][1]
        clearly = w_hi < lo
        state.floor_headlines.append(
            f"no candidate beats the no-pretraining floor {bid}: {100 * rec['accuracy']:.1f} % vs "
            f"{100 * w_acc:.1f} % for the best model {best.model_id}"
            + (" (non-overlapping 95 % intervals)" if clearly else " (overlapping 95 % intervals)")
            + "; consider the floor's features, or more data, before any pretrained model"
        )
        state.notes.append(state.floor_headlines[-1])
    elif bp["accuracy_ci"][0] <= hi:
        state.notes.append(
            f"the winner {best.model_id} is not significantly better than the {bid} floor "
            f"({100 * bp['accuracy']:.1f} % vs {100 * rec['accuracy']:.1f} %, overlapping "
            "95 % intervals): on this much data the pretrained features' advantage is not established"
        )
