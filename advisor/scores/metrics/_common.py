"""Input checks shared by the metrics (enough classes, source-model predictions present)."""

from __future__ import annotations

from advisor.errors import ScoreError
from advisor.scores.prepare import Prepared


def _need_classes(prep: Prepared, k: int = 2) -> None:
    if prep.C < k:
        raise ScoreError(f"needs at least {k} classes, got {prep.C}")


def _need_probs(prep: Prepared):
    if prep.P is None:
        raise ScoreError("needs source-model predictions: pass logits or probs")
    return prep.P
