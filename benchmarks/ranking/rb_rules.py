"""Choosing the verdict rule on evidence (issue 18): candidate rules evaluated by leave-one-target-out (LOTO).

A *rule* turns the signals the advisor has on a subsample into one score per model (higher = better). Families:

- ``single``: one signal (every advisor.scores score, the subsample probe, the catalog priors);
- ``z-mean``: the equal-weight mean of the z-scores of 2 or 3 signals (`advisor.recommend.ranking.combine`);
- ``rank-mean``: the same with centred ranks instead of z-scores (``combine(method="rank")``);
- ``learned``: non-negative least squares of the per-subsample z-scored ground truth on the z-scored signals, fitted
  on the training targets only (a small learned model over the signals and the priors);
- ``tiered``: the product's final order made tie-aware — the paired tie groups of the subsample probe
  (`advisor.recommend.ranking.paired_tie_groups`, exact McNemar + Holm on the out-of-fold predictions) first, and
  inside a group the order of a predictor rule (itself one of the rules above).

LOTO: for each target, the rule of a family with the best mean weighted τ over the *other* targets (ties: lower mean
regret, then the name) is chosen and scored on the held-out target; a family's LOTO figure averages those held-out
scores. The bootstrap CI of a LOTO figure averages, draw by draw, the chosen rule's draws on each held-out target.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import rb_metrics as M

TRIPLE_POOL = ("knn_loo", "ncm_loo", "logme", "sfda", "probe_acc", "prior_imagenet_top1", "hscore", "etran")
NO_PAIR = ("domain_confidence",)


def rule_family(score_names: Sequence[str]) -> dict[str, dict]:
    """Every candidate rule, by name (``family: ...``), as a method spec for `run.method_scores`."""
    singles = [*score_names, "probe_acc", "prior_imagenet_top1", "prior_log_params", "domain_confidence"]
    rules: dict[str, dict] = {
        f"single: {s}": {"kind": "signal", "signal": s, "family": "single"} for s in singles
    }
    pool = [s for s in singles if s not in NO_PAIR]
    for a, b in itertools.combinations(pool, 2):
        w = {a: 1.0, b: 1.0}
        rules[f"z-mean: {a} + {b}"] = {"kind": "combo", "weights": w, "signals": [a, b], "family": "z-mean"}
        rules[f"rank-mean: {a} + {b}"] = {
            "kind": "combo",
            "weights": w,
            "signals": [a, b],
            "method": "rank",
            "family": "rank-mean",
        }
    tri = [s for s in TRIPLE_POOL if s in pool]
    for combo in itertools.combinations(tri, 3):
        w = dict.fromkeys(combo, 1.0)
        rules[f"z-mean: {' + '.join(combo)}"] = {
            "kind": "combo",
            "weights": w,
            "signals": list(combo),
            "family": "z-mean",
        }
    return rules


def tiered(predictor_name: str, predictor: dict) -> dict:
    return {"kind": "tiered", "predictor": predictor, "predictor_name": predictor_name, "family": "tiered"}


def tie_groups_of(rec: dict, sub: dict, keys: Sequence[str] | None = None) -> list[int] | None:
    """Paired tie groups (1 = tied with the best) of the subsample probe over `keys` (default ``rec["keys"]``), in
    that order; None when a model has no probe."""
    from advisor.recommend.ranking import PairedCandidate, paired_tie_groups

    keys = rec["keys"] if keys is None else keys
    y = sub.get("y")
    cands = []
    for k in keys:
        sg = sub["signals"][k]
        acc = sg["values"].get("probe_acc")
        if acc is None or y is None:
            return None
        cands.append(PairedCandidate(k, float(acc), ids=sub.get("ids"), y=y, pred=sg.get("probe_oof")))
    groups = paired_tie_groups(cands)
    return [groups[k].group for k in keys]


def tiered_scores(group: Sequence[int], inner: Sequence[float | None]) -> list[float]:
    """Lexicographic score: tie group first (1 best), then the predictor inside the group (None lowest)."""
    clean = M._clean(inner)
    lo, hi = float(clean.min()), float(clean.max())
    span = (hi - lo) or 1.0
    return [-float(g) + 0.9 * (float(v) - lo) / span for g, v in zip(group, clean, strict=True)]


# ------------------------------------------------------------------------------------------------ learned rule
def _z_matrix(table: dict, hib: dict, names: Sequence[str], keys: Sequence[str]) -> np.ndarray:
    """(models, signals) z-scores, oriented; a model a signal does not apply to gets the signal's minimum minus 1."""
    cols = []
    for n in names:
        per = table.get(n, {})
        sign = 1.0 if hib.get(n, True) else -1.0
        z = M.zscore([None if per.get(k) is None else sign * per[k] for k in keys])
        if np.isnan(z).all():
            z = np.zeros(len(keys))
        else:
            z = np.where(np.isnan(z), np.nanmin(z) - 1.0, z)
        cols.append(z)
    return np.stack(cols, 1)


def fit_nnls(items: list[tuple[dict, dict, np.ndarray, list[str]]], names: Sequence[str]) -> dict[str, float]:
    """Non-negative weights of the signals that best predict the z-scored ground truth over the given subsamples."""
    from scipy.optimize import nnls

    if not items:
        return {}
    xs, ys = [], []
    for table, hib, truth, keys in items:
        xs.append(_z_matrix(table, hib, names, keys))
        t = np.asarray(truth, np.float64)
        ys.append((t - t.mean()) / (t.std() or 1.0))
    x, y = np.concatenate(xs), np.concatenate(ys)
    w, _ = nnls(x, y)
    total = w.sum()
    return (
        {n: round(float(v / total), 4) for n, v in zip(names, w, strict=True) if v > 1e-6}
        if total > 0
        else {}
    )


# ------------------------------------------------------------------------------------------------ LOTO
def point_table(records: list[dict], rules: dict[str, dict], size: int, method_scores) -> dict[str, dict]:
    """{rule: {target: {"tau_w", "regret"}}} point estimates (mean over folds and seeds) at one subsample size."""
    out: dict[str, dict] = {r: {} for r in rules}
    for rec in records:
        vals: dict[str, list] = {r: [] for r in rules}
        for fold in rec["folds"]:
            truth = np.array([fold["gt"][k]["accuracy"] for k in rec["keys"]])
            for sub in fold["subsamples"]:
                if sub["per_class"] != size:
                    continue
                sc = method_scores(rec, sub, rules)
                for r in rules:
                    vals[r].append((M.weighted_tau(sc[r], truth), M.top1_regret(sc[r], truth)))
        for r, v in vals.items():
            if v:
                out[r][rec["name"]] = {
                    "tau_w": float(np.mean([a for a, _ in v])),
                    "regret": float(np.mean([b for _, b in v])),
                }
    return out


def choose(points: dict[str, dict], targets: Sequence[str], names: Sequence[str]) -> str | None:
    """The rule with the best mean tau_w over `targets` (ties: lower mean regret, then name)."""
    best, best_key = None, None
    for r in sorted(names):
        per = points.get(r, {})
        if not all(t in per for t in targets):
            continue
        tw = float(np.mean([per[t]["tau_w"] for t in targets]))
        rg = float(np.mean([per[t]["regret"] for t in targets]))
        key = (-round(tw, 6), round(rg, 6))
        if best_key is None or key < best_key:
            best, best_key = r, key
    return best


def loto(points: dict[str, dict], targets: Sequence[str], names: Sequence[str]) -> dict[str, str | None]:
    """Held-out target -> the rule chosen on all the other targets."""
    return {t: choose(points, [u for u in targets if u != t], names) for t in targets}


def loto_summary(chosen: dict[str, str | None], scored: dict[str, dict]) -> dict:
    """Mean held-out tau_w / regret of a LOTO selection, with CIs from the chosen rules' paired draws.

    scored: {target: {rule: score_target row}} at one size (rows with ``draws``).
    """
    rows = [scored[t][r] for t, r in chosen.items() if r is not None and r in scored.get(t, {})]
    if not rows:
        return {}
    out: dict = {k: float(np.mean([r[k] for r in rows])) for k in ("tau_w", "regret")}
    for k in ("tau_w", "regret"):
        if all(r.get("draws") for r in rows):
            out[f"{k}_ci"] = list(M.percentile_ci(np.mean(np.array([r["draws"][k] for r in rows]), axis=0)))
    out["per_target"] = {
        t: {"rule": r, "tau_w": scored[t][r]["tau_w"], "regret": scored[t][r]["regret"]}
        for t, r in chosen.items()
        if r
    }
    return out


def recall_at(rec: dict, size: int, scores_of, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Fraction of subsamples whose ground-truth best model is in the rule's top k (ties at the cut count in)."""
    hits = {k: [] for k in ks}
    for fold in rec["folds"]:
        truth = np.array([fold["gt"][k]["accuracy"] for k in rec["keys"]])
        best = int(np.argmax(truth))
        for sub in fold["subsamples"]:
            if sub["per_class"] != size:
                continue
            s = M._clean(scores_of(rec, sub))
            order = np.sort(s)[::-1]
            for k in ks:
                cut = order[min(k, len(order)) - 1]
                hits[k].append(float(s[best] >= cut - 1e-12))
    return {f"recall@{k}": (float(np.mean(v)) if v else math.nan) for k, v in hits.items()}


# ------------------------------------------------------------------------------------------------ the study
FAMILIES = ("single", "z-mean", "rank-mean", "tiered", "learned", "any")


def _learned_items(records: list[dict], size: int, signal_table) -> dict[str, list]:
    items: dict[str, list] = {}
    for rec in records:
        rows = []
        for fold in rec["folds"]:
            truth = np.array([fold["gt"][k]["accuracy"] for k in rec["keys"]])
            for sub in fold["subsamples"]:
                if sub["per_class"] == size:
                    table, hib = signal_table(rec, sub)
                    rows.append((table, hib, truth, rec["keys"]))
        items[rec["name"]] = rows
    return items


def study(
    records: list[dict], score_names: Sequence[str], sizes: Sequence[int], *, fns: dict, n_boot: int, log
) -> dict:
    """LOTO evaluation of every rule family at every subsample size; the rules each family would ship (chosen on
    all targets) with their recall@k; everything JSON-able.

    fns: {"method_scores", "score_target", "signal_table"} from run.py (passed in to avoid an import cycle).
    """
    base = rule_family(score_names)
    tiers = {f"tiered: {n}": tiered(n, spec) for n, spec in base.items()}
    rules = {**base, **tiers}
    by_name = {r["name"]: r for r in records}
    targets = [r["name"] for r in records]
    pool = [*score_names, "probe_acc", "prior_imagenet_top1", "prior_log_params", "domain_confidence"]
    out: dict = {"n_rules": len(rules), "families": list(FAMILIES), "targets": targets, "sizes": {}}
    for size in sizes:
        log(f"rule study: {len(rules)} rules x {len(targets)} targets at {size}/class")
        points = point_table(records, rules, size, fns["method_scores"])
        items = _learned_items(records, size, fns["signal_table"])
        chosen: dict[str, dict[str, str | None]] = {}
        specs: dict[str, dict] = dict(rules)
        for fam in FAMILIES:
            if fam == "learned":
                sel = {}
                for t in targets:
                    w = fit_nnls([it for u in targets if u != t for it in items[u]], pool)
                    if not w:
                        sel[t] = None
                        continue
                    name = f"learned (without {t}): " + " + ".join(f"{v:.2f}·{k}" for k, v in w.items())
                    specs[name] = {"kind": "combo", "weights": w, "signals": list(w), "family": "learned"}
                    sel[t] = name
                chosen[fam] = sel
                continue
            names = [
                n for n, r in rules.items() if fam == "any" and r["family"] != "tiered" or r["family"] == fam
            ]
            chosen[fam] = loto(points, targets, names)
        need: dict[str, set] = {t: set() for t in targets}
        for sel in chosen.values():
            for t, r in sel.items():
                if r:
                    need[t].add(r)
        scored = {}
        for t in targets:
            res = fns["score_target"](by_name[t], {r: specs[r] for r in need[t]}, n_boot=n_boot)
            scored[t] = res.get(str(size), {})
        fam_out = {}
        for fam, sel in chosen.items():
            summ = loto_summary(sel, scored)
            if fam == "learned":
                ship_w = fit_nnls([it for u in targets for it in items[u]], pool)
                ship = "learned (all targets): " + " + ".join(f"{v:.2f}·{k}" for k, v in ship_w.items())
                ship_spec = {"kind": "combo", "weights": ship_w, "signals": list(ship_w)}
            else:
                names = [
                    n
                    for n, r in rules.items()
                    if fam == "any" and r["family"] != "tiered" or r["family"] == fam
                ]
                ship = choose(points, targets, names)
                ship_spec = rules.get(ship) if ship else None
            rec_at = {}
            if ship_spec is not None:
                for t in targets:
                    rec_at[t] = recall_at(
                        by_name[t],
                        size,
                        lambda rec, sub, s=ship_spec: fns["method_scores"](rec, sub, {"x": s})["x"],
                    )
            fam_out[fam] = {
                "loto": summ,
                "ship": ship,
                "ship_spec": ship_spec,
                "ship_points": points.get(ship, {}) if ship else {},
                "recall": rec_at,
            }
        top = sorted(
            (
                (r, float(np.mean([v["tau_w"] for v in per.values()])))
                for r, per in points.items()
                if len(per) == len(targets)
            ),
            key=lambda x: -x[1],
        )[:25]
        out["sizes"][str(size)] = {"families": fam_out, "top_rules_in_sample": top}
    return out
