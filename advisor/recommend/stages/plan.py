"""Stage 1: read the data through the run's task, plan the run, draw the subsample and fix the evaluation protocol."""

from __future__ import annotations

import time
from typing import Any

from advisor.errors import UsageError
from advisor.recommend.config import ProgressFn, RunConfig
from advisor.recommend.plan import make_plan
from advisor.recommend.protocol import _drop_small_classes, evaluation_protocol
from advisor.recommend.results import CandidateResult
from advisor.recommend.state import RunState


def plan_stage(state: RunState, say: ProgressFn) -> RunState:
    """Load the dataset, choose candidates/subsample/shortlist (`make_plan`); with ``--dry-run`` stop there."""
    from advisor.tasks import FeatureTask, detect_task, get_task

    cfg = state.cfg
    t0 = time.perf_counter()
    if state.task is None:
        task = get_task(cfg.task or detect_task(cfg.data))
        assert isinstance(task, FeatureTask), f"task {task.name} does not run the feature stages"
        state.task = task
    dataset = state.dataset = state.task.load_dataset(cfg)
    if len(dataset.classes) < 2:
        raise UsageError(f"{cfg.data}: recommend needs labelled data with at least 2 classes")
    state.offline = _effective_offline(cfg, state.notes)
    plan, state.cands, state.sampling = make_plan(
        cfg, dataset, offline=state.offline, catalog=state.catalog, task=state.task
    )
    state.plan = plan
    state.timings["plan"] = time.perf_counter() - t0
    if cfg.dry_run:
        state.stop = True
        return state
    if not state.cands:
        raise UsageError(
            f"no candidate model fits the constraints for this {dataset.modality} dataset",
            hint="relax --max-params/--license/--offline, or name models with --models"
            + (
                f" (excluded: {plan.excluded[0]['model_id']}: {plan.excluded[0]['reason']})"
                if plan.excluded
                else ""
            ),
        )
    _subsample(state, say)
    for x in plan.excluded:
        state.results[x["model_id"]] = CandidateResult(
            model_id=x["model_id"], status="excluded", reasons=[x["reason"]]
        )
    return state


def _effective_offline(cfg: RunConfig, notes: list[str]) -> bool:
    """``--offline``, or no network (then only locally available weights are considered, with a note)."""
    if cfg.offline:
        return True
    try:
        from advisor.models.hub import is_offline

        offline = bool(is_offline(None))
        if offline:
            notes.append("no network: only locally available weights were considered (as with --offline)")
        return offline
    except Exception:
        return False


def _subsample(state: RunState, say: ProgressFn) -> None:
    """The seeded stratified subsample, minus too-small classes, under the evaluation protocol; the profile."""
    from advisor.data import stratified_sample
    from advisor.io import stable_hash

    dataset = state.dataset
    samples = stratified_sample(dataset, **state.sampling)
    samples = _drop_small_classes(samples, dataset, state.sampling, state.notes, say)
    state.samples, state.protocol = evaluation_protocol(samples, state.cfg, state.notes)
    state.ids_hash = stable_hash([s.id for s in state.samples])
    say(f"{len(state.cands)} candidates; subsample {len(state.samples)} of {len(dataset.samples)} samples")
    try:
        from advisor.data import profile_dataset

        state.profile = profile_dataset(dataset).to_dict()
    except Exception as e:  # the profile is for the report only
        state.notes.append(f"dataset profile unavailable: {e}")
    _note_skipped(dataset, state.notes)


def _note_skipped(dataset: Any, notes: list[str]) -> None:
    """Count what the reader left out, by kind, where the verdict is read (it was only in the JSON's n_skipped)."""
    from collections import Counter

    skipped = list(getattr(dataset, "skipped", None) or [])
    if skipped:
        kinds = ", ".join(f"{n} {code}" for code, n in Counter(s.code for s in skipped).most_common(4))
        notes.append(
            f"{len(skipped)} item(s) of the data skipped and not evaluated ({kinds}); `advisor data profile` "
            "lists each one with its reason"
        )
