"""The stages of a recommend run, in order: each is ``stage(state, progress) -> state`` over a `RunState`."""

from __future__ import annotations

from collections.abc import Callable

from advisor.recommend.config import ProgressFn
from advisor.recommend.stages.advise import advise
from advisor.recommend.stages.features import features_and_scores
from advisor.recommend.stages.floors import probe_floors
from advisor.recommend.stages.measure import measure
from advisor.recommend.stages.plan import plan_stage
from advisor.recommend.stages.predict import predict
from advisor.recommend.stages.probe import probe_shortlist
from advisor.recommend.stages.rank import rank
from advisor.recommend.stages.results import assemble
from advisor.recommend.state import RunState

Stage = Callable[[RunState, ProgressFn], RunState]

STAGES: tuple[Stage, ...] = (
    plan_stage,
    features_and_scores,
    measure,
    predict,
    probe_shortlist,
    rank,
    probe_floors,
    advise,
    assemble,
)

__all__ = ["STAGES", "Stage"]
