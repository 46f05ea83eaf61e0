"""ROI probe on BCCD: the product's ROI probe (`advisor.dense.roi_probe`) for each packaged backbone, its random-init
twin and the raw-pixel floor, with the crop probe and the short fine-tune ground truth of ``results/bccd.json``
beside it.

It records, per row: the ROI probe's value (class LogME + box-delta LogME), both LogME terms, the class probe's
out-of-fold accuracy, the out-of-fold ridge R² of the box deltas (mean and per delta) and the seconds; then the
Spearman correlation of each figure with the fine-tune COCO mAP / AP50 of ``results/bccd.json`` (the ground truth
`run_dense.py` recorded; the raw floor has none), and the machine's load, hardware and library versions.

    python benchmarks/dense/roi_probe_bccd.py                     # writes benchmarks/dense/roi_probe_bccd.json
    python benchmarks/dense/roi_probe_bccd.py --threads 1 --smoke  # 1 backbone, 16 images

Settings are the product's (``advisor.dense.proxy_cache.roi_settings``) on the BCCD train split (VOC ImageSets), as
`run_dense.py` uses for the crop probe. Assets are read from ``--assets`` (default ``<repo>/../shared/assets``);
when they are absent it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BCCD_REL = "detection/bccd/BCCD"
BACKBONES = ("pkg:efficientnet_lite0", "pkg:efficientnet_lite1", "pkg:efficientnet_lite2")
SEED = 0
FIGURES = ("value", "logme_cls", "logme_box", "accuracy", "box_r2")

log = logging.getLogger("bench.roi")

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def key(model_id: str, pretrained: bool | None) -> str:
    """The row key of `run_dense.py` (``random:<id>`` for a twin)."""
    return model_id if pretrained is not False else f"random:{model_id}"


def run_one(model_id: str, pretrained: bool, train: Any) -> dict[str, Any]:
    """The ROI probe of one row with the product's settings, without its per-ROI arrays."""
    from advisor.dense.proxy_cache import roi_settings
    from advisor.dense.roi_probe import roi_probe

    st = roi_settings()
    kw = {k: st[k] for k in ("max_images", "max_rois", "grid", "jitter", "background")}
    t0 = time.perf_counter()
    r = roi_probe(model_id, train, seed=SEED, pretrained=pretrained, **kw)
    box = r.probe.get("box") or {}
    return {
        "value": r.value,
        "logme_cls": r.scores.get("logme"),
        "logme_box": r.scores.get("logme_box"),
        "accuracy": r.accuracy,
        "accuracy_ci": r.probe.get("accuracy_ci"),
        "box_r2": r.box_r2,
        "box_r2_per_target": box.get("r2_per_target"),
        "ridge_alpha": box.get("ridge_alpha"),
        "n_rois": r.n_items,
        "n_foreground": box.get("n_foreground"),
        "rois": r.probe.get("rois"),
        "levels": r.probe.get("levels"),
        "n_images": r.n_groups,
        "per_class": r.per_class,
        "seconds": time.perf_counter() - t0,
        "measured": r.measured,
        "settings": st,
        "load_after": os.getloadavg()[0],
    }


def correlations(rows: dict[str, dict[str, Any]], gt: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Spearman rho of each ROI figure (and the crop probe's value, when given) with the fine-tune mAP / AP50."""
    from scipy.stats import spearmanr

    keys = [k for k in rows if k in gt and gt[k].get("map50") is not None]
    out: dict[str, Any] = {"rows": keys}
    if len(keys) < 3:
        return out | {"note": "fewer than 3 rows with a fine-tune figure"}
    for metric in ("map", "map50"):
        truth = [float(gt[k][metric]) for k in keys]
        for fig in FIGURES:
            vals = [rows[k].get(fig) for k in keys]
            if all(v is not None for v in vals):
                out[f"{fig}~{metric}"] = float(spearmanr(vals, truth).statistic)
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    ap.add_argument("--out", type=Path, default=HERE / "roi_probe_bccd.json")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--smoke", action="store_true", help="1 backbone, 16 train images")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = args.assets / BCCD_REL
    if not root.exists():
        print(f"ROI-probe benchmark: BCCD not found at {root}; nothing to do (pass --assets PATH).")
        return 0
    import torch
    from run_dense import save, uptime, versions

    from advisor.bench.hardware import hardware_fingerprint
    from advisor.dense.proxies import RAW_PIXELS
    from advisor.dense.readers import load_dense

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dense(root)
    train = [s for s in ds.samples if s.split == "train"]
    train = train[:16] if args.smoke else train
    sub = replace(ds, samples=train)
    rec: dict[str, Any] = {
        "what": __doc__.splitlines()[0],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uptime_before": uptime(),
        "hardware": hardware_fingerprint(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv[1:],
        "dataset": {"path": BCCD_REL, "split": "train", "images": len(train), "classes": list(ds.classes)},
        "rows": {},
    }
    t0 = time.perf_counter()
    models = BACKBONES[:1] if args.smoke else BACKBONES
    for m, p in [*((m, p) for m in models for p in (True, False)), (RAW_PIXELS, None)]:
        k = key(m, p)
        log.info("ROI probe %s", k)
        rec["rows"][k] = run_one(m, p is not False, sub)
        log.info("%s -> %s", k, {f: rec["rows"][k][f] for f in (*FIGURES, "seconds")})
        save(args.out, rec)
    prev = HERE / "results" / "bccd.json"
    if prev.exists():
        old = json.loads(prev.read_text())
        crop = {k: {"value": v.get("value")} for k, v in (old.get("proxy") or {}).items()}
        rec["crop_probe"] = {k: v["value"] for k, v in crop.items()}
        rec["finetune_gt"] = {
            k: {m: v.get(m) for m in ("map", "map50")} for k, v in (old.get("gt") or {}).items()
        }
        rec["spearman"] = correlations(rec["rows"], old.get("gt") or {})
        rec["spearman_crop_probe"] = correlations(crop, old.get("gt") or {})
    rec |= {"uptime_after": uptime(), "wall_seconds": time.perf_counter() - t0}
    rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(args.out, rec)
    print(json.dumps({k: {f: v[f] for f in (*FIGURES, "seconds")} for k, v in rec["rows"].items()}, indent=1))
    print(json.dumps(rec.get("spearman"), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
