"""GPU fine-tuning check, one call: bf16 autocast vs fp32 speed, head / last-2 / all cost, peak memory, and the
OOM -> halve micro-batch -> accumulate path under a capped memory fraction. Writes $OUT/gpu_finetune.{json,md}.

Usage (on the device machine, from the repo root; needs torch with CUDA, torchvision optional, no network):
    PYTHONPATH=. python benchmarks/gpu_finetune.py [--out "$OUT"] [--quick]

It uses a randomly initialised ResNet-50 (torchvision, else a small CNN) on synthetic class-coloured images fed
through `advisor.finetune.loop.train`, so it needs neither downloaded weights nor the data/models layers.
Accuracy figures only show that learning happens; the timings and memory are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.finetune.config import FinetuneConfig  # noqa: E402
from advisor.finetune.loop import Split, TrainTask, train  # noqa: E402


def make_backbone(seed: int = 0):
    torch.manual_seed(seed)
    try:
        import torchvision

        m = torchvision.models.resnet50(weights=None)
        m.fc = nn.Identity()
        blocks = [b for layer in (m.layer1, m.layer2, m.layer3, m.layer4) for b in layer]
        return m, 2048, blocks, "torchvision resnet50 (random init)"
    except Exception:
        convs = [
            nn.Sequential(nn.Conv2d(ci, co, 3, 2, 1), nn.BatchNorm2d(co), nn.ReLU())
            for ci, co in ((3, 64), (64, 128), (128, 256), (256, 512))
        ]
        m = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return m, 512, convs, "4-layer CNN (random init)"


def synthetic(n_per_class: int, n_classes: int, size: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    colours = rng.uniform(-1, 1, size=(n_classes, 3, 1, 1)).astype(np.float32)
    items, labels = [], []
    for c in range(n_classes):
        for _ in range(n_per_class):
            items.append((colours[c] + 0.8 * rng.normal(size=(3, size, size))).astype(np.float32))
            labels.append(c)
    return items, np.array(labels)


def make_task(n_train_pc: int, n_val_pc: int, size: int, n_classes: int = 10) -> tuple[TrainTask, str]:
    bb, dim, blocks, name = make_backbone()
    xtr, ytr = synthetic(n_train_pc, n_classes, size, 1)
    xva, yva = synthetic(n_val_pc, n_classes, size, 2)
    task = TrainTask(
        backbone=bb,
        feature_dim=dim,
        blocks=blocks,
        classes=[f"c{i}" for i in range(n_classes)],
        load=lambda x: x,
        preprocess=lambda items: (torch.from_numpy(np.stack(items)),),
        train=Split(xtr, ytr, [f"t{i}" for i in range(len(ytr))]),
        val=Split(xva, yva, [f"v{i}" for i in range(len(yva))]),
        augment=None,
    )
    return task, name


def one_run(
    label: str,
    *,
    unfreeze: str,
    precision: str,
    batch: int,
    epochs: int,
    n_train_pc: int,
    n_val_pc: int,
    size: int,
) -> dict:
    task, name = make_task(n_train_pc, n_val_pc, size)
    cfg = FinetuneConfig(
        unfreeze=unfreeze,
        epochs=epochs,
        batch_size=batch,
        lr=1e-3,
        precision=precision,
        patience=0,
        device="cuda",
        seed=0,
    )
    events: list[dict] = []
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = train(
        task, cfg, device="cuda", callback=lambda e: events.append(e) if e["event"] == "oom" else None
    )
    torch.cuda.synchronize()
    rec = {
        "label": label,
        "backbone": name,
        "unfreeze": unfreeze,
        "precision": out.precision,
        "batch_size": batch,
        "input_size": size,
        "n_train": len(task.train.items),
        "n_val": len(task.val.items),
        "epochs": len(out.history),
        "seconds_per_epoch": [round(h.seconds, 3) for h in out.history],
        "steady_seconds_per_epoch": float(
            np.median([h.seconds for h in out.history[1:]] or [out.history[0].seconds])
        ),
        "images_per_second": len(task.train.items)
        / float(np.median([h.seconds for h in out.history[1:]] or [out.history[0].seconds])),
        "total_seconds": time.perf_counter() - t0,
        "peak_memory_mb": out.peak_memory_mb,
        "micro_batch": out.micro_batch_size,
        "accumulation_steps": out.grad_accum_steps,
        "oom_events": [e["micro_batch"] for e in events],
        "best_val_accuracy": out.best_val_accuracy,
        "train_loss": [round(h.train_loss, 4) for h in out.history],
    }
    print(json.dumps(rec), flush=True)
    del task, out
    torch.cuda.empty_cache()
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")))
    ap.add_argument("--quick", action="store_true", help="smaller data (for a first try)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    n_tr, n_va, size, epochs = (20, 5, 160, 2) if args.quick else (64, 16, 224, 3)
    common = dict(n_train_pc=n_tr, n_val_pc=n_va, size=size, epochs=epochs)
    runs, errors = [], []
    plan = [
        ("all fp32", dict(unfreeze="all", precision="fp32", batch=64)),
        ("all bf16", dict(unfreeze="all", precision="bf16", batch=64)),
        ("last-2 bf16", dict(unfreeze="last-2", precision="bf16", batch=64)),
        ("head bf16", dict(unfreeze="head", precision="bf16", batch=64)),
    ]
    for label, kw in plan:
        try:
            runs.append(one_run(label, **kw, **common))
        except Exception:
            errors.append({"label": label, "error": traceback.format_exc()[-2000:]})
    # OOM path: cap this process to ~3 GiB so a batch of 256 at 224 px cannot fit, and check it recovers.
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.set_per_process_memory_fraction(min(1.0, 3 * 2**30 / total))
        runs.append(
            one_run(
                "all bf16 OOM-capped 3GiB",
                unfreeze="all",
                precision="bf16",
                batch=256,
                n_train_pc=52,
                n_val_pc=4,
                size=224,
                epochs=1,
            )
        )
    except Exception:
        errors.append({"label": "oom", "error": traceback.format_exc()[-2000:]})
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)

    props = torch.cuda.get_device_properties(0)
    rec = {
        "benchmark": "gpu_finetune",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": props.name,
        "gpu_memory_gb": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "runs": runs,
        "errors": errors,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_finetune.json").write_text(json.dumps(rec, indent=2) + "\n")
    lines = [
        f"# GPU fine-tuning check on {props.name} (torch {torch.__version__}, CUDA {torch.version.cuda})",
        "",
        "| run | backbone | train imgs/s | s/epoch (median after 1st) | peak mem (MB) | micro-batch x accum | "
        "OOM halvings | best val acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | {r['backbone']} | {r['images_per_second']:.0f} | "
            f"{r['steady_seconds_per_epoch']:.2f} | {r['peak_memory_mb']:.0f} | {r['micro_batch']} x "
            f"{r['accumulation_steps']} | {r['oom_events']} | {r['best_val_accuracy']:.2f} |"
        )
    for e in errors:
        lines.append(f"\nERROR in {e['label']}:\n```\n{e['error']}\n```")
    (args.out / "gpu_finetune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
