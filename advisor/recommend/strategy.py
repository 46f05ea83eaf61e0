"""Transfer-strategy advice (frozen features + linear head, partial or full fine-tuning), rule-based, with evidence.

All thresholds live in `THRESHOLDS`. They are rules of thumb from the transfer-learning literature (few labels
per class favour frozen features; a large domain gap with plenty of data favours fine-tuning deeper), not
fitted values; the advice prints the evidence each rule used so a user can judge it.
"""

from __future__ import annotations

from typing import Any

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


def advise_strategy(
    *,
    samples_per_class: float,
    n_classes: int,
    domain_gap: float | None,
    probe_accuracy: float | None,
    model_id: str | None,
    n_blocks: int | None = None,
    gap_source: str | None = None,
) -> dict[str, Any]:
    """Recommend how to adapt the winning model, from data size per class and the measured domain gap.

    Args:
        samples_per_class: median labelled samples per class in the full dataset.
        n_classes: number of classes.
        domain_gap: in [0, 1] (higher = data further from the pretraining domain), or None when unmeasured.
        probe_accuracy: the winner's linear-probe accuracy (fraction), or None.
        model_id: the winner.
        n_blocks: how many blocks the winner's backbone has (caps the advice), when known.
        gap_source: how `domain_gap` was measured (printed as evidence).

    Returns:
        ``{strategy, unfreeze_blocks, summary, rule, evidence, thresholds}``; strategy is one of
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
    }
    big_gap = gap is not None and gap >= t["gap_high"]
    small_gap = gap is not None and gap < t["gap_low"]
    if probe_accuracy is not None and probe_accuracy < t["probe_poor"] and gap is None:
        big_gap = True  # poor frozen features are themselves evidence of a gap
        evidence["domain_gap_measured_by"] = "probe accuracy below probe_poor (no source head)"

    if samples_per_class < t["few_per_class"]:
        strategy, blocks = "linear-probe", 0
        rule = (
            f"{samples_per_class:g} samples per class < few_per_class ({t['few_per_class']:g}): fine-tuning would "
            "overfit; train a linear head on frozen features"
        )
    elif probe_accuracy is not None and probe_accuracy >= t["probe_good"] and not big_gap:
        strategy, blocks = "linear-probe", 0
        rule = (
            f"the frozen features already reach {100 * probe_accuracy:.1f}% (>= probe_good "
            f"{100 * t['probe_good']:.0f}%) and the domain gap is not large: a linear head is enough"
        )
    elif samples_per_class >= t["many_per_class"] and big_gap:
        strategy, blocks = "full-finetune", n_blocks
        rule = (
            f"{samples_per_class:g} samples per class >= many_per_class ({t['many_per_class']:g}) and domain gap "
            f"{gap if gap is not None else 'inferred'} >= gap_high ({t['gap_high']}): fine-tune the whole network"
        )
    elif small_gap and samples_per_class < t["some_per_class"]:
        strategy, blocks = "linear-probe", 0
        rule = (
            f"domain gap {gap:.2f} < gap_low ({t['gap_low']}) and {samples_per_class:g} samples per class < "
            f"some_per_class ({t['some_per_class']:g}): the pretrained features fit; a linear head is enough"
        )
    else:
        blocks = 1
        if samples_per_class >= t["some_per_class"]:
            blocks = 2
        if big_gap and samples_per_class >= t["some_per_class"]:
            blocks = 4
        if n_blocks is not None:
            blocks = max(1, min(blocks, n_blocks))
        strategy = "partial-finetune"
        rule = (
            f"{samples_per_class:g} samples per class (between few_per_class {t['few_per_class']:g} and "
            f"many_per_class {t['many_per_class']:g}) and domain gap "
            f"{'unmeasured' if gap is None else f'{gap:.2f}'}: unfreeze the last {blocks} block(s) "
            f"({'more' if blocks > 1 else 'one'} because of "
            f"{'the data size and the gap' if blocks == 4 else 'the data size' if blocks == 2 else 'limited data'})"
        )
    if strategy == "linear-probe":
        how = "train a logistic-regression head on frozen features"
        cmd_unfreeze = "head"
    elif strategy == "full-finetune":
        how = "fine-tune all layers (small learning rate, warm-up)"
        cmd_unfreeze = "all"
    else:
        how = f"unfreeze the last {blocks} block(s) and train them with the new head"
        cmd_unfreeze = f"last-{blocks}"
    summary = f"{strategy}: {how} — because {rule}."
    return {
        "strategy": strategy,
        "unfreeze_blocks": blocks,
        "unfreeze": cmd_unfreeze,
        "summary": summary,
        "rule": rule,
        "evidence": evidence,
        "thresholds": dict(THRESHOLDS),
    }
