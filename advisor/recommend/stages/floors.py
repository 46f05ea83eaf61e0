"""Stage 7: the no-pretraining floors (raw pixels / bag of words / MFCC) probed like the candidates."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from advisor.errors import AdvisorError
from advisor.probe import ProbeResult
from advisor.recommend.config import CACHE_VERSION, ProgressFn
from advisor.recommend.protocol import _probe_inputs, _probe_inputs_key
from advisor.recommend.ranking import PairedCandidate, _aligned_correct, mcnemar_exact
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
        got = _floor_probe(state, bid, cr)
        if got is not None:
            _compare_with_winner(state, bid, cr, *got)
    return state


def _floor_probe(
    state: RunState, bid: str, cr: CandidateResult
) -> tuple[dict[str, Any], PairedCandidate] | None:
    """The floor's probe record (cached) and its out-of-fold predictions for the paired test, or None when
    its features cannot be computed (error recorded)."""
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
    if cached is not None and "oof_ids" not in cached:
        cached = None  # written before floors kept their predictions: recompute (floors are cheap)
    cr.cached["probe"] = cached is not None
    if cached is None:
        task = state.get_task()
        label_of = {name: i for i, name in enumerate(state.dataset.classes)}
        try:
            x, kept = task.floor_features(bid, samples)
            y = np.array([label_of.get(samples[i].label, -1) for i in kept], dtype=np.int64)
            bkw = _probe_inputs([samples[i].id for i in kept], protocol)
            pr = task.evaluate(x, y, folds=cfg.folds, seed=cfg.seed, device=state.probe_device, **bkw)
        except AdvisorError as e:
            cr.error = f"floor not computed: {e.message}"
            return None
        lab = y >= 0  # the probe drops unlabelled rows and keeps the order
        cached = pr.to_dict(include_predictions=True)
        cached["oof_ids"] = [samples[kept[j]].id for j in np.flatnonzero(lab)]
        cached["oof_y"] = [int(v) for v in y[lab]]
        _cache_put("baseline", bkey, cached)
    rec = ProbeResult.from_dict({k: v for k, v in cached.items() if k not in ("oof_ids", "oof_y")}).to_dict()
    cr.probe = cast(ProbeRecord, rec)
    paired = PairedCandidate(
        bid,
        rec["accuracy"],
        tuple(rec["accuracy_ci"]),
        cached["oof_ids"],
        cached["oof_y"],
        cached.get("oof_pred"),
    )
    return rec, paired


def _compare_with_winner(
    state: RunState, bid: str, cr: CandidateResult, rec: dict[str, Any], floor: PairedCandidate
) -> None:
    """The floor's reason line, and a headline/note when the best candidate does not clearly beat it.

    "Clearly" is an exact McNemar test on the predictions both made on the same samples (as for the tie
    groups); without shared predictions it falls back to whether the 95 % intervals overlap."""
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
    separated, how = _separated(state, best, bp, floor, lo, hi)
    _mark_below_floor(state, bid, rec, floor, lo, hi)
    if rec["accuracy"] >= bp["accuracy"]:
        state.floor_headlines.append(
            f"no candidate beats the no-pretraining floor {bid}: {100 * rec['accuracy']:.1f} % vs "
            f"{100 * bp['accuracy']:.1f} % for the best model {best.model_id}"
            + (f" (significantly, {how})" if separated else f" (not significantly, {how})")
            + f"; consider the floor's features (advisor features --model {bid}), or more data, before any "
            "pretrained model"
        )
        state.notes.append(state.floor_headlines[-1])
        state.floors_ahead.append((bid, separated))
    elif not separated:
        state.notes.append(
            f"the winner {best.model_id} is not significantly better than the {bid} floor "
            f"({100 * bp['accuracy']:.1f} % vs {100 * rec['accuracy']:.1f} %, {how}): on this much data "
            "the pretrained features' advantage is not established"
        )


def _mark_below_floor(
    state: RunState, bid: str, rec: dict[str, Any], floor: PairedCandidate, lo: float, hi: float
) -> None:
    """Say in its reason that a ranked candidate below #1 scores under the floor (#1's case is the headline)."""
    for c in state.probed[1:]:
        cp = c.probe or {}
        if not c.reasons or cp.get("accuracy") is None or cp["accuracy"] >= rec["accuracy"]:
            continue
        separated, how = _separated(state, c, cp, floor, lo, hi)
        c.reasons[0] += (
            f"; below the no-pretraining floor {bid} ({100 * rec['accuracy']:.1f} %, "
            + ("significantly" if separated else "not significantly")
            + f", {how})"
        )


def _separated(
    state: RunState, best: CandidateResult, bp: Any, floor: PairedCandidate, lo: float, hi: float
) -> tuple[bool, str]:
    """Whether a candidate (the winner) and the floor differ at the 5 % level, and the test that said so."""
    ids, y, pred = state.oof.get(best.model_id, (None, None, None))
    labels = None if y is None else [int(v) for v in y]
    pair = _aligned_correct(PairedCandidate(best.model_id, bp["accuracy"], None, ids, labels, pred), floor)
    if pair is None:
        w_lo, w_hi = bp["accuracy_ci"]
        return (w_hi < lo or hi < w_lo), "95 % intervals " + (
            "apart" if (w_hi < lo or hi < w_lo) else "overlap"
        )
    p, _, _ = mcnemar_exact(*pair)
    return p < 0.05, f"exact McNemar p = {p:.2g} on {len(pair[0])} shared samples"
