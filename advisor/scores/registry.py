"""The scorer registry: `@register_scorer` fills it, `get_scorer` reads it, `ScoreResult` is what a scorer yields."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from advisor.errors import ScoreError, UsageError
from advisor.registry import add_unique

NEEDS = ("features", "labels", "probs")


@dataclass(frozen=True)
class ScoreResult:
    """One transferability score.

    Attributes:
        name: registered metric name.
        value: the score (None when not applicable or failed).
        higher_is_better: direction: True when a larger value predicts better transfer.
        applicable: False when the inputs do not allow this metric (e.g. no source predictions).
        reason: why the metric is not applicable (None otherwise).
        ci: bootstrap percentile interval (2.5 %, 97.5 %) when bootstrap was requested.
        seconds: wall-clock time of the computation (without bootstrap).
        degenerate_reason: set when the value was computed but is not meaningful for these data (D > N/2 for a
            covariance-inverting score, no separation from the shuffled-label control); then applicable is
            False, `reason` says the same, and the value is kept for display only (never ranked).
    """

    name: str
    value: float | None
    higher_is_better: bool
    applicable: bool
    reason: str | None = None
    ci: tuple[float, float] | None = None
    seconds: float | None = None
    degenerate_reason: str | None = None


@dataclass(frozen=True)
class ScorerSpec:
    """A registered scorer: the function `fn(prep, **kwargs) -> float` and its metadata."""

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    needs: tuple[str, ...]
    summary: str


_REGISTRY: dict[str, ScorerSpec] = {}


class UnknownScoreError(ScoreError, UsageError):
    """A score name that is not registered: a usage error (exit code 2) whose hint lists the valid names."""


def register_scorer(
    name: str, *, higher_is_better: bool = True, needs: tuple[str, ...] = ("features", "labels")
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator adding a scorer `fn(prep: Prepared, **kwargs) -> float` under `name`.

    Args:
        name: unique lower-case metric name.
        higher_is_better: direction of the score.
        needs: inputs the scorer reads, among "features", "labels" and "probs" (source-head predictions).

    Raises:
        ValueError: on a duplicate name or an unknown entry in `needs`.
    """
    bad = [n for n in needs if n not in NEEDS]
    if bad:
        raise ValueError(f"unknown needs {bad} for scorer {name!r}; choose from {NEEDS}")

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        doc = (fn.__doc__ or "").strip().splitlines()
        spec = ScorerSpec(name, fn, higher_is_better, tuple(needs), doc[0] if doc else "")
        add_unique(_REGISTRY, name, spec, "scorer")
        return fn

    return deco


def _ensure_builtin() -> None:
    from advisor.scores import metrics  # noqa: F401  (registers the built-in scorers)


def get_scorer(name: str) -> ScorerSpec:
    """Return the scorer registered as `name`.

    Raises:
        UnknownScoreError: (a ScoreError and a UsageError) when no such scorer exists; the hint lists close
            names and every valid one.
    """
    _ensure_builtin()
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    valid = f"valid names: {', '.join(_REGISTRY)}"
    hint = f"did you mean {', '.join(close)}? {valid}" if close else valid
    raise UnknownScoreError(f"unknown score name {name!r}", hint=hint)


def list_scorers() -> list[str]:
    """Names of all registered scorers, in registration order."""
    _ensure_builtin()
    return list(_REGISTRY)
