"""Tables and rank correlations of the dense benchmark, from ``results/*.json`` (no measurement here)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RAW = "floor:raw-pixel"


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{nd}f}"


def gt_value(rec: dict[str, Any], k: str) -> float | None:
    g = rec["gt"].get(k)
    if g is None:
        return None
    return g.get("map") if rec["task"] == "detection" else g.get("miou")


def correlations(rec: dict[str, Any], pkey: str = "proxy") -> dict[str, Any]:
    """Spearman rho and Kendall tau (scipy) between each proxy signal and the fine-tuned metric, over backbones."""
    from scipy.stats import kendalltau, spearmanr

    proxy = rec[pkey]
    keys = [k for k in rec["gt"] if k in proxy]
    truth = [gt_value(rec, k) for k in keys]
    signals: dict[str, list[Any]] = {"probe value": [proxy[k]["value"] for k in keys]}
    for name in proxy[keys[0]]["scores"] if keys else []:
        signals[name] = [proxy[k]["scores"].get(name) for k in keys]
    out: dict[str, Any] = {"n": len(keys), "models": keys}
    for name, vals in signals.items():
        ok = [i for i, v in enumerate(vals) if v is not None and truth[i] is not None]
        if len(ok) < 3:
            out[name] = {"spearman": None, "kendall": None, "n": len(ok)}
            continue
        x, y = [vals[i] for i in ok], [truth[i] for i in ok]
        rho, p_rho = spearmanr(x, y)
        tau, p_tau = kendalltau(x, y)
        out[name] = {"spearman": float(rho), "spearman_p": float(p_rho), "kendall": float(tau),
                     "kendall_p": float(p_tau), "n": len(ok)}  # fmt: skip
    return out


def table(rec: dict[str, Any]) -> str:
    det = rec["task"] == "detection"
    head = (
        "| backbone | proxy (crop-probe acc) [95 % CI] | LogME | GT mAP | GT AP50 | fine-tune s | latency p50 ms |"
        if det
        else "| backbone | proxy (pixel-probe mIoU ± sd) [95 % CI] | LogME | GT mIoU | GT IoU fg | fine-tune s "
        "| latency p50 ms |"
    )
    lines = [head, "|" + "---|" * 7]
    for k, p in rec["proxy"].items():
        g = rec["gt"].get(k, {})
        lat = rec["latency"].get(k.removeprefix("random:"))
        lat_s = (
            "—"
            if k == RAW or lat is None
            else _f(lat["p50_ms"], 1) + (" (same arch)" if k.startswith("random:") else "")
        )
        ci = p.get("ci") or [None, None]
        pv = _f(p["value"]) + (f" ± {_f(p['value_sd'])}" if not det and p.get("value_sd") is not None else "")
        proxy = f"{pv} [{_f(ci[0])}, {_f(ci[1])}]"
        logme = _f(p["scores"].get("logme"))
        ft = _f((g.get("seconds_train") or 0) + (g.get("seconds_features") or 0), 0) if g else "—"
        if det:
            gts = f"{_f(g.get('map'))} | {_f(g.get('map50'))}" if g else "— (floor: no fine-tune) | —"
        else:
            fg = (g.get("per_class_iou") or {}).get("foreground") if g else None
            gts = f"{_f(g.get('miou'))} | {_f(fg)}" if g else "— (floor: no fine-tune) | —"
        lines.append(f"| {k} | {proxy} | {logme} | {gts} | {ft} | {lat_s} |")
    return "\n".join(lines)


def corr_table(c: dict[str, Any]) -> str:
    lines = ["| proxy signal | Spearman ρ | Kendall τ | n |", "|---|---|---|---|"]
    for name, v in c.items():
        if name in ("n", "models"):
            continue
        lines.append(f"| {name} | {_f(v['spearman'], 2)} | {_f(v['kendall'], 2)} | {v['n']} |")
    return "\n".join(lines)


def floor_check(rec: dict[str, Any], pkey: str = "proxy") -> str:
    raw = rec[pkey].get(RAW)
    if raw is None:
        return "raw floor not measured"
    rv = raw["value"]
    beat = [k for k, p in rec[pkey].items() if k != RAW and p["value"] > rv]
    lose = [k for k, p in rec[pkey].items() if k != RAW and p["value"] <= rv]
    return f"raw floor {rv:.3f} (point values; compare the intervals in the table); above it: {', '.join(beat) or 'none'}; at or below it: {', '.join(lose) or 'none'}"


def roi_table(rec: dict[str, Any]) -> str:
    """The ROI-probe record (``roi_probe_bccd.json``) as a table beside the crop probe and the short fine-tune."""
    gt, crop = rec.get("finetune_gt") or {}, rec.get("crop_probe") or {}
    lines = [
        "| backbone | ROI value (class + box LogME) | class LogME | box LogME | class acc [95 % CI] | box R² "
        "| crop-probe acc | GT mAP | GT AP50 |",
        "|" + "---|" * 9,
    ]
    for k, r in rec["rows"].items():
        ci = r.get("accuracy_ci") or [None, None]
        g = gt.get(k) or {}
        lines.append(
            f"| {k} | {_f(r.get('value'))} | {_f(r.get('logme_cls'))} | {_f(r.get('logme_box'))} "
            f"| {_f(r.get('accuracy'))} [{_f(ci[0])}, {_f(ci[1])}] | {_f(r.get('box_r2'))} | {_f(crop.get(k))} "
            f"| {_f(g.get('map'))} | {_f(g.get('map50'))} |"
        )
    sp = rec.get("spearman") or {}
    cells = [f"{k.replace('~', ' vs ')} {_f(v, 2)}" for k, v in sp.items() if k != "rows"]
    cp = {k: v for k, v in (rec.get("spearman_crop_probe") or {}).items() if k != "rows"}
    lines += [
        "",
        f"Spearman ρ over the {len(sp.get('rows') or [])} backbones with a fine-tune: " + "; ".join(cells),
    ]
    lines.append(
        "crop probe, the same rows: "
        + "; ".join(f"{k.replace('~', ' vs ')} {_f(v, 2)}" for k, v in cp.items())
    )
    return "\n".join(lines)


def arch_table(rec: dict[str, Any], heads: dict[str, dict[str, Any]]) -> str:
    """The from-scratch architecture runs (``results/arch_ft.json``) beside the frozen-backbone heads' figures on the
    same held-out images (`heads`: dataset -> its ``results/<dataset>.json``)."""
    lines = [
        "| model | data | trained | input | params | steps x batch | held-out metric | AP50 | final loss "
        "| train s | heads on frozen backbones (same steps): pretrained / random init |",
        "|" + "---|" * 11,
    ]
    for r in rec.values():
        ds, det = r["dataset"], r.get("map") is not None
        gt = (heads.get(ds) or {}).get("gt") or {}
        name = "map" if det else "miou"
        pre = [g[name] for k, g in gt.items() if not k.startswith("random:")]
        rnd = [g[name] for k, g in gt.items() if k.startswith("random:")]
        span = " / ".join(f"{_f(min(v))}–{_f(max(v))}" if v else "—" for v in (pre, rnd))
        st = r["train_settings"]
        w, h = r["input_size_wh"]
        lines.append(
            f"| {r['model_id']} | {ds} | from random init, every parameter | {w}x{h} | {r['n_params'] / 1e6:.1f} M "
            f"| {st['steps']} x {st['batch']} | {'mAP' if det else 'mIoU'} {_f(r.get(name))} "
            f"| {_f(r.get('map50')) if det else '—'} | {_f(r.get('final_loss'))} | {r['seconds_train']:.0f} | {span} |"
        )
    return "\n".join(lines)


def render(out: Path) -> str:
    """The tables of every ``results/<dataset>.json`` as markdown; also writes tables.md and correlations.json."""
    parts = []
    corr: dict[str, Any] = {}
    for name in ("bccd", "membrane"):
        p = out / "results" / f"{name}.json"
        if not p.exists():
            continue
        rec = json.loads(p.read_text())
        c = correlations(rec)
        corr[name] = {"proxy": c} | {
            k: correlations(rec, k) for k in rec if k.startswith("proxy") and k != "proxy"
        }
        parts += [f"### {name} ({rec['task']})", "", table(rec), "", corr_table(c), "", floor_check(rec), ""]
        for pkey in [k for k in rec if k.startswith("proxy") and k != "proxy"]:
            st = next(iter(rec[pkey].values()), {}).get("settings")
            vals = ", ".join(f"{k} {_f(p['value'])}" for k, p in rec[pkey].items())
            ca = correlations(rec, pkey)
            parts += [f"#### {name}: proxies under `{pkey}` (settings {st})", "", vals, "", corr_table(ca), "",
                      floor_check(rec, pkey), ""]  # fmt: skip
    roi = out / "roi_probe_bccd.json"
    if roi.exists():
        parts += ["### bccd: ROI probe (`roi_probe_bccd.py`)", "", roi_table(json.loads(roi.read_text())), ""]
    arch = out / "results" / "arch_ft.json"
    if arch.exists():
        heads = {n: json.loads((out / "results" / f"{n}.json").read_text()) for n in ("bccd", "membrane")
                 if (out / "results" / f"{n}.json").exists()}  # fmt: skip
        parts += ["### Architecture rows trained from scratch (`arch_ft.py`)", "",
                  arch_table(json.loads(arch.read_text()), heads), ""]  # fmt: skip
    text = "\n".join(parts)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / "tables.md").write_text(text)
    (out / "results" / "correlations.json").write_text(json.dumps(corr, indent=1))
    return text
