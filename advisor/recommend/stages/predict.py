"""Stage 4: the predicted ranking of the remaining candidates from their signals (`advisor.recommend.ranking`)."""

from __future__ import annotations

from typing import cast

from advisor.recommend.config import ProgressFn
from advisor.recommend.ranking import combine
from advisor.recommend.records import PredictedRecord
from advisor.recommend.state import RunState


def predict(state: RunState, say: ProgressFn) -> RunState:
    """Combine the task's signals of every candidate into a predicted score, rank and uncertainty."""
    task, modality = state.get_task(), state.dataset.modality
    signals: dict[str, dict[str, float | None]] = {}
    hib: dict[str, bool] = {}
    for m in state.alive:
        for name, (value, higher_is_better) in task.signals(state.results[m], modality).items():
            signals.setdefault(name, {})[m] = value
            if higher_is_better is not None:
                hib[name] = higher_is_better
    preds = combine(signals, hib, method=state.cfg.combine)
    for m in state.alive:
        p = preds.get(m)
        unscored: PredictedRecord = {"score": None, "rank": None, "uncertainty": None, "signals": {}}
        state.results[m].predicted = cast(PredictedRecord, p.to_dict()) if p else unscored
    return state
