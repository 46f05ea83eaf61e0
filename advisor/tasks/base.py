"""The `Task` extension point: what a task (classification, next detection/segmentation) plugs into recommend."""

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

    def report_sections(self) -> tuple[str, ...]:
        """The titles of the report sections this task's results fill (markdown/HTML reports)."""
        ...
