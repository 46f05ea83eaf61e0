"""The `advisor recommend` command that reruns a run on more samples: the next step when its evidence was too thin
to separate the leading models from each other or from a no-pretraining floor (classification and dense tasks)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.recommend.config import RunConfig


def more_samples(n_sampled: int, n_total: int) -> int:
    """The sample size of the rerun: twice this one (at least 100 more), capped at the whole dataset."""
    return min(n_total, max(2 * n_sampled, n_sampled + 100))


def rerun_command(
    cfg: RunConfig,
    model_ids: Sequence[str],
    n_sampled: int,
    n_total: int,
    *,
    task: str | None = None,
    extra: Sequence[str] = (),
) -> str | None:
    """The rerun on more samples for `model_ids`, quoted so that it runs as printed; None when the run already
    used every sample (more labelled data is then the only way to more evidence).

    The rerun repeats what the run's reading of the data and its measurements depend on (what differs from the
    defaults): the data options (modality, columns, split, groups, ignore index), seed, device, licence and
    offline, and ``--no-bench``; ``extra`` adds a task's own flags.
    """
    if n_sampled >= n_total or not model_ids:
        return None
    parts = ["advisor", "recommend"] + (["--task", task] if task else [])
    parts += ["--data", str(cfg.data), "--models", ",".join(model_ids)]
    parts += ["--max-samples", str(more_samples(n_sampled, n_total))]
    for flag, value, default in (
        ("--modality", cfg.modality, None),
        ("--text-column", cfg.text_column, None),
        ("--label-column", cfg.label_column, None),
        ("--split", cfg.split, None),
        ("--split-column", cfg.split_column, None),
        ("--group-column", cfg.group_column, None),
        ("--group-pattern", cfg.group_pattern, None),
        ("--ignore-index", cfg.ignore_index, None),
        ("--seed", cfg.seed, 0),
        ("--device", cfg.device, "auto"),
        ("--license", cfg.license, "any"),
    ):
        if value is not None and value != default:
            parts += [flag, str(value)]
    parts += [flag for flag, on in (("--no-bench", not cfg.bench), ("--offline", cfg.offline)) if on]
    return " ".join(shlex.quote(p) for p in [*parts, *extra])
