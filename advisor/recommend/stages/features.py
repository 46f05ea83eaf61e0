"""Stage 2: features, transferability scores and similarity signals of every candidate, through the executor."""

from __future__ import annotations

import time
from typing import Any

from advisor.data.spec import reader_options
from advisor.models.ids import model_source
from advisor.recommend.candidates import Candidate
from advisor.recommend.config import ProgressFn
from advisor.recommend.results import CandidateResult
from advisor.recommend.state import RunState
from advisor.recommend.work import CandidateOutcome, CandidateSpec, WorkContext


def candidate_spec(state: RunState, model_id: str) -> CandidateSpec:
    """The serialisable work order of one candidate in this run."""
    cfg, ds = state.cfg, state.dataset
    return CandidateSpec(
        model_id=model_id,
        data_path=cfg.data,
        dataset_fingerprint=ds.fingerprint,
        sample_ids=tuple(s.id for s in state.samples),
        ids_hash=state.ids_hash,
        task=state.get_task().name,
        **reader_options(cfg),
        device=cfg.device,
        batch_size=cfg.batch_size,
        runtime=cfg.runtime,
        offline=state.offline,
        progress=cfg.progress,
        scores=tuple(cfg.scores),
        seed=cfg.seed,
        timeout_s=cfg.candidate_timeout_s,
    )


def features_and_scores(state: RunState, say: ProgressFn) -> RunState:
    """Evaluate every planned candidate (`advisor.recommend.work.evaluate_candidate`) and record the outcomes."""
    t0 = time.perf_counter()
    for c in state.cands:
        state.results[c.model_id] = CandidateResult(model_id=c.model_id, **_entry_fields(c))
    n = len(state.cands)
    state.executor.run(
        [candidate_spec(state, c.model_id) for c in state.cands],
        context=WorkContext(state.dataset, state.samples),
        on_start=lambda i, spec: say(f"[{i}/{n}] features: {spec.model_id}"),
        on_done=lambda outcome: _record(state, outcome, say),
    )
    state.timings["features_scores"] = time.perf_counter() - t0
    return state


def _record(state: RunState, o: CandidateOutcome, say: ProgressFn) -> None:
    cr = state.results[o.model_id]
    for msg in o.messages:
        say(msg)
    if not o.ok:
        cr.status, cr.error = "failed", o.error
        state.notes.extend(o.notes)
        return
    assert o.feature_key is not None
    cr.timings["features"] = o.timings["features"]
    cr.cached["features"] = o.cached["features"]
    cr.stage = "scores"
    cr.feature_dim = o.feature_dim
    state.feats[o.model_id] = o.features if o.features is not None else _cached_features(state, o.model_id)
    state.fkeys[o.model_id] = o.feature_key
    cr.cached["scores"] = o.cached["scores"]
    state.notes.extend(o.notes)
    cr.scores = o.scores
    cr.domain = o.domain
    cr.timings["scores"] = o.timings["scores"]


def _cached_features(state: RunState, model_id: str) -> Any:
    """Features a worker elsewhere computed, read back from the features cache (never recomputed here)."""
    from advisor.features import extract_features

    return extract_features(
        state.dataset,
        model_id,
        samples=state.samples,
        device=state.cfg.device,
        overwrite_strategy="only-cache",
        progress=False,
        offline=state.offline,
        runtime=state.cfg.runtime,  # part of the cache key: without it a non-eager run found nothing
    )


def _entry_fields(c: Candidate) -> dict[str, Any]:
    e = c.entry
    if e is None:
        return {"source": model_source(c.model_id) or "local"}
    return {
        "source": e.source,
        "family": e.family,
        "n_params": e.n_params,
        "gmacs": e.gmacs,
        "license": e.license,
        "license_class": e.license_class,
        "pretrain_data": e.pretrain_data,
        "imagenet_top1": e.imagenet_top1,
        "mteb_classification": e.mteb_classification,
        "feature_dim": e.feature_dim,
    }
