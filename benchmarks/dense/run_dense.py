"""Dense benchmark: do the product's frozen-feature proxies rank backbones as a short fine-tune does?

For BCCD (VOC detection, 3 classes) and the membrane masks (binary segmentation) it records, per backbone
(``pkg:efficientnet_lite0/1/2`` pretrained and their random-init twins) and for the raw-pixel floor:

1. the proxy as the product computes it (``advisor.dense.proxies.crop_probe`` / ``pixel_probe`` with the settings
   of ``advisor.dense.proxy_cache``) on the train images;
2. the ground truth: a short fine-tune of a light head on the frozen backbone (``dense_ft``), evaluated on held-out
   images (BCCD test split: COCO mAP / AP50; membrane held-out images: mIoU);
3. the backbone latency at the working size (``advisor.dense.backbone_latency.measure_backbone_latency``);
4. rank correlations between proxy and ground truth (in ``render.py``).

    python benchmarks/dense/run_dense.py                       # full run, writes results/*.json + RESULTS.md
    python benchmarks/dense/run_dense.py --smoke --out /tmp/dense-smoke
    python benchmarks/dense/run_dense.py --render              # RESULTS tables from results/*.json only

Assets are read from ``--assets`` (default ``<repo>/../shared/assets``); when they are absent it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import dense_ft as D  # noqa: E402

BACKBONES = ("pkg:efficientnet_lite0", "pkg:efficientnet_lite1", "pkg:efficientnet_lite2")
BCCD_REL = "detection/bccd/BCCD"
MEMBRANE_REL = "segmentation/membrane/data/membrane/train"
DET_SIZE = (
    320,
    416,
)  # (H, W) BCCD fine-tune working size (640x480 scaled to longer side 416, multiples of 32)
SEG_SIZE = (512, 512)  # membrane: the images' own size
LAT_SIZES = {"bccd": (640, 480), "membrane": (512, 512)}  # (W, H) latency working sizes
SEED = 0
MEMBRANE_TRAIN = 20

log = logging.getLogger("bench.dense")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"loadavg {os.getloadavg()}"


def versions() -> dict[str, str]:
    from importlib import metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in (
        "advisor",
        "torch",
        "torchvision",
        "timm",
        "numpy",
        "scipy",
        "scikit-learn",
        "faster-coco-eval",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------ data
def load_bccd(assets: Path, smoke: bool) -> tuple[Any, Any, Any]:
    """(train, test, full) BCCD datasets (VOC ImageSets splits; val unused)."""
    from advisor.dense.readers import load_dense

    ds = load_dense(assets / BCCD_REL)
    train = [s for s in ds.samples if s.split == "train"]
    test = [s for s in ds.samples if s.split == "test"]
    if smoke:
        train, test = train[:16], test[:6]
    return replace(ds, samples=train), replace(ds, samples=test), ds


def load_membrane(assets: Path, smoke: bool) -> tuple[Any, Any, Any]:
    """(train, test, full): a seeded permutation of the 30 images, 20 train / 10 held out."""
    from advisor.dense.readers import load_dense

    ds = load_dense(assets / MEMBRANE_REL, task="segmentation")
    order = np.random.default_rng(SEED).permutation(len(ds.samples))
    n_train = 6 if smoke else MEMBRANE_TRAIN
    n_test = 4 if smoke else len(order) - n_train
    train = [ds.samples[i] for i in sorted(order[:n_train])]
    test = [ds.samples[i] for i in sorted(order[n_train : n_train + n_test])]
    return replace(ds, samples=train), replace(ds, samples=test), ds


# ------------------------------------------------------------------------------------------------ measurements
def run_proxy(task: str, model_id: str, pretrained: bool, train: Any) -> dict[str, Any]:
    """The product's proxy with the product's current settings (``advisor.dense.proxy_cache.proxy_settings``)."""
    from advisor.dense.proxies import crop_probe, pixel_probe
    from advisor.dense.proxy_cache import proxy_settings

    st = dict(proxy_settings(task))
    kw = {k: v for k, v in st.items() if k != "kind"}
    fn = crop_probe if task == "detection" else pixel_probe
    d = fn(model_id, train, seed=SEED, pretrained=pretrained, **kw).to_dict()
    for k in ("oof_ids", "oof_y", "oof_pred"):  # per-crop arrays: large, not needed here
        d.pop(k, None)
    return d | {"settings": st}


def run_gt(task: str, model_id: str, pretrained: bool, train: Any, test: Any, cfg: D.TrainSettings) -> dict:
    """Cache the frozen backbone's maps, train the head, evaluate on `test`."""
    from advisor.dense.backbones import dense_backbone, load_backbone

    t0 = time.perf_counter()
    bb = dense_backbone(load_backbone(model_id, pretrained=pretrained))
    size = DET_SIZE if task == "detection" else SEG_SIZE
    tr_maps = D.cache_maps(bb, train.samples, size)
    te_maps = D.cache_maps(bb, test.samples, size)
    t_feat = time.perf_counter() - t0
    if task == "detection":
        from advisor.metrics.detection import detection_metrics

        parts, info = D.train_detector(
            tr_maps, D.det_targets(train.samples, size), train.num_classes, size, cfg
        )
        t1 = time.perf_counter()
        preds = D.predict_detector(parts, te_maps, test.samples, size)
        m = detection_metrics(test, preds).to_dict(curves=False)
        metric = {
            "map": m["map"],
            "map50": m["map50"],
            "map75": m["map75"],
            "per_class_ap": m["per_class_ap"],
        }
        metric["all"] = m
    else:
        tr_masks = [train.read_mask(s) for s in train.samples]
        te_masks = [test.read_mask(s) for s in test.samples]
        dec, info = D.train_segmenter(tr_maps, tr_masks, train.num_classes, train.ignore_index, cfg)
        t1 = time.perf_counter()
        m = D.eval_segmenter(dec, te_maps, te_masks, test)
        metric = {"miou": m["miou"], "per_class_iou": m.get("per_class_iou"), "all": m}
    return metric | {
        "taps": [[t.module, t.stride, t.channels] for t in bb.taps],
        "work_size_hw": list(size),
        "seconds_features": t_feat,
        "seconds_train": info["seconds"],
        "seconds_eval": time.perf_counter() - t1,
        "final_loss": info["final_loss"],
        "train_images": len(train.samples),
        "test_images": len(test.samples),
    }


def run_latency(model_id: str, size: tuple[int, int], repeats: int) -> dict[str, Any]:
    from advisor.dense.backbone_latency import measure_backbone_latency

    return measure_backbone_latency(model_id, size, repeats=repeats)


# ------------------------------------------------------------------------------------------------ driver
def key(model_id: str, pretrained: bool | None) -> str:
    return model_id if pretrained is not False else f"random:{model_id}"


def run_dataset(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from advisor.dense.proxies import RAW_PIXELS

    path = out / "results" / f"{name}.json"
    rec: dict[str, Any] = json.loads(path.read_text()) if args.resume and path.exists() else {}
    loader = load_bccd if name == "bccd" else load_membrane
    train, test, _full = loader(args.assets, args.smoke)
    task = train.task
    steps = args.det_steps if task == "detection" else args.seg_steps
    cfg = D.TrainSettings(steps=steps, batch=args.batch, lr=args.lr, seed=SEED)
    rec |= {
        "dataset": name,
        "task": task,
        "classes": list(train.classes),
        "train_images": [s.id for s in train.samples],
        "test_images": [s.id for s in test.samples],
        "train_settings": cfg.to_dict(),
    }
    pkey = args.proxy_key
    rec.setdefault(pkey, {})
    rec.setdefault("gt", {})
    rec.setdefault("latency", {})
    models = BACKBONES[:1] if args.smoke else BACKBONES
    entries = [(m, p) for m in models for p in (True, False)]
    for m, p in [*entries, (RAW_PIXELS, None)]:
        k = key(m, p)
        if k not in rec[pkey]:
            log.info("%s proxy %s", name, k)
            rec[pkey][k] = run_proxy(task, m, p is not False, train) | {"load_after": os.getloadavg()[0]}
            save(path, rec)
    if args.proxies_only:
        return rec
    for m, p in entries:
        k = key(m, p)
        if k not in rec["gt"]:
            log.info("%s fine-tune %s", name, k)
            rec["gt"][k] = run_gt(task, m, p, train, test, cfg) | {"load_after": os.getloadavg()[0]}
            log.info("%s %s -> %s", name, k, {a: rec["gt"][k].get(a) for a in ("map", "map50", "miou")})
            save(path, rec)
    for m in models:
        if m not in rec["latency"]:
            log.info("%s latency %s", name, m)
            rec["latency"][m] = run_latency(m, LAT_SIZES[name], args.lat_repeats)
            save(path, rec)
    return rec


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--datasets", nargs="+", default=["bccd", "membrane"], choices=["bccd", "membrane"])
    ap.add_argument("--det-steps", type=int, default=250)
    ap.add_argument("--seg-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lat-repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--smoke", action="store_true", help="1 backbone, few images and steps (writes to --out)")
    ap.add_argument("--resume", action="store_true", help="keep entries already in results/*.json")
    ap.add_argument("--proxies-only", action="store_true", help="measure only the proxies")
    ap.add_argument(
        "--proxy-key", default="proxy", help="JSON key the proxies are stored under (with --resume)"
    )
    ap.add_argument("--render", action="store_true", help="only re-render the tables from results/*.json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.det_steps, args.seg_steps, args.lat_repeats = min(args.det_steps, 5), min(args.seg_steps, 5), 3
    return args


def main(argv: list[str] | None = None) -> int:
    import render

    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.render:
        print(render.render(args.out))
        return 0
    missing = [r for r in (BCCD_REL, MEMBRANE_REL) if not (args.assets / r).exists()]
    if missing:
        print(f"dense benchmark: assets not found under {args.assets} ({', '.join(missing)}); nothing to do.")
        print("pass --assets PATH (the shared assets folder with detection/bccd and segmentation/membrane).")
        return 0
    import torch

    from advisor.bench.hardware import hardware_fingerprint

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uptime_before": uptime(),
        "hardware": hardware_fingerprint(),
        "versions": versions(),
        "argv": sys.argv[1:],
        "torch_threads": torch.get_num_threads(),
    }
    tag = "_".join(args.datasets) + (f"_{args.proxy_key}" if args.proxies_only else "")
    meta_path = args.out / "results" / f"run_{tag}.json"
    save(meta_path, meta)
    for name in args.datasets:
        run_dataset(name, args, args.out)
    meta |= {"uptime_after": uptime(), "wall_seconds": time.perf_counter() - t0}
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(meta_path, meta)
    print(render.render(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
