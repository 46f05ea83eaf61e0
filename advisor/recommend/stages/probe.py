"""Stage 5: the task's evaluation (linear probes) of the shortlist, cached in ``cache_dir("probes")``."""

from __future__ import annotations

import time
from typing import cast

import numpy as np

from advisor.errors import AdvisorError
from advisor.recommend.config import CACHE_VERSION, DEFAULT_SHORTLIST, ProgressFn
from advisor.recommend.protocol import _probe_inputs, _probe_inputs_key
from advisor.recommend.records import ProbeRecord
from advisor.recommend.state import RunState
from advisor.recommend.store import _cache_get, _cache_put


def probe_shortlist(state: RunState, say: ProgressFn) -> RunState:
    """Probe the top of the predicted ranking (``--shortlist``), keeping out-of-fold predictions for tie tests."""
    cfg, results = state.cfg, state.results
    t0 = time.perf_counter()
    state.order = sorted(state.alive, key=lambda m: (results[m].predicted.get("rank") or 10**9, m))
    state.short = state.order[: min(len(state.order), cfg.shortlist or DEFAULT_SHORTLIST)]
    for i, m in enumerate(state.short, 1):
        say(f"[{i}/{len(state.short)}] linear probe: {m}")
        _probe_one(state, m)
    state.timings["probes"] = time.perf_counter() - t0
    return state


def _probe_one(state: RunState, m: str) -> None:
    from advisor.io import stable_hash
    from advisor.probe import PROBE_VERSION, ProbeResult

    cfg, cr, fs = state.cfg, state.results[m], state.feats[m]
    pkw = _probe_inputs(list(fs.ids), state.protocol)
    pkey = stable_hash(
        {
            "v": PROBE_VERSION,
            "c": CACHE_VERSION,
            "f": state.fkeys[m],
            "folds": cfg.folds,
            "seed": cfg.seed,
            "protocol": _probe_inputs_key(pkw),
        }
    )
    cached = _cache_get("probe", pkey)
    cr.cached["probe"] = cached is not None
    if cached is None:
        try:
            pr = state.get_task().evaluate(
                fs.features, fs.labels, folds=cfg.folds, seed=cfg.seed, device=state.probe_device, **pkw
            )
        except Exception as e:
            msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
            cr.error = f"probe failed: {msg}"
            state.notes.append(f"{m}: probe failed: {msg}")
            return
        cached = pr.to_dict(include_predictions=True)  # the paired tie test needs the predictions
        _cache_put("probe", pkey, cached)
    pr = ProbeResult.from_dict(cached)
    labels = np.asarray(fs.labels)
    if len(pr.oof_pred) == int((labels >= 0).sum()):
        # the probe drops unlabelled rows and keeps the order: align predictions with their sample ids
        lab = labels >= 0
        state.oof[m] = ([str(fs.ids[j]) for j in np.flatnonzero(lab)], labels[lab], pr.oof_pred)
    cr.probe = cast(ProbeRecord, pr.to_dict())
    cr.stage = "probe"
    cr.timings["probe"] = pr.seconds
