"""The one-line reasons of the ranked candidates and the "clearly faster" rule they rest on."""

from __future__ import annotations

from advisor.recommend.results import CandidateResult


def _license_text(c: CandidateResult) -> str:
    return c.license or (
        c.license_class if c.license_class and c.license_class != "unknown" else "license unknown"
    )


def _lat_text(c: CandidateResult, device_word: str) -> str:
    if c.latency_ms is None:
        return "latency not measured"
    bs = (c.bench or {}).get("batch_size")
    from advisor.report.render import fmt_ms

    shaky = " (unreliable: " + str((c.bench or {}).get("unreliable_reason")) + ")" if _unreliable(c) else ""
    return f"{fmt_ms(c.latency_ms)} ms p50 at batch {bs} on this {device_word}{shaky}"


def _acc_text(c: CandidateResult) -> str:
    p = c.probe or {}
    acc = float(p["accuracy"])
    lo, hi = p.get("accuracy_ci") or (acc, acc)
    return f"{100 * p['accuracy']:.1f} ± {100 * (hi - lo) / 2:.1f} %"


def _unreliable(c: CandidateResult) -> bool:
    return (c.bench or {}).get("reliable") is False


def clearly_faster(a: CandidateResult, b: CandidateResult) -> bool:
    """``a`` is faster than ``b`` beyond the measurement spread (IQR bands apart), and both figures are reliable."""
    if a.latency_ms is None or b.latency_ms is None or _unreliable(a) or _unreliable(b):
        return False
    ia = float((a.bench or {}).get("latency_ms_iqr") or 0.0)
    ib = float((b.bench or {}).get("latency_ms_iqr") or 0.0)
    return a.latency_ms + ia / 2 < b.latency_ms - ib / 2


def _best_head(best: CandidateResult, ranked: list[CandidateResult], lat: str, lic: str) -> str:
    """#1's reason: called best only when the paired test separates it from every other candidate."""
    from advisor.recommend.ranking import TIE_ORDER_SIGNAL

    tied = [
        c for c in ranked if c is not best and best.tie_group is not None and c.tie_group == best.tie_group
    ]
    if not tied:
        sep = " (the paired test separates it from the rest)" if len(ranked) > 1 else ""
        return f"best probe accuracy {_acc_text(best)}{sep}, {lat}, {lic}"
    vals = [(c.scores.get(TIE_ORDER_SIGNAL) or {}).get("value") for c in ranked]
    v = vals[ranked.index(best)]
    # the rank stage falls back to the predicted score for everyone when any candidate lacks the signal
    by = (
        f"{TIE_ORDER_SIGNAL} {100 * float(v):.1f} %"
        if None not in vals and v is not None
        else "the predicted score"
    )
    n = len(tied)
    return (
        f"tied for best with {n} other{'s' if n > 1 else ''} (the paired test cannot separate them); first by "
        f"{by}, the tie-order signal; probe accuracy {_acc_text(best)}, {lat}, {lic}"
    )


def build_reasons(ranked: list[CandidateResult], device_word: str) -> None:
    """One reason line per pick (the first entry of ``reasons``), plus supporting lines."""
    if not ranked:
        return
    best = ranked[0]
    # "fastest" compares latencies: only a front member clearly faster than every other one (which also needs
    # every figure on the front to be reliable)
    front = [c for c in ranked if c.pareto and c.latency_ms is not None]
    fastest_front = next(
        (c for c in front if len(front) > 1 and all(clearly_faster(c, o) for o in front if o is not c)), None
    )
    for c in ranked:
        lat, lic = _lat_text(c, device_word), _license_text(c)
        if c is best:
            head = _best_head(c, ranked, lat, lic)
        elif c.tie_group == best.tie_group:
            faster = clearly_faster(c, best)
            head = (
                f"statistically tied with #1 ({_acc_text(c)}){' and faster' if faster else ''}, {lat}, {lic}"
            )
        elif c is fastest_front and not any(_unreliable(o) for o in ranked if o.pareto):
            head = f"fastest on the accuracy/latency Pareto front: {_acc_text(c)}, {lat}, {lic}"
        elif c.pareto:
            head = f"on the accuracy/latency Pareto front: {_acc_text(c)}, {lat}, {lic}"
        else:
            head = f"probe accuracy {_acc_text(c)}, {lat}, {lic}"
        extra = []
        if c.predicted.get("rank") is not None:
            extra.append(f"predicted rank {c.predicted['rank']} (score {c.predicted['score']:+.2f})")
        if c.n_params is not None:
            extra.append(f"{c.n_params / 1e6:.1f}M params")
        c.reasons = [head] + extra
