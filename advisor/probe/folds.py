"""Seeded fold assignments of the probe: stratified K-fold, group K-fold and the inner-fold seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from advisor.errors import UsageError


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold (train_idx, test_idx) pairs.

    Each class's samples are shuffled (seeded) and dealt round-robin to the folds, starting at a rotating offset
    so that fold sizes stay balanced across classes. A class smaller than `folds` is absent from some test folds
    (callers cap `folds` with `effective_folds`). scikit-learn is not needed at run time.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + offset) % folds
        offset = (offset + len(idx)) % folds
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]


def effective_folds(labels: np.ndarray, folds: int) -> int:
    """Folds actually used: at most the smallest class count (so every fold can see every class), at least 2."""
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return int(max(2, min(folds, counts.min() if len(counts) else 2)))


def group_folds(
    labels: np.ndarray, groups: Sequence[Any] | np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded group K-fold: every group lies wholly in one test fold (no group on both sides of a split).

    Groups are shuffled (seeded), then dealt largest first to the fold with the fewest samples so far; the number
    of folds is capped by the number of groups. Classes are balanced only as far as the groups allow.
    """
    g = np.asarray([str(x) for x in groups])
    uniq, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
    k = int(min(folds, len(uniq)))
    if k < 2:
        raise UsageError(
            f"group-aware folds need at least 2 groups, got {len(uniq)}",
            hint="check --group-column / --group-pattern, or drop the group option",
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(uniq))
    order = sorted(perm.tolist(), key=lambda i: -int(sizes[i]))  # stable: shuffled order within equal sizes
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for i in order:
        f = int(np.argmin(load))
        fold_of_group[i] = f
        load[f] += sizes[i]
    fold_of = fold_of_group[inv]
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def inner_seed(seed: int, fold: int) -> int:
    """Seed of the inner fold assignment for outer fold `fold` (distinct per fold, reproducible)."""
    return int(seed) * 1009 + fold + 1
