"""The report's SVG plots, each a pure function of a `RecommendResults`."""

from __future__ import annotations

from advisor.recommend.results import RecommendResults
from advisor.report.svg import Point, hbars, scatter


def plot_accuracy_vs_latency(r: RecommendResults) -> str:
    """Probe accuracy (with its 95 % interval) against p50 latency, log x, the Pareto front as a step line."""
    pts = []
    front = []
    for c in r.candidates:
        if c.probe_accuracy is None or c.latency_ms is None:
            continue
        lo, hi = (c.probe or {}).get("accuracy_ci") or (None, None)
        pts.append(
            Point(
                c.latency_ms,
                100 * c.probe_accuracy,
                c.model_id,
                highlight=c.rank == 1,
                y_low=None if lo is None else 100 * lo,
                y_high=None if hi is None else 100 * hi,
            )
        )
        if c.pareto:
            front.append((c.latency_ms, 100 * c.probe_accuracy))
    from advisor.report.render import latency_batch  # render imports this module

    bs = latency_batch(r)
    return scatter(
        pts,
        title="Probe accuracy (95% CI) vs latency; red line: Pareto front",
        x_label=f"latency p50 (ms, batch {bs}, log scale)",
        y_label="probe accuracy (%)",
        log_x=True,
        front=front or None,
    )


def plot_score_agreement(r: RecommendResults) -> str:
    """The combined predicted score against the measured probe accuracy (with Spearman's rho from 3 models)."""
    pts = [
        Point(score, 100 * c.probe_accuracy, c.model_id, highlight=c.rank == 1)
        for c in r.candidates
        if c.probe_accuracy is not None and (score := c.predicted.get("score")) is not None
    ]
    note = None
    if len(pts) >= 3:
        from advisor.recommend.ranking import spearman

        rho = spearman([p.x for p in pts], [p.y for p in pts])
        note = f"Spearman rho = {rho:.2f} over {len(pts)} probed models" if rho is not None else None
    return scatter(
        pts,
        title="Predicted score vs measured probe accuracy",
        x_label="combined predicted score (z units)",
        y_label="probe accuracy (%)",
        note=note,
    )


def plot_per_class(r: RecommendResults) -> str:
    """The winner's out-of-fold accuracy per class, worst first."""
    w = r.winner
    classes = r.dataset.get("classes") or []
    items = []
    if w and w.probe and w.probe.get("per_class_accuracy"):
        for i, a in enumerate(w.probe["per_class_accuracy"]):
            if a is not None:
                items.append((classes[i] if i < len(classes) else str(i), 100 * a))
        items.sort(key=lambda t: t[1])
    return hbars(
        items,
        title=f"Per-class accuracy of {w.model_id if w else '-'} (out-of-fold)",
        x_label="accuracy (%)",
        x_max=100.0,
    )


def plot_dataset_profile(r: RecommendResults) -> str:
    """Samples per class (the 40 largest classes), largest first."""
    prof = r.dataset.get("profile") or {}
    counts = prof.get("class_counts") or r.dataset.get("class_counts") or {}
    if isinstance(counts, list):
        classes = r.dataset.get("classes") or []
        counts = {classes[i] if i < len(classes) else str(i): v for i, v in enumerate(counts)}
    items = sorted(((str(k), float(v)) for k, v in counts.items()), key=lambda t: -t[1])[:40]
    return hbars(items, title="Dataset profile: samples per class", x_label="samples", value_fmt="{:.0f}")
