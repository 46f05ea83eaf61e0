"""Renders RESULTS.md of the ranking benchmark from its results dict (a pure function of the record; the hand-written
analysis in analysis.md beside this file is included verbatim when present)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

KEY_METHODS = (
    "advisor: final order (tie groups, then NCM-LOO)",
    "advisor: scores stage (current WEIGHTS)",
    "advisor: probe stage (subsample probe)",
    "prior: ImageNet top-1",
    "prior: parameter count",
)


def _f(v, nd: int = 2) -> str:
    return "—" if v is None else f"{v:+.{nd}f}" if nd == 2 else f"{v:.{nd}f}"


def _ci(r: dict | None, k: str, scale: float = 1.0, nd: int = 2, n_group: int | None = None) -> str:
    if r is None or not r.get("applicable", True):
        return "n/a"
    v = r.get(k)
    ci = r.get(f"{k}_ci")
    if v is None:
        return "n/a"
    s = f"{v * scale:.{nd}f}"
    if ci:
        s += f" [{ci[0] * scale:.{nd}f}, {ci[1] * scale:.{nd}f}]"
    if n_group is not None and r.get("n_targets") is not None and r["n_targets"] < n_group:
        s += f" (only {r['n_targets']} of {n_group})"
    return s


def _method_order(res: dict) -> list[str]:
    ms = list(res["methods"])
    return [
        *[m for m in KEY_METHODS if m in ms],
        *[m for m in ms if m.startswith(("tie groups", "chosen on dev", "proposed"))],
        *[
            m
            for m in ms
            if m not in KEY_METHODS and not m.startswith(("tie groups", "chosen on dev", "proposed"))
        ],
        "random pick (expected)",
    ]


def render(res: dict) -> str:
    """RESULTS.md text."""
    env = res["environment"]
    p = res["protocol"]
    L: list[str] = []
    title = "Ranking-quality benchmark" + (" (smoke run)" if res.get("smoke") else "")
    L += [f"# {title}", ""]
    L += [
        f"Recorded {res['created_utc']} by `python benchmarks/ranking/run.py"
        f"{' --smoke' if res.get('smoke') else ''}` in {res['seconds_total']:.0f} s "
        f"(wall, including cache hits; see timings below).",
        f"Hardware: {env['cpu_model']}, {env['cpu_count']} cores visible, torch threads {env['torch_threads']}, "
        "no GPU; the machine was shared with other jobs, so times are indicative only.",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
        + f", Python {env['python']}.",
        "Rerun: `python benchmarks/ranking/run.py` (`--targets NAME ...`, `--smoke`, `--render` to re-render this "
        "file from results.json). Caches (product feature cache, floors, ground truth, subsample signals) live in "
        f"`$ADVISOR_CACHE_DIR`, else `/tmp/advisor-ranking-cache`, never in the repository; this run used "
        f"`{res.get('cache_dir')}`.",
        "",
        "## Protocol",
        "",
        f"- **Ground truth**: {p['ground_truth']}.",
        f"- **Advisor input**: {p['subsamples']}. Every signal is computed on that subsample only.",
        f"- **Weighted Kendall τ (τ_w)**: {p['weighted_tau']}.",
        f"- **Regret**: {p['regret']}; shown in accuracy points (×100).",
        f"- **Intervals**: {p['ci']}.",
        f"- **Not applicable**: {p['not_applicable']}.",
        f"- **Dev / confirmation split of targets**: combinations are chosen on {p['dev_targets']} and "
        f"confirmed on {p['confirm_targets']}.",
        "",
    ]
    if res.get("skipped_targets"):
        L += ["Skipped targets: " + "; ".join(f"{k} ({v})" for k, v in res["skipped_targets"].items()), ""]

    L += ["## Zoos and ground truth", ""]
    for t in res["targets"]:
        sp = t["spec"]
        L += [
            f"### {t['name']} ({t['modality']}, {t['role']})",
            "",
            f"{sp['note']}. {t['n_classes']} classes; ground-truth train/test per fold: "
            + ", ".join(f"{f['name']} {f['n_train']}/{f['n_test']}" for f in t["folds"])
            + f"; subsample sizes per class {list(sp['sub_sizes'])} × {sp['seeds']} seeds.",
            "",
        ]
        L += [
            "| model | kind | GT accuracy (%) [95 % CI] | ImageNet top-1 (%) | params (M) | features (s, this run; cold extraction) |",
            "|---|---|---|---|---|---|",
        ]
        for m in t["models"]:
            if m["status"] != "ok":
                L.append(f"| {m['key']} | {m['kind']} | skipped: {m.get('reason')} | | | |")
                continue
            accs = [f["gt"][m["key"]] for f in t["folds"]]
            if len(accs) == 1:
                a = accs[0]
                acc = f"{100 * a['accuracy']:.1f} [{100 * a['accuracy_ci'][0]:.1f}, {100 * a['accuracy_ci'][1]:.1f}]"
            else:
                vals = [a["accuracy"] for a in accs]
                acc = (
                    f"{100 * sum(vals) / len(vals):.1f} (mean of {len(vals)} folds; "
                    f"range {100 * min(vals):.1f}–{100 * max(vals):.1f})"
                )
            top1 = "—" if m.get("imagenet_top1") is None else f"{m['imagenet_top1']:.1f}"
            npar = (
                "0"
                if m.get("n_params") == 0
                else ("—" if m.get("n_params") is None else f"{m['n_params'] / 1e6:.2f}")
            )
            secs = f"{m.get('feature_seconds', 0):.0f}" + (" (cached)" if m.get("feature_cached") else "")
            if m.get("feature_cold_seconds") is not None and m.get("feature_cached"):
                secs += f"; cold {m['feature_cold_seconds']:.0f}"
            L.append(f"| {m['key']} | {m['kind']} | {acc} | {top1} | {npar} | {secs} |")
        L.append("")

    sizes = sorted({n for t in res["scored"].values() for n in t}, key=int)
    head = str(p.get("headline_size", sizes[0]))
    if head not in sizes:
        head = sizes[0]
    names = [t["name"] for t in res["targets"]]
    order = _method_order(res)

    for metric, label, scale, nd in (
        ("tau_w", "weighted Kendall τ (higher is better)", 1.0, 2),
        ("regret", "top-1 regret, accuracy points (lower is better)", 100.0, 1),
    ):
        gsz = res.get("summary_group_sizes", {})
        groups = [g for g in ("all", "dev", "confirm", "image") if gsz.get(g, 1) and g in res["summary"]]
        L += [
            f"## Main table: {label}, {head} samples per class",
            "",
            "| method | " + " | ".join(names) + " | " + " | ".join(f"mean ({g})" for g in groups) + " |",
            "|---|" + "---|" * (len(names) + len(groups)),
        ]
        for m in order:
            row = [_ci(res["scored"][t].get(head, {}).get(m), metric, scale, nd) for t in names]
            row += [_ci(res["summary"][g][head].get(m), metric, scale, nd, gsz.get(g)) for g in groups]
            L.append(f"| {m} | " + " | ".join(row) + " |")
        L.append("")

    L += [
        "## By subsample size (mean over all targets; regret in accuracy points)",
        "",
        "| method | "
        + " | ".join(f"τ_w @{n}" for n in sizes)
        + " | "
        + " | ".join(f"regret @{n}" for n in sizes)
        + " |",
        "|---|" + "---|" * (2 * len(sizes)),
    ]
    for m in order:
        nall = res.get("summary_group_sizes", {}).get("all")
        row = [_ci(res["summary"]["all"][n].get(m), "tau_w", n_group=nall) for n in sizes]
        row += [_ci(res["summary"]["all"][n].get(m), "regret", 100.0, 1, nall) for n in sizes]
        L.append(f"| {m} | " + " | ".join(row) + " |")
    L.append("")

    L += [
        "## Plain Kendall τ, " + head + " samples per class",
        "",
        "| method | " + " | ".join(names) + " | mean (all) |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for m in order:
        row = [_ci(res["scored"][t].get(head, {}).get(m), "tau") for t in names]
        row.append(
            _ci(
                res["summary"]["all"][head].get(m),
                "tau",
                n_group=res.get("summary_group_sizes", {}).get("all"),
            )
        )
        L.append(f"| {m} | " + " | ".join(row) + " |")
    L.append("")

    for label, c in (res.get("combos") or {}).items():
        if not c.get("ranked"):
            continue
        what = (
            "any signal, including the subsample probe"
            if label == "any_signal"
            else ("scores stage: every signal except the subsample probe")
        )
        L += [
            f"## Combination search ({what}); chosen on dev, confirmed on held-out targets",
            "",
            f"{c['n_combos']} equal-weight combinations of up to {c['max_size']} signals from {c['pool']}, "
            "combined by `advisor.recommend.ranking.combine` (z-scores, weights renormalised per model); ranked "
            "by mean τ_w on the dev targets (mean over sizes and seeds; point estimates). Top 12:",
            "",
            "| signals | dev τ_w | dev regret (pts) | confirm τ_w | confirm regret (pts) |",
            "|---|---|---|---|---|",
        ]
        for r in c["ranked"][:12]:
            dr = None if r["dev_regret"] is None else 100 * r["dev_regret"]
            cr = None if r["confirm_regret"] is None else 100 * r["confirm_regret"]
            L.append(
                f"| {' + '.join(r['weights'])} | {_f(r['dev_tau_w'])} | {_f(dr, 1)} "
                f"| {_f(r['confirm_tau_w'])} | {_f(cr, 1)} |"
            )
        L.append("")

    L += rules_section(res)
    L += shortlist_section(res)
    L += [
        "## Advisor weights measured",
        "",
        "`advisor/recommend/ranking.py` WEIGHTS at run time: `"
        + str(res["advisor_weights"]["weights"])
        + f"`, default score weight "
        f"{res['advisor_weights']['default_score_weight']}.",
        "",
    ]
    L += ["## Timings", "", "| target | wall (s) | features (s, this run) |", "|---|---|---|"]
    for t in res["targets"]:
        fs = sum(m.get("feature_seconds", 0) for m in t["models"] if m["status"] == "ok")
        L.append(f"| {t['name']} | {t['seconds']:.0f} | {fs:.0f} |")
    L.append("")
    analysis = HERE / "analysis.md"
    if analysis.exists() and not res.get("smoke"):
        L += [analysis.read_text().rstrip(), ""]
    return "\n".join(L) + "\n"


def _pm(r: dict | None, k: str, scale: float = 1.0, nd: int = 2) -> str:
    if not r or r.get(k) is None:
        return "n/a"
    v, ci = r[k], r.get(f"{k}_ci")
    return f"{v * scale:.{nd}f}" + (f" [{ci[0] * scale:.{nd}f}, {ci[1] * scale:.{nd}f}]" if ci else "")


def shortlist_section(res: dict) -> list[str]:
    """Recall@k of the product's shortlist predictor (run.shortlist_recall): is the true best among those probed?"""
    sr = res.get("shortlist_recall")
    if not sr or not sr.get("sizes"):
        return []
    ks = sr["ks"]
    L = [
        "## Shortlist recall (is the true best among the models the advisor probes?)",
        "",
        f"Fraction of subsamples whose ground-truth best model is in the top k of `{sr['method']}` — the ranking "
        "that picks the probed shortlist (`--shortlist`, default 5) — ties at the cut counted in.",
        "",
    ]
    for n, block in sr["sizes"].items():
        L += [
            f"{n} samples per class:",
            "",
            "| target | models | " + " | ".join(f"recall@{k}" for k in ks) + " |",
            "|---|---|" + "---|" * len(ks),
        ]
        for t, r in block["per_target"].items():
            L.append(f"| {t} | {r['n_models']} | " + " | ".join(f"{r[f'recall@{k}']:.2f}" for k in ks) + " |")
        m = block["mean"]
        L += ["| **mean** | | " + " | ".join(f"**{m[f'recall@{k}']:.2f}**" for k in ks) + " |", ""]
    return L


def rules_section(res: dict) -> list[str]:
    """The LOTO rule study (rb_rules.study): per size, each family's held-out figure and the rule it would ship,
    beside the fixed references (the current advisor, the priors, the best single scores) on the same targets."""
    rs = res.get("rules") or {}
    if not rs.get("sizes"):
        return []
    L = [
        "## The verdict rule, chosen by leave-one-target-out",
        "",
        f"{rs['n_rules']} candidate rules in families {', '.join(rs['families'])} (see `rb_rules.py`). For each "
        "held-out target the family's rule with the best mean τ_w on the *other* targets is chosen and scored on "
        "it; the LOTO figure is the mean over held-out targets, its CI the draw-by-draw mean of the chosen rules' "
        "paired bootstrap draws. 'Ships' is the rule the family picks on all targets (what the product would use); "
        "recall@k: fraction of subsamples whose ground-truth best model is in that rule's top k (mean over targets).",
        "",
    ]
    for n, v in rs["sizes"].items():
        L += [
            f"### {n} samples per class",
            "",
            "| family | LOTO τ_w [95 % CI] | LOTO regret, pts [95 % CI] | ships (chosen on all targets) | "
            "recall@1 / @3 / @5 |",
            "|---|---|---|---|---|",
        ]
        for fam, f in v["families"].items():
            rc = f.get("recall") or {}
            rec = (
                " / ".join(f"{sum(r[f'recall@{k}'] for r in rc.values()) / len(rc):.2f}" for k in (1, 3, 5))
                if rc
                else "—"
            )
            L.append(
                f"| {fam} | {_pm(f['loto'], 'tau_w')} | {_pm(f['loto'], 'regret', 100.0, 1)} | "
                f"{f['ship'] or '—'} | {rec} |"
            )
        summ = res["summary"]["all"].get(n, {})
        L += ["", "Fixed references on the same targets (not selected; mean over all targets):", ""]
        L += ["| method | τ_w [95 % CI] | regret, pts [95 % CI] |", "|---|---|---|"]
        refs = [m for m in KEY_METHODS if m in summ]
        singles = sorted(
            (m for m in summ if m.startswith("score: ") and summ[m]),
            key=lambda m: -summ[m]["tau_w"],
        )
        for m in [*refs, *singles]:
            if summ.get(m):
                L.append(f"| {m} | {_pm(summ[m], 'tau_w')} | {_pm(summ[m], 'regret', 100.0, 1)} |")
        L += ["", "Held-out picks per target (family 'any' and 'tiered'):", ""]
        L += ["| target | any: rule, τ_w, regret | tiered: rule, τ_w, regret |", "|---|---|---|"]
        fa, ft = v["families"].get("any", {}), v["families"].get("tiered", {})
        for t in rs["targets"]:
            a = (fa.get("loto") or {}).get("per_target", {}).get(t)
            b = (ft.get("loto") or {}).get("per_target", {}).get(t)
            fmt = _pick_text
            L.append(f"| {t} | {fmt(a)} | {fmt(b)} |")
        L.append("")
    return L


def _pick_text(r: dict | None) -> str:
    return f"{r['rule']}, {r['tau_w']:.2f}, {100 * r['regret']:.1f}" if r else "—"
