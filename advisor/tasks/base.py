"""The `Task` extension point: what a task (classification, detection, segmentation) plugs into recommend.

`Task` is what every task supplies: detection of its data, its dataset reader, its own list of stages (`run`) and
the report sections its results fill. `FeatureTask` adds the hooks of the frozen-feature classification stages
(`advisor.recommend.stages`): candidate filter, signals, evaluation and floors. Detection and segmentation run their
own stages (`advisor.dense.pipeline`) over their own run state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from advisor.recommend.candidates import Candidate, Constraints, Exclusion
    from advisor.recommend.config import RunConfig
    from advisor.recommend.results import CandidateResult

# (value, higher_is_better); higher_is_better None: the ranking's default orientation (higher is better)
Signal = tuple[float, "bool | None"]


@runtime_checkable
class Task(Protocol):
    """A task plug-in of `advisor recommend`.

    Attributes:
        name: the registered name (``--task``).
        summary: one line for listings.
    """

    name: str
    summary: str

    def detect(self, path: str | Path) -> bool:
        """Whether the data at `path` looks like this task's (cheap: names and headers, no decoding)."""
        ...

    def load_dataset(self, cfg: RunConfig) -> Any:
        """The dataset reader: the run's dataset from `cfg` (path and reader options)."""
        ...

    def run(
        self, cfg: RunConfig, *, progress_fn: Any = None, catalog: Any = None, executor: Any = None
    ) -> Any:
        """The task's stages over one run state: its results record (or the plan of a dry run)."""
        ...

    def report_sections(self) -> tuple[str, ...]:
        """The titles of the report sections this task's results fill (markdown/HTML reports)."""
        ...


@runtime_checkable
class FeatureTask(Task, Protocol):
    """A task run by the frozen-feature stages of `advisor.recommend.stages` (today: classification)."""

    def select_candidates(
        self, modality: str, constraints: Constraints, catalog: Any = None
    ) -> tuple[list[Candidate], list[Exclusion]]:
        """The candidate filter: the models worth evaluating for this task and modality, and those left out."""
        ...

    def signals(self, candidate: CandidateResult, modality: str) -> dict[str, Signal]:
        """The signals of one screened candidate that the predicted ranking combines."""
        ...

    def evaluate(
        self, features: np.ndarray, labels: np.ndarray, *, folds: int, seed: int, device: str, **kw: Any
    ) -> Any:
        """The evaluation of frozen features on the task (a result with ``to_dict``/``accuracy``)."""
        ...

    def floors(self, modality: str) -> list[str]:
        """The no-pretraining reference models evaluated next to the candidates for `modality`."""
        ...

    def floor_features(self, floor_id: str, samples: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
        """Features of a floor on `samples` and the indices of the samples that yielded them."""
        ...
