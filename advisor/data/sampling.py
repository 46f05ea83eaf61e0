"""Seeded, stratified subsampling of a dataset (never "the first N")."""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Sequence

from advisor.data.types import SPLIT_ALIASES, Dataset, Sample
from advisor.errors import UsageError


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()


def allocate(sizes: dict[str, int], caps: dict[str, int], total: int, seed: int = 0) -> dict[str, int]:
    """How many items to take per class: proportional to `sizes`, at least 1 per class when
    ``total >= len(sizes)``, never above `caps`, summing to ``min(total, sum(caps))``.

    Largest-remainder rounding; when ``total < len(sizes)`` the classes that get one item are chosen by a
    seeded hash, so the choice does not favour the alphabetically first classes.
    """
    names = list(sizes)
    cap_sum = sum(caps[c] for c in names)
    if total >= cap_sum:
        return {c: caps[c] for c in names}
    if total < len(names):
        chosen = sorted(names, key=lambda c: _rank(seed, "class:" + c))[:total]
        return {c: int(c in chosen) for c in names}
    n = sum(sizes.values())
    quota = {c: total * sizes[c] / n for c in names}
    alloc = {c: min(caps[c], max(1, math.floor(quota[c]))) for c in names}
    diff = total - sum(alloc.values())
    order = {c: i for i, c in enumerate(sorted(names))}
    if diff > 0:  # give to classes furthest below their quota that still have items
        heap = [(-(quota[c] - alloc[c]), order[c], c) for c in names if alloc[c] < caps[c]]
        heapq.heapify(heap)
        while diff > 0 and heap:
            _, o, c = heapq.heappop(heap)
            alloc[c] += 1
            diff -= 1
            if alloc[c] < caps[c]:
                heapq.heappush(heap, (-(quota[c] - alloc[c]), o, c))
    elif diff < 0:  # the at-least-one floor overshot: take from classes furthest above their quota
        heap = [(-(alloc[c] - quota[c]), order[c], c) for c in names if alloc[c] > 1]
        heapq.heapify(heap)
        while diff < 0 and heap:
            _, o, c = heapq.heappop(heap)
            alloc[c] -= 1
            diff += 1
            if alloc[c] > 1:
                heapq.heappush(heap, (-(alloc[c] - quota[c]), o, c))
    return alloc


def stratified_sample(
    dataset: Dataset | Sequence[Sample],
    *,
    max_per_class: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    split: str | None = None,
) -> list[Sample]:
    """A seeded, class-stratified subsample.

    Each class keeps at most `max_per_class` items; with `max_samples` the total is allocated across classes in
    proportion to their sizes (at least one per class when ``max_samples >= n_classes``). Within a class the
    items kept are those with the smallest ``sha256(seed, sample id)``: deterministic for a seed, independent of
    file order, and nested (a smaller cap keeps a subset of a larger one; adding files elsewhere does not
    reshuffle a class). Unlabelled samples form one group.

    Args:
        dataset: a Dataset (or a list of samples).
        max_per_class: cap per class (None: no cap).
        max_samples: cap on the total (None: no cap).
        seed: the random seed; record it with the sample ids.
        split: only draw from this split.

    Returns:
        The chosen samples in the dataset's order (sorted by id). Their ``id`` values identify the subsample.

    Raises:
        UsageError: a cap below 1.
    """
    for name, v in (("max_per_class", max_per_class), ("max_samples", max_samples)):
        if v is not None and v < 1:
            raise UsageError(f"{name} must be at least 1 (got {v})", hint="omit it to keep every sample")
    samples = list(dataset.samples if isinstance(dataset, Dataset) else dataset)
    if split is not None:
        want = SPLIT_ALIASES.get(split.lower(), split.lower())
        samples = [s for s in samples if s.split == want]
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault("" if s.label is None else "L:" + s.label, []).append(s)
    sizes = {g: len(v) for g, v in groups.items()}
    caps = {g: min(n, max_per_class) if max_per_class is not None else n for g, n in sizes.items()}
    take = allocate(sizes, caps, max_samples, seed) if max_samples is not None else caps
    keep: set[str] = set()
    for g, members in groups.items():
        k = take.get(g, 0)
        if k >= len(members):
            keep.update(s.id for s in members)
        elif k > 0:
            keep.update(s.id for s in sorted(members, key=lambda s: _rank(seed, s.id))[:k])
    return [s for s in samples if s.id in keep]
