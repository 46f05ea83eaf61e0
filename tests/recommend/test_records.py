"""The typed record shapes declare exactly the keys the code stores (so a new key cannot go untyped)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from advisor.probe import ProbeResult
from advisor.recommend.measure import _bench_summary
from advisor.recommend.ranking import Prediction
from advisor.recommend.records import BenchRecord, PredictedRecord, ProbeRecord, ScoreRecord
from advisor.recommend.run import RunConfig
from advisor.recommend.signals import _score_dict
from advisor.scores.registry import ScoreResult


def test_probe_record_keys_are_the_probe_result_plus_the_tie_test():
    stored = ProbeResult(0.5, (0.4, 0.6), 0.5, (0.4, 0.6), 1.0, 1.0, [0.5], 0.1).to_dict()
    assert set(ProbeRecord.__annotations__) == set(stored) | {"tie_test"}


def test_bench_record_keys_are_the_bench_summary():
    measured = SimpleNamespace(
        record={"records": [], "device": "cpu"},
        reliability={"reliable": True},
        from_cache=False,
        threads_requested=None,
        rounds=1,
    )
    optional = {"runtime"}  # only when the run's runtime is not eager (eager records stay as they were)
    eager = _bench_summary(measured, RunConfig(data="x", runtime="eager"))
    assert set(BenchRecord.__annotations__) - optional == set(eager)
    auto = _bench_summary(measured, RunConfig(data="x", runtime="auto"))
    assert (
        set(BenchRecord.__annotations__) == set(auto) and auto["runtime"] == "eager"
    )  # no runtime recorded: torch


def test_score_and_predicted_record_keys():
    r = ScoreResult(name="logme", value=1.0, higher_is_better=True, applicable=True, ci=(0.5, 1.5))
    d = _score_dict(r)
    assert set(ScoreRecord.__annotations__) == {f.name for f in dataclasses.fields(ScoreResult)} == set(d)
    assert d["ci"] == [0.5, 1.5]  # stored as a JSON list
    assert set(PredictedRecord.__annotations__) == set(Prediction(0.1, 0.2, {"s": 0.1}, 1).to_dict())
