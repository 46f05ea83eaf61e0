"""Transferability scores (LogME, LEEP, NLEEP, NCE, H-scores, TransRate, GBC, SFDA, ETran, PARC, kNN/NCM):
registry, shared precomputation and `compute_scores`."""

from __future__ import annotations

from advisor.scores.api import (
    compute_scores,
    load_score_inputs,
    resolve_metrics,
    score_file,
    stratified_resample,
)
from advisor.scores.prepare import Prepared
from advisor.scores.registry import ScoreResult, ScorerSpec, get_scorer, list_scorers, register_scorer

__all__ = [
    "Prepared",
    "ScoreResult",
    "ScorerSpec",
    "compute_scores",
    "get_scorer",
    "list_scorers",
    "load_score_inputs",
    "register_scorer",
    "resolve_metrics",
    "score_file",
    "stratified_resample",
]
