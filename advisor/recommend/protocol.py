"""The evaluation protocol of the probes (given split, group folds or CV) and the dropping of too-small classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from advisor.errors import UsageError
from advisor.recommend.config import ProgressFn, RunConfig

SPLIT_EVAL_ORDER = ("val", "test")  # the given split scored on, in order of preference


def _group_of(smp: Any, cfg: RunConfig, rx: Any) -> str | None:
    if cfg.group_column is not None:
        return smp.group
    name = smp.path.name if smp.path is not None else smp.id
    m = rx.search(name)
    if m is None:
        return None
    return m.group(1) if m.groups() else m.group(0)


def evaluation_protocol(samples: list, cfg: RunConfig, notes: list[str]) -> tuple[list, dict[str, Any]]:
    """How the probes are evaluated, honouring the user's setup.

    - a given split (samples from ``train`` and ``val``/``test``): fit on train, score on val (else test);
      samples of any other split are left out;
    - ``--group-column`` / ``--group-pattern``: group K-fold (no group on both sides);
    - otherwise stratified K-fold CV on the subsample.

    Returns the samples to use and ``{"protocol", "eval_split", "groups": {id: group}, "eval_ids": [...]}``.
    """
    import re

    if cfg.group_column is not None and cfg.group_pattern is not None:
        raise UsageError("give either --group-column or --group-pattern, not both")
    groups: dict[str, str] = {}
    if cfg.group_column is not None or cfg.group_pattern is not None:
        try:
            rx = re.compile(cfg.group_pattern) if cfg.group_pattern is not None else None
        except re.error as e:
            raise UsageError(f"--group-pattern {cfg.group_pattern!r} is not a valid regex: {e}") from None
        missing = []
        for smp in samples:
            g = _group_of(smp, cfg, rx)
            if g is None:
                missing.append(smp)
            else:
                groups[smp.id] = g
        what = (
            f"--group-column {cfg.group_column}"
            if cfg.group_column
            else f"--group-pattern {cfg.group_pattern}"
        )
        if not groups:
            raise UsageError(
                f"{cfg.data}: {what} gave no group for any sample",
                hint="--group-column needs a table or manifest with that column; for folders use --group-pattern",
            )
        if missing:
            notes.append(
                f"{len(missing)} sample(s) without a group ({what}) were left out, e.g. {missing[0].id}"
            )
            samples = [smp for smp in samples if smp.id in groups]
    splits = {smp.split for smp in samples}
    eval_split = next((sp for sp in SPLIT_EVAL_ORDER if sp in splits), None) if "train" in splits else None
    proto: dict[str, Any] = {"protocol": "cv", "eval_split": None, "groups": groups, "eval_ids": []}
    if eval_split is not None:
        other = [smp for smp in samples if smp.split not in ("train", eval_split)]
        if other:
            notes.append(
                f"given split: fitted on train, scored on {eval_split}; {len(other)} sample(s) of other splits "
                "left out"
            )
        else:
            notes.append(f"given split: probes fitted on train and scored on {eval_split}")
        samples = [smp for smp in samples if smp.split in ("train", eval_split)]
        proto.update(protocol="given-split", eval_split=eval_split)
        proto["eval_ids"] = [smp.id for smp in samples if smp.split == eval_split]
    elif groups:
        proto["protocol"] = "group-cv"
        notes.append(f"group-aware folds: {len(set(groups.values()))} groups, none on both sides of a fold")
    return samples, proto


def _probe_inputs(ids: Sequence[str], protocol: dict[str, Any]) -> dict[str, Any]:
    """linear_probe keyword arguments for the rows `ids` under `protocol`."""
    out: dict[str, Any] = {}
    if protocol["protocol"] == "given-split":
        ev = set(protocol["eval_ids"])
        out["test_mask"] = np.array([i in ev for i in ids], dtype=bool)
    if protocol["groups"]:
        out["groups"] = [protocol["groups"].get(i, i) for i in ids]
    return out


def _probe_inputs_key(kw: dict[str, Any]) -> Any:
    from advisor.io import stable_hash

    return stable_hash(
        {
            "mask": None if "test_mask" not in kw else [bool(v) for v in kw["test_mask"]],
            "groups": kw.get("groups"),
        }
    )


MIN_PER_CLASS = 2  # a class needs a sample on each side of a fold to be evaluated


def _drop_small_classes(
    samples: list, dataset: Any, sampling: dict, notes: list[str], say: ProgressFn
) -> list:
    """Drop classes with fewer than MIN_PER_CLASS labelled samples in the subsample (named in a note).

    Raises UsageError, before any model work, when fewer than 2 classes remain.
    """
    counts: dict[str, int] = {}
    for smp in samples:
        if smp.label is not None:
            counts[smp.label] = counts.get(smp.label, 0) + 1
    small = sorted(c for c, n in counts.items() if n < MIN_PER_CLASS)
    if not small:
        return samples
    total = {c: 0 for c in small}
    for smp in dataset.samples:
        if smp.label in total:
            total[smp.label] += 1
    capped = [c for c in small if total[c] >= MIN_PER_CLASS]
    shown = ", ".join(repr(c) for c in small[:10]) + (
        f" and {len(small) - 10} more" if len(small) > 10 else ""
    )
    why = f"fewer than {MIN_PER_CLASS} samples in the subsample"
    if capped:
        why += (
            f" ({len(capped)} of them because --max-samples {sampling.get('max_samples')} caps "
            f"{len(counts)} classes; raise it to at least {MIN_PER_CLASS * len(counts)} to keep them)"
        )
    kept = len(counts) - len(small)
    if kept < 2:
        raise UsageError(
            f"{dataset.root}: nothing can be ranked: {len(small)} of {len(counts)} classes have {why}",
            hint=f"each class needs at least {MIN_PER_CLASS} labelled samples; add samples or merge classes",
        )
    msg = f"dropped {len(small)} class(es) with {why}: {shown}; ranking the other {kept}"
    notes.append(msg)
    say(msg)
    drop = set(small)
    return [smp for smp in samples if smp.label not in drop]
