"""Transfer-strategy advice (frozen features + linear head, partial or full fine-tuning), rule-based, with evidence.

All thresholds live in `THRESHOLDS`. They are rules of thumb from the transfer-learning literature (few labels
per class favour frozen features; a large domain gap with plenty of data favours fine-tuning deeper), not
fitted values; the advice prints the evidence each rule used so a user can judge it. Measured evidence overrides
the rules: a source that `advisor finetune` cannot train is never advised for fine-tuning, and a ``--finetune-top``
run of the winner decides between frozen features and fine-tuning (`revise_with_finetune_check`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from advisor.data import Dataset
    from advisor.recommend.config import RunConfig
    from advisor.recommend.results import CandidateResult

THRESHOLDS: dict[str, float] = {
    # labelled samples per class (median over classes)
    "few_per_class": 20,  # below: too few to fine-tune safely -> frozen features + linear head
    "many_per_class": 500,  # at/above (with a large gap): enough to fine-tune the whole network
    "some_per_class": 100,  # at/above: enough to unfreeze more than the last block
    # domain gap in [0, 1]: normalised entropy of the source head on the data (1 = uniform = unfamiliar data)
    "gap_low": 0.35,
    "gap_high": 0.65,
    # winner's linear-probe accuracy (fraction): frozen features already near-perfect
    "probe_good": 0.95,
    "probe_poor": 0.6,
}

TRAIN_SPLIT = "train"


def _rule(
    *,
    samples_per_class: float,
    gap: float | None,
    big_gap: bool,
    probe_accuracy: float | None,
    n_blocks: int | None,
) -> tuple[str, int | None, str]:
    """(strategy, unfrozen blocks, the rule that decided) from data size, domain gap and probe accuracy."""
    t = THRESHOLDS
    small_gap = gap is not None and gap < t["gap_low"]
    if samples_per_class < t["few_per_class"]:
        return (
            "linear-probe",
            0,
            f"{samples_per_class:g} samples per class < few_per_class ({t['few_per_class']:g}): fine-tuning "
            "would overfit; train a linear head on frozen features",
        )
    if probe_accuracy is not None and probe_accuracy >= t["probe_good"] and not big_gap:
        return (
            "linear-probe",
            0,
            f"the frozen features already reach {100 * probe_accuracy:.1f}% (>= probe_good "
            f"{100 * t['probe_good']:.0f}%) and the domain gap is not large: a linear head is enough",
        )
    if samples_per_class >= t["many_per_class"] and big_gap:
        return (
            "full-finetune",
            n_blocks,
            f"{samples_per_class:g} samples per class >= many_per_class ({t['many_per_class']:g}) and domain gap "
            f"{gap if gap is not None else 'inferred'} >= gap_high ({t['gap_high']}): fine-tune the whole network",
        )
    if small_gap and samples_per_class < t["some_per_class"]:
        return (
            "linear-probe",
            0,
            f"domain gap {gap:.2f} < gap_low ({t['gap_low']}) and {samples_per_class:g} samples per class < "
            f"some_per_class ({t['some_per_class']:g}): the pretrained features fit; a linear head is enough",
        )
    blocks = 1
    if samples_per_class >= t["some_per_class"]:
        blocks = 2
    if big_gap and samples_per_class >= t["some_per_class"]:
        blocks = 4
    if n_blocks is not None:
        blocks = max(1, min(blocks, n_blocks))
    why = "the data size and the gap" if blocks == 4 else "the data size" if blocks == 2 else "limited data"
    return (
        "partial-finetune",
        blocks,
        f"{samples_per_class:g} samples per class (between few_per_class {t['few_per_class']:g} and "
        f"many_per_class {t['many_per_class']:g}) and domain gap "
        f"{'unmeasured' if gap is None else f'{gap:.2f}'}: unfreeze the last {blocks} block(s) "
        f"({'more' if blocks > 1 else 'one'} because of {why})",
    )


def _how(strategy: str, blocks: int | None, untrainable: str | None) -> tuple[str, str]:
    """(what to do, the ``--unfreeze`` value of the next command) for a strategy."""
    if strategy == "linear-probe":
        if untrainable is not None:
            return (
                "train a logistic-regression head on its frozen features (`advisor features` extracts them)",
                "head",
            )
        return "train a logistic-regression head on frozen features", "head"
    if strategy == "full-finetune":
        return "fine-tune all layers (small learning rate, warm-up)", "all"
    return f"unfreeze the last {blocks} block(s) and train them with the new head", f"last-{blocks}"


def advise_strategy(
    *,
    samples_per_class: float,
    n_classes: int,
    domain_gap: float | None,
    probe_accuracy: float | None,
    model_id: str | None,
    n_blocks: int | None = None,
    gap_source: str | None = None,
    untrainable: str | None = None,
) -> dict[str, Any]:
    """Recommend how to adapt the winning model, from data size per class and the measured domain gap.

    Args:
        samples_per_class: median labelled samples per class that fine-tuning would train on (see
            `count_per_class`).
        n_classes: number of classes.
        domain_gap: in [0, 1] (higher = data further from the pretraining domain), or None when unmeasured.
        probe_accuracy: the winner's linear-probe accuracy (fraction), or None.
        model_id: the winner.
        n_blocks: how many blocks the winner's backbone has (caps the advice), when known.
        gap_source: how `domain_gap` was measured (printed as evidence).
        untrainable: why the winner cannot be fine-tuned (see `advisor.finetune.untrainable_reason`), or None;
            when given the advice is always frozen features.

    Returns:
        ``{strategy, unfreeze_blocks, unfreeze, summary, rule, evidence, thresholds}``; strategy is one of
        ``linear-probe``, ``partial-finetune``, ``full-finetune``.
    """
    t = THRESHOLDS
    gap = domain_gap
    evidence: dict[str, Any] = {
        "model": model_id,
        "median_samples_per_class": samples_per_class,
        "n_classes": n_classes,
        "domain_gap": None if gap is None else round(gap, 3),
        "domain_gap_measured_by": gap_source or ("not measured" if gap is None else "source-head entropy"),
        "winner_probe_accuracy": None if probe_accuracy is None else round(probe_accuracy, 4),
        "finetunable": untrainable is None,
    }
    big_gap = gap is not None and gap >= t["gap_high"]
    if probe_accuracy is not None and probe_accuracy < t["probe_poor"] and gap is None:
        big_gap = True  # poor frozen features are themselves evidence of a gap
        evidence["domain_gap_measured_by"] = "probe accuracy below probe_poor (no source head)"
    blocks: int | None
    if untrainable is not None:
        strategy, blocks = "linear-probe", 0
        rule = f"{untrainable}: only its frozen features can be used"
        evidence["untrainable_reason"] = untrainable
    else:
        strategy, blocks, rule = _rule(
            samples_per_class=samples_per_class,
            gap=gap,
            big_gap=big_gap,
            probe_accuracy=probe_accuracy,
            n_blocks=n_blocks,
        )
    how, cmd_unfreeze = _how(strategy, blocks, untrainable)
    return {
        "strategy": strategy,
        "unfreeze_blocks": blocks,
        "unfreeze": cmd_unfreeze,
        "summary": f"{strategy}: {how} — because {rule}.",
        "rule": rule,
        "evidence": evidence,
        "thresholds": dict(THRESHOLDS),
    }


def count_per_class(dataset: Dataset) -> tuple[np.ndarray, str]:
    """Labelled samples per class that fine-tuning trains on, from the whole dataset (never the subsample).

    With a given ``train`` split beside a val/test split only the train split counts (that is what
    `advisor finetune` trains on); otherwise every labelled sample does.

    Returns:
        (counts aligned with ``dataset.classes``, what was counted: ``"train split"`` or ``"whole dataset"``).
    """
    samples = list(dataset.samples)
    splits = {s.split for s in samples if s.label is not None}
    counted_on = "whole dataset"
    if TRAIN_SPLIT in splits and len(splits - {TRAIN_SPLIT, None}) > 0:
        samples = [s for s in samples if s.split == TRAIN_SPLIT]
        counted_on = "train split"
    labels = np.asarray(dataset.labels_array(samples), dtype=np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=len(dataset.classes))
    return counts, counted_on


def next_command(opts: RunConfig, model_id: str, unfreeze: str | None, *, extra: Sequence[str] = ()) -> str:
    """The shell command that carries the advice out, quoted so that it runs as printed.

    ``unfreeze=None`` (a source that cannot be fine-tuned) gives the frozen-features command
    (``advisor features``); otherwise ``advisor finetune`` with that ``--unfreeze`` and the dataset and group
    options of the recommend run, so it reads the same data the same way and validates on held-out groups.
    """
    q = shlex.quote
    data_opts = [f"--data {q(str(opts.data))}"]
    for flag, value in (
        ("--modality", opts.modality),
        ("--text-column", opts.text_column),
        ("--label-column", opts.label_column),
        ("--split-column", opts.split_column),
    ):
        if value is not None:
            data_opts.append(f"{flag} {q(str(value))}")
    if unfreeze is None:
        return " ".join(
            ["advisor features", *data_opts, f"--model {q(model_id)}", "--out features.npz", *extra]
        )
    budget = opts.finetune_budget_minutes if opts.finetune_budget_minutes is not None else opts.budget_minutes
    parts = ["advisor finetune", *data_opts, f"--model {q(model_id)}", f"--unfreeze {q(unfreeze)}"]
    for flag, value in (("--group-column", opts.group_column), ("--group-pattern", opts.group_pattern)):
        if value is not None:  # finetune then holds whole groups out for validation, as the probes did
            parts.append(f"{flag} {q(str(value))}")
    if budget is not None:
        parts.append(f"--budget {budget:g}")
    return " ".join([*parts, *extra])


def build_advice(
    dataset: Dataset,
    probed: Sequence[CandidateResult],
    opts: RunConfig,
    *,
    runtimes: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The strategy advice for the winner (``probed[0]``) with a next command that runs as printed.

    Args:
        dataset: the whole dataset (samples per class are counted on it, not on the subsample).
        probed: the ranked, probed candidates, best first; empty gives ``{}``.
        opts: the recommend options (data path and reading options go into the next command).
        runtimes: model id -> the runtime its features were computed on (``torch``, ``onnx``, ...), when known;
            a runtime `advisor finetune` refuses makes the advice frozen features.

    Returns:
        The `advise_strategy` record plus ``next_command``.
    """
    from advisor.finetune import untrainable_reason

    if not probed:
        return {}
    w = probed[0]
    counts, counted_on = count_per_class(dataset)
    per_class = float(np.median(counts)) if len(counts) else 0.0
    gap = w.domain.get("source_entropy_norm")
    untrainable = untrainable_reason(w.model_id, (runtimes or {}).get(w.model_id))
    advice = advise_strategy(
        samples_per_class=per_class,
        n_classes=len(dataset.classes),
        domain_gap=gap,
        probe_accuracy=(w.probe or {}).get("accuracy"),
        model_id=w.model_id,
        gap_source="mean normalised entropy of the source head on the subsample" if gap is not None else None,
        untrainable=untrainable,
    )
    advice["evidence"]["samples_per_class_counted_on"] = counted_on
    advice["next_command"] = next_command(opts, w.model_id, None if untrainable else advice["unfreeze"])
    return advice


def _check_of(checks: Sequence[Mapping[str, Any]], model_id: str | None) -> Mapping[str, Any] | None:
    """The completed fine-tuning check of `model_id` (the advised winner), if there is one."""
    for c in checks:
        if c.get("model_id") == model_id and c.get("status") == "done":
            return c
    return None


def revise_with_finetune_check(
    advice: dict[str, Any], checks: Sequence[Mapping[str, Any]], opts: RunConfig
) -> dict[str, Any]:
    """Let a measured ``--finetune-top`` run of the winner decide between frozen features and fine-tuning.

    ``better`` (the fine-tuned 95 % interval wholly above the probe's): fine-tune with the checked setting;
    ``worse`` or ``no clear difference``: frozen features (the cheaper option the evidence does not beat). The
    rule-based advice is kept under ``rule_advice``; the rule says how many epochs the check ran.

    Returns:
        The revised advice (a new dict); unchanged when the winner has no completed check.
    """
    model_id = (advice.get("evidence") or {}).get("model")
    check = _check_of(checks, model_id)
    if check is None or not advice:
        return advice
    epochs = int(check.get("epochs_run") or check.get("epochs") or 0)
    unfreeze = str(check.get("unfreeze"))
    ft, pr = 100 * float(check["finetune_accuracy"]), 100 * float(check["probe_accuracy"])
    ran = f"fine-tuning {model_id} ({unfreeze}, {epochs} epoch{'s' if epochs != 1 else ''})"
    verdict = check.get("verdict")
    if verdict == "better":
        strategy = "full-finetune" if unfreeze == "all" else "partial-finetune"
        rule = f"{ran} beat its linear probe: {ft:.1f}% vs {pr:.1f}% (95 % intervals apart)"
        blocks: int | None = int(unfreeze.split("-")[1]) if unfreeze.startswith("last-") else None
        how, cmd_unfreeze = _how(strategy, blocks, None)
        if unfreeze == "head":
            strategy, how, cmd_unfreeze = "linear-probe", "train a linear head on frozen features", "head"
    else:
        strategy, blocks, cmd_unfreeze = "linear-probe", 0, "head"
        what = "did worse than" if verdict == "worse" else "was within noise of"
        rule = (
            f"{ran} {what} its linear probe: {ft:.1f}% vs {pr:.1f}%; frozen features are as good and cheaper"
        )
        if check.get("stopped_reason") != "early_stopping":
            rule += f" (after {epochs} epoch{'s' if epochs != 1 else ''}; more epochs might change this)"
        how = "train a logistic-regression head on frozen features"
    revised = dict(advice)
    revised.update(
        strategy=strategy,
        unfreeze_blocks=blocks,
        unfreeze=cmd_unfreeze,
        rule=rule,
        summary=f"{strategy}: {how} — because {rule}.",
        revised_by="finetune_check",
        rule_advice={k: advice.get(k) for k in ("strategy", "unfreeze", "rule")},
        next_command=next_command(opts, str(model_id), cmd_unfreeze),
    )
    return revised
