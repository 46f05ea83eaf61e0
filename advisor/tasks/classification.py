"""The ``classification`` task: labelled images, texts or audio; frozen features ranked by a linear probe."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.tasks.base import Signal

if TYPE_CHECKING:
    from advisor.recommend.candidates import Candidate, Constraints, Exclusion
    from advisor.recommend.config import RunConfig
    from advisor.recommend.results import CandidateResult


def _silent(msg: str) -> None:
    return None


class ClassificationTask:
    """Today's recommend pipeline as a task: every reader of `advisor.data`, linear probes, raw-input floors."""

    name = "classification"
    summary = (
        "one label per sample (class folders, tables, manifests): ranked by cross-validated linear probes"
    )

    def detect(self, path: str | Path) -> bool:
        """Any labelled dataset the readers accept is a classification dataset (the fallback task)."""
        return True

    def load_dataset(self, cfg: RunConfig) -> Any:
        """`advisor.data.load_dataset` with the run's reader options."""
        from advisor.data import load_dataset
        from advisor.data.spec import reader_options

        return load_dataset(cfg.data, **reader_options(cfg))

    def run(
        self, cfg: RunConfig, *, progress_fn: Any = None, catalog: Any = None, executor: Any = None
    ) -> Any:
        """The stages of `advisor.recommend.stages.STAGES` in turn over one `RunState`."""
        from advisor.recommend.stages import STAGES
        from advisor.recommend.state import RunState
        from advisor.recommend.work import SerialExecutor

        say = progress_fn or _silent
        state = RunState(cfg, catalog=catalog, executor=executor or SerialExecutor())
        state.task = self
        for stage in STAGES:
            state = stage(state, say)
            if state.stop:
                break
        return state.output()

    def select_candidates(
        self, modality: str, constraints: Constraints, catalog: Any = None
    ) -> tuple[list[Candidate], list[Exclusion]]:
        """Feature extractors of the dataset's modality (`advisor.recommend.candidates.select_candidates`)."""
        from advisor.recommend.candidates import select_candidates

        return select_candidates(modality, constraints, catalog)

    def signals(self, candidate: CandidateResult, modality: str) -> dict[str, Signal]:
        """Applicable transferability scores, source-head confidence, published ImageNet top-1 (images), size."""
        out: dict[str, Signal] = {}
        for name, s in candidate.scores.items():
            value = s.get("value")
            if s.get("applicable", True) and value is not None:
                out[name] = (float(value), bool(s.get("higher_is_better", True)))
        if candidate.domain.get("source_confidence") is not None:
            out["domain_confidence"] = (candidate.domain["source_confidence"], None)
        if candidate.imagenet_top1 is not None and modality == "image":
            out["prior_imagenet_top1"] = (candidate.imagenet_top1, None)
        if candidate.n_params:
            out["prior_log_params"] = (math.log10(candidate.n_params), None)
        return out

    def evaluate(
        self, features: np.ndarray, labels: np.ndarray, *, folds: int, seed: int, device: str, **kw: Any
    ) -> Any:
        """A nested cross-validated linear probe (`advisor.probe.linear_probe`); `kw`: groups / test_mask."""
        from advisor.probe import linear_probe

        return linear_probe(features, labels, folds=folds, seed=seed, device=device, **kw)

    def floors(self, modality: str) -> list[str]:
        """Raw pixels for images, bag of words for text, MFCC statistics for audio."""
        from advisor.recommend.baselines import baselines_for

        return baselines_for(modality)

    def floor_features(self, floor_id: str, samples: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
        """`advisor.recommend.baselines.baseline_features`."""
        from advisor.recommend.baselines import baseline_features

        return baseline_features(floor_id, samples)

    def report_sections(self) -> tuple[str, ...]:
        """The sections of `advisor.report.render` that classification results fill."""
        return (
            "Ranking",
            "Other candidates",
            "Transferability scores",
            "Strategy advice",
            "Fine-tuning check",
            "Per-class accuracy",
            "How the predicted ranking is combined",
            "Notes",
            "Run",
        )


TASK = ClassificationTask()
