"""The "signal agreement" part of the recommend reports: a summary sentence and a table of pairwise Kendall taus."""

from __future__ import annotations

from advisor.recommend.agreement import SIGNAL_LABELS
from advisor.recommend.results import RecommendResults


def agreement_summary(r: RecommendResults) -> str | None:
    """The one-line confidence statement (plain text; callers escape it for their format), or None."""
    a = r.agreement or {}
    s = a.get("summary")
    return None if not s else f"Confidence: {s}."


def agreement_rows(r: RecommendResults) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per signal pair with its Kendall tau-b over the probed candidates both have."""
    a = r.agreement or {}
    rows = []
    for p in a.get("pairs") or []:
        tau = p.get("tau")
        rows.append(
            [
                f"{SIGNAL_LABELS.get(p['a'], p['a'])} ~ {SIGNAL_LABELS.get(p['b'], p['b'])}",
                "n/a" if tau is None else f"{tau:+.2f}",
                str(p.get("n", "")),
            ]
        )
    picks = a.get("top_picks") or {}
    tied = a.get("top_tied_for_best") or {}
    for sig, model in picks.items():
        if model is None:
            continue
        rows.append(
            [
                f"top pick of {SIGNAL_LABELS.get(sig, sig)}",
                str(model),
                "tied for best" if tied.get(sig) else "not tied for best",
            ]
        )
    return ["Signals", "Kendall τ-b / model", "Models / standing"], rows
