"""`RunState`: what the stages of a recommend run hand to each other."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advisor.recommend.candidates import Candidate
from advisor.recommend.config import Plan, RunConfig
from advisor.recommend.results import CandidateResult, RecommendResults
from advisor.recommend.work import Executor, SerialExecutor
from advisor.tasks import FeatureTask


@dataclass
class RunState:
    """The run so far. Each stage reads what earlier stages filled and fills its own part.

    ``results`` maps every model id (candidates, exclusions, floors) to its `CandidateResult`; ``alive`` are the
    candidates still in the running after features and resource limits; ``probed`` the ranked ones in rank order.
    """

    cfg: RunConfig
    catalog: Any = None
    executor: Executor = field(default_factory=SerialExecutor)
    t_start: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stop: bool = False  # a stage ended the run early (``--dry-run``): `output` is the plan
    # plan
    task: FeatureTask | None = None
    dataset: Any = None
    offline: bool = False
    plan: Plan | None = None
    cands: list[Candidate] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    samples: list[Any] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    ids_hash: str = ""
    profile: dict[str, Any] | None = None
    # candidates
    results: dict[str, CandidateResult] = field(default_factory=dict)
    feats: dict[str, Any] = field(default_factory=dict)  # model id -> FeatureSet
    fkeys: dict[str, str] = field(default_factory=dict)  # model id -> features content key
    alive: list[str] = field(default_factory=list)
    # probes and ranking
    order: list[str] = field(default_factory=list)  # alive, by predicted rank
    short: list[str] = field(default_factory=list)  # the shortlist probed
    oof: dict[str, tuple[list[str], np.ndarray, Any]] = field(
        default_factory=dict
    )  # id -> (ids, labels, preds)
    probed: list[CandidateResult] = field(default_factory=list)
    agreement: dict[str, Any] = field(default_factory=dict)  # `advisor.recommend.agreement.signal_agreement`
    floor_headlines: list[str] = field(default_factory=list)
    floors_ahead: list[tuple[str, bool]] = field(
        default_factory=list
    )  # (floor id, significantly) per headline
    advice: dict[str, Any] = field(default_factory=dict)
    label_counts: Any = None  # per-class label counts of the whole dataset
    out: RecommendResults | None = None

    def output(self) -> RecommendResults | Plan:
        """What `run` returns: the results, or the plan when the run stopped after planning."""
        if self.stop:
            assert self.plan is not None
            return self.plan
        assert self.out is not None, "the results stage did not run"
        return self.out

    @property
    def probe_device(self) -> str:
        """Where the probes run: the CPU when the run's device is the CPU, else the run's device."""
        from advisor.recommend.plan import _device_kind

        return "cpu" if _device_kind(self.cfg.device) == "cpu" else self.cfg.device

    def get_task(self) -> FeatureTask:
        """The run's task (set by the plan stage)."""
        assert self.task is not None, "the plan stage did not run"
        return self.task

    def get_plan(self) -> Plan:
        """The run's plan (set by the plan stage)."""
        assert self.plan is not None, "the plan stage did not run"
        return self.plan
