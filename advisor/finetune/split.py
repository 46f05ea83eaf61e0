"""The fine-tune's train/validation split: a given split, whole groups held out, or stratified by class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import DatasetError, UsageError
from advisor.finetune.config import FinetuneConfig, SplitSource

if TYPE_CHECKING:
    from advisor.data import Dataset, Sample

VAL_SPLIT_NAMES = ("val", "validation", "valid", "dev")


def _cap_per_class(
    samples: list[Sample], classes: list[str], cap: int | None, seed: int, salt: int
) -> list[Sample]:
    if cap is None:
        return samples
    keep: set[int] = set()
    for ci, c in enumerate(classes):
        idx = [i for i, s in enumerate(samples) if s.label == c]
        if len(idx) > cap:
            idx = np.random.default_rng([seed, salt, ci]).choice(idx, size=cap, replace=False).tolist()
        keep.update(idx)
    return [s for i, s in enumerate(samples) if i in keep]


def sample_groups(
    samples: Sequence[Sample], group_column: str | None, group_pattern: str | None
) -> dict[str, str]:
    """Each sample's group (id -> group): ``Sample.group`` for `group_column` (set by the reader), else the
    first capture group (or the whole match) of `group_pattern` searched in the file name (the id without a
    file); samples without a group are left out of the mapping.

    Raises:
        UsageError: both options, or an invalid regex.
    """
    import re

    if group_column is not None and group_pattern is not None:
        raise UsageError("give either --group-column or --group-pattern, not both")
    if group_column is not None:
        return {s.id: str(s.group) for s in samples if getattr(s, "group", None) not in (None, "")}
    if group_pattern is None:
        return {}
    try:
        rx = re.compile(group_pattern)
    except re.error as e:
        raise UsageError(f"--group-pattern {group_pattern!r} is not a valid regex: {e}") from None
    out: dict[str, str] = {}
    for s in samples:
        m = rx.search(s.path.name if s.path is not None else s.id)
        if m is not None:
            out[s.id] = m.group(1) if m.groups() else m.group(0)
    return out


def _group_option(config: FinetuneConfig) -> str:
    if config.group_column is not None:
        return f"--group-column {config.group_column}"
    return f"--group-pattern {config.group_pattern}"


def _held_out_groups(
    labelled: list[Sample], groups: dict[str, str], classes: list[str], config: FinetuneConfig, root: Any
) -> set[str]:
    """The groups that form the validation side: seeded, chosen greedily so each class's val share comes as
    close to ``val_fraction`` as whole groups allow, never taking a class's last training group.

    Raises:
        DatasetError: fewer than two groups, or no group can be held out without a class losing all its
            training items.
    """
    names = sorted({groups[s.id] for s in labelled})
    what = _group_option(config)
    if len(names) < 2:
        raise DatasetError(
            f"{root}: {what} gives {len(names)} group(s); holding whole groups out for validation needs at "
            "least 2",
            hint="check the group option, give the data its own train/val split, or drop the group option",
        )
    cidx = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(names), len(classes)), dtype=np.int64)  # group x class item counts
    gidx = {g: i for i, g in enumerate(names)}
    for s in labelled:
        counts[gidx[groups[s.id]], cidx[str(s.label)]] += 1
    total = counts.sum(axis=0)
    target = config.val_fraction * total
    order = np.random.default_rng([config.seed, 103]).permutation(len(names)).tolist()
    val_counts = np.zeros(len(classes), dtype=np.float64)
    chosen: list[int] = []
    while True:
        best, best_cost = None, float(np.abs(val_counts - target).sum()) if chosen else float("inf")
        for gi in order:
            if gi in chosen or np.any((total - val_counts - counts[gi]) <= 0):
                continue  # already held out, or a class would lose its last training item
            cost = float(np.abs(val_counts + counts[gi] - target).sum())
            if cost < best_cost:
                best, best_cost = gi, cost
        if best is None:
            break
        chosen.append(best)
        val_counts += counts[best]
    if not chosen:
        raise DatasetError(
            f"{root}: no group of {what} can be held out for validation without a class losing all its "
            "training items",
            hint="add groups that cover every class, or give the data its own train/val split",
        )
    return {names[i] for i in chosen}


def split_samples(
    dataset: Dataset, config: FinetuneConfig
) -> tuple[list[Sample], list[Sample], SplitSource, list[str]]:
    """Split the labelled samples into train and validation.

    Uses the dataset's own ``train`` and ``val`` splits (``Sample.split``) when both exist (``test`` stands in
    for a missing ``val``); otherwise, with ``config.group_column`` / ``group_pattern``, holds out whole groups
    (see `_held_out_groups`: no group on both sides, every class in train; samples without a group are left
    out); otherwise holds out ``val_fraction`` of every class, seeded (at least one item per class with two or
    more items). Order within each side follows the dataset.

    Returns:
        (train samples, val samples, "dataset" | "group-held-out" | "stratified", notes).

    Raises:
        DatasetError: no labelled samples, fewer than two classes, an empty side, or too few groups.
    """
    return _split(dataset, config)[:4]


def _split(
    dataset: Dataset, config: FinetuneConfig
) -> tuple[list[Sample], list[Sample], SplitSource, list[str], dict[str, Any] | None]:
    """`split_samples` plus the group summary (None without groups)."""
    notes: list[str] = []
    labelled = [s for s in dataset.samples if s.label is not None and s.label in dataset.classes]
    if len(labelled) < len(dataset.samples):
        notes.append(f"{len(dataset.samples) - len(labelled)} unlabelled samples were left out")
    if len({s.label for s in labelled}) < 2:
        raise DatasetError(
            f"{dataset.root}: fine-tuning needs labelled samples of at least two classes",
            hint="use an image folder with one sub-folder per class, or a manifest with labels",
        )
    grouped = config.group_column is not None or config.group_pattern is not None
    groups = sample_groups(labelled, config.group_column, config.group_pattern) if grouped else {}
    summary: dict[str, Any] | None = None
    splits = {s.split for s in labelled}
    val_name = next((n for n in VAL_SPLIT_NAMES if n in splits), None)
    if "train" in splits and (val_name or "test" in splits):
        val_name = val_name or "test"
        if val_name == "test":
            notes.append("the dataset has no val split; its test split is used for validation")
        train = [s for s in labelled if s.split == "train"]
        val = [s for s in labelled if s.split == val_name]
        source: SplitSource = "dataset"
        if grouped:
            both = {groups[s.id] for s in train if s.id in groups} & {
                groups[s.id] for s in val if s.id in groups
            }
            notes.append(
                f"the dataset's own train/{val_name} split is used as given ({_group_option(config)} does not "
                "re-split it)" + (f"; {len(both)} group(s) lie on both sides" if both else "")
            )
    elif grouped:
        if not groups:
            raise DatasetError(
                f"{dataset.root}: {_group_option(config)} gave no group for any sample",
                hint="--group-column needs a table or manifest with that column; for folders use --group-pattern",
            )
        missing = [s for s in labelled if s.id not in groups]
        if missing:
            notes.append(
                f"{len(missing)} sample(s) without a group ({_group_option(config)}) were left out, "
                f"e.g. {missing[0].id}"
            )
            labelled = [s for s in labelled if s.id in groups]
        held = _held_out_groups(labelled, groups, list(dataset.classes), config, dataset.root)
        train = [s for s in labelled if groups[s.id] not in held]
        val = [s for s in labelled if groups[s.id] in held]
        source = "group-held-out"
        train_groups = sorted({groups[s.id] for s in train})
        summary = {
            "by": _group_option(config),
            "train": len(train_groups),
            "val": len(held),
            "val_groups": sorted(held),
        }
        absent = sorted({str(s.label) for s in train} - {str(s.label) for s in val})
        if absent:
            notes.append(
                f"{len(absent)} class(es) have no validation item after holding out whole groups, "
                f"e.g. {absent[0]!r}"
            )
    else:
        rng_seed = config.seed
        val_idx: set[int] = set()
        for ci, c in enumerate(dataset.classes):
            idx = [i for i, s in enumerate(labelled) if s.label == c]
            if len(idx) < 2:
                if idx:
                    notes.append(f"class {c!r} has a single sample; it is used for training only")
                continue
            n_val = min(len(idx) - 1, max(1, round(config.val_fraction * len(idx))))
            perm = np.random.default_rng([rng_seed, 101, ci]).permutation(len(idx))
            val_idx.update(idx[j] for j in perm[:n_val])
        train = [s for i, s in enumerate(labelled) if i not in val_idx]
        val = [s for i, s in enumerate(labelled) if i in val_idx]
        source = "stratified"
    train = _cap_per_class(train, dataset.classes, config.max_per_class, config.seed, 1)
    val = _cap_per_class(val, dataset.classes, config.max_per_class, config.seed, 2)
    if not train or not val:
        raise DatasetError(
            f"{dataset.root}: the train/validation split left a side empty "
            f"({len(train)} train, {len(val)} val)",
            hint="add labelled samples",
        )
    return train, val, source, notes, summary
