"""The small dense architectures trained from random init on CPU: SSDlite320 on BCCD, U-Net-R34 on membrane.

The issue's CPU ground truth for the architecture rows: `advisor recommend --task detection|segmentation` lists
``torchvision:ssdlite320_mobilenet_v3_large`` and ``smp:Unet-resnet34`` as *architecture* rows (their pretrained
weights need the network; offline they are timed with random weights). This script answers what such a row is
worth here: the same architecture, built by the product's loader (``load_dense_model(..., pretrained=False)``:
random init, the product's pre/post-processing), class layers for the data's classes (SSDlite: the product's
``adapt_head``), then **every** parameter trained (BatchNorm in train mode), on the same images, split, step count,
batch, optimiser and seed as the frozen-backbone heads of ``run_dense.py`` (one difference: U-Net trains at 256x256,
``--seg-size``, where the heads saw 512x512 maps, because a 512x512 U-Net-R34 step takes ~4x as long on 2 CPU cores;
its predictions are resized back to 512x512 for scoring) — so its held-out figure stands beside
theirs in ``RESULTS.md`` (the question a user asks: train this small model from scratch, or put a head on a
pretrained backbone?).

Evaluation as in ``run_dense.py``: BCCD test split (72 images), COCO mAP / AP50 by faster-coco-eval; membrane's 10
held-out images, mIoU from one confusion matrix. Random weights, one seed, a short run: not a converged model.

Run: ``python benchmarks/dense/arch_ft.py [--assets PATH] [--models ssdlite unet] [--threads 1]``; ``--smoke``
(few images, 3 steps) for a quick check, written under ``--out``. Without the assets it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run_dense as R  # noqa: E402

from advisor.dense.finetune_torchvision import _det_step  # noqa: E402
from advisor.dense.zero_shot import _images  # noqa: E402

log = logging.getLogger("bench.dense.arch")
MODELS = {
    "ssdlite": ("torchvision:ssdlite320_mobilenet_v3_large", "bccd"),
    "unet": ("smp:Unet-resnet34", "membrane"),
}


def _seg_batch(
    model: Any, ds: Any, samples: list[Any], images: list[Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    from advisor.dense.finetune_heads import resize_mask
    from advisor.dense.models_smp import IMAGENET_MEAN, IMAGENET_STD

    w, h = model.input_size
    xs, ys = [], []
    for s, im in zip(samples, images, strict=True):
        arr = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        xs.append(torch.from_numpy((arr - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1).float())
        ys.append(torch.from_numpy(resize_mask(ds.read_mask(s), (h, w))))
    return torch.stack(xs), torch.stack(ys)


def train_from_scratch(model: Any, train: Any, cfg: Any) -> dict[str, Any]:
    """`cfg.steps` AdamW steps over every parameter, each on `cfg.batch` images drawn without replacement
    (independently per step, seeded as `run_dense`'s heads draw them)."""
    import torch.nn.functional as F

    net = model.net
    for p in net.parameters():
        p.requires_grad_(True)
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    images = _images(train.samples) if train.task != "detection" else []  # the detection step decodes its own
    ignore = -100 if train.ignore_index is None else int(train.ignore_index)
    losses: list[float] = []
    t0 = time.perf_counter()
    net.train()
    for step in range(cfg.steps):
        idx = rng.choice(len(train.samples), size=min(cfg.batch, len(train.samples)), replace=False)
        batch = [train.samples[i] for i in idx]
        if train.task == "detection":  # the product's step: images in [0, 1], labels shifted past background
            loss = _det_step(model, train, batch)
        else:
            x, y = _seg_batch(model, train, batch, [images[i] for i in idx])
            loss = F.cross_entropy(net(x), y, ignore_index=ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        losses.append(loss.item())
        if step % 25 == 0:
            log.info("step %d/%d loss %.3f (%.0f s)", step, cfg.steps, losses[-1], time.perf_counter() - t0)
    net.eval()
    return {
        "seconds_train": time.perf_counter() - t0,
        "final_loss": float(np.mean(losses[-20:])),
        "losses": losses,
    }


def evaluate(model: Any, test: Any) -> dict[str, Any]:
    """Held-out metrics through the product's ``predict`` (its pre/post-processing)."""
    images = _images(test.samples)
    with torch.inference_mode():
        preds = model.predict(images)
    if test.task == "detection":
        from advisor.metrics.detection import detection_metrics

        class_map: dict[int, int | None] = {k + 1: k for k in range(test.num_classes)} | {0: None}
        m = detection_metrics(
            test, dict(zip((s.id for s in test.samples), preds, strict=True)), class_map=class_map
        )
        d = m.to_dict(curves=False)
        return {"map": d["map"], "map50": d["map50"], "map75": d["map75"], "per_class_ap": d["per_class_ap"]}
    from advisor.metrics.segmentation import SegmentationConfusion

    conf = SegmentationConfusion(test.num_classes, test.ignore_index, list(test.classes))
    for pred, s in zip(preds, test.samples, strict=True):
        conf.update(pred, test.read_mask(s))
    r = conf.result().to_dict()
    return {"miou": r["miou"], "per_class_iou": r.get("per_class_iou"), "matrix": conf.matrix.tolist()}


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from advisor.dense.models import load_dense_model

    model_id, dataset = MODELS[name]
    loader = R.load_bccd if dataset == "bccd" else R.load_membrane
    train, test, _full = loader(args.assets, args.smoke)
    steps = args.det_steps if train.task == "detection" else args.seg_steps
    cfg = R.D.TrainSettings(steps=steps, batch=args.batch, lr=args.lr, seed=R.SEED)
    if train.task == "detection":
        from advisor.dense.finetune_torchvision import adapt_head

        model: Any = load_dense_model(model_id, pretrained=False)
        head = adapt_head(model, list(train.classes))  # new class layers; every parameter is trained below
    else:
        size = (args.seg_size, args.seg_size)
        model = load_dense_model(model_id, pretrained=False, input_size=size)
        head = {"replaced": "none (built with the data's 2 classes)"}
    n_params = int(sum(p.numel() for p in model.net.parameters()))
    log.info("%s on %s: %d params, %d steps", model_id, dataset, n_params, steps)
    info = train_from_scratch(model, train, cfg)
    t1 = time.perf_counter()
    metric = evaluate(model, test)
    log.info("%s -> %s", model_id, {k: metric.get(k) for k in ("map", "map50", "miou")})
    return {
        "model_id": model_id,
        "dataset": dataset,
        "init": "random (pretrained weights need the network)",
        "trained": "every parameter (BatchNorm in train mode)",
        "head": head,
        "n_params": n_params,
        "input_size_wh": list(model.input_size),
        "train_settings": cfg.to_dict(),
        "train_images": len(train.samples),
        "test_images": len(test.samples),
        "seconds_eval": time.perf_counter() - t1,
        "load_after": os.getloadavg()[0],
        **metric,
        **info,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=Path, default=R.REPO.parent / "shared" / "assets")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--det-steps", type=int, default=250)
    ap.add_argument("--seg-steps", type=int, default=300)
    ap.add_argument(
        "--seg-size",
        type=int,
        default=256,
        help="U-Net working size (the heads' 512 costs ~4x on 2 CPU cores)",
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.det_steps, args.seg_steps = 3, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    missing = [r for r in (R.BCCD_REL, R.MEMBRANE_REL) if not (args.assets / r).exists()]
    if missing:
        print(f"arch_ft: assets not found under {args.assets} ({', '.join(missing)}); nothing to do.")
        return 0
    from advisor.bench.hardware import hardware_fingerprint

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.out / "results" / "arch_ft.json"
    rec: dict[str, Any] = json.loads(path.read_text()) if path.exists() and not args.smoke else {}
    for name in args.models:
        meta = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "uptime_before": R.uptime(),
            "hardware": hardware_fingerprint(),
            "versions": R.versions(),
            "torch_threads": torch.get_num_threads(),
            "argv": sys.argv[1:],
        }
        t0 = time.perf_counter()
        rec[name] = run_one(name, args) | {"meta": meta | {"wall_seconds": time.perf_counter() - t0}}
        rec[name]["meta"]["uptime_after"] = R.uptime()
        R.save(path, rec)
    print(
        json.dumps({k: {m: v.get(m) for m in ("model_id", "map", "map50", "miou")} for k, v in rec.items()})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
