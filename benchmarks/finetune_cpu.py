"""CPU fine-tuning benchmark: EfficientNet-Lite0 (packaged weights) on a Fashion-MNIST subset, head-only vs
last-2 blocks, against a linear probe on frozen features; writes benchmarks/results/finetune_cpu_*.{json,md}.

Usage:
    python benchmarks/finetune_cpu.py [--train-per-class 50] [--val-per-class 10] [--test-per-class 30] \
        [--model pkg:efficientnet_lite0] [--runs head:5:noaug last-2:3:aug]

Each run is UNFREEZE:EPOCHS:aug|noaug. Head-only without augmentation takes the cached-features path (each
image through the backbone once); with augmentation every epoch pays a full forward pass.

The data are /work/shared/assets/data/fashion_mnist_subset.npz (MIT), written as a split image folder
(train/ val/ test/) in a temp dir: fine-tuning trains on train/, selects its epoch on val/, and both it and
the probe are scored on test/ (held-out Fashion-MNIST test images, never used for any choice). Each
fine-tuning run is a separate `advisor finetune --format json` process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ADVISOR_ASSETS", REPO.parent / "shared" / "assets"))
NPZ = ASSETS / "data" / "fashion_mnist_subset.npz"


def _pick(
    y: np.ndarray, per_class: int, rng: np.random.Generator, exclude: set[int] | None = None
) -> list[int]:
    out: list[int] = []
    for c in np.unique(y):
        idx = [i for i in np.flatnonzero(y == c) if not exclude or i not in exclude]
        out += sorted(rng.choice(idx, size=per_class, replace=False).tolist())
    return out


def write_image_folder(root: Path, train_pc: int, val_pc: int, test_pc: int, seed: int = 0) -> dict:
    """Write train/val/test class folders of 28x28 PNGs; returns counts."""
    from PIL import Image

    d = np.load(NPZ)
    names = [str(n).replace("/", "_").replace(" ", "_").lower() for n in d["class_names"]]
    rng = np.random.default_rng(seed)
    tr = _pick(d["y_train"], train_pc, rng)
    va = _pick(d["y_train"], val_pc, rng, exclude=set(tr))
    te = _pick(d["y_test"], test_pc, rng)
    for split, x, y, idx in (
        ("train", d["x_train"], d["y_train"], tr),
        ("val", d["x_train"], d["y_train"], va),
        ("test", d["x_test"], d["y_test"], te),
    ):
        for i in idx:
            p = root / split / names[int(y[i])] / f"{split}-{i:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(p)
    return {"train": len(tr), "val": len(va), "test": len(te), "classes": names}


def _features(model, samples, batch_size: int = 50) -> np.ndarray:
    import torch

    from advisor.data import load_image

    feats = []
    with torch.inference_mode():
        for s in range(0, len(samples), batch_size):
            batch = model.preprocess([load_image(x) for x in samples[s : s + batch_size]])
            feats.append(model.module(*batch).float().cpu().numpy())
    return np.concatenate(feats)


def linear_probe(ds, model_id: str, seed: int) -> dict:
    """StandardScaler + LogisticRegression (C by 5-fold CV on train) on frozen pooled features; scored on test."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from advisor.finetune.loop import wilson_interval
    from advisor.models import load_model

    t0 = time.perf_counter()
    model = load_model(model_id, device="cpu")
    train = [s for s in ds.samples if s.split == "train"]
    test = [s for s in ds.samples if s.split == "test"]
    xtr, xte = _features(model, train), _features(model, test)
    t_feat = time.perf_counter() - t0
    ytr = np.array([ds.classes.index(s.label) for s in train])
    yte = np.array([ds.classes.index(s.label) for s in test])
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=5, max_iter=3000, random_state=seed),
    )
    clf.fit(xtr, ytr)
    correct = int((clf.predict(xte) == yte).sum())
    return {
        "test_accuracy": correct / len(yte),
        "test_accuracy_ci": list(wilson_interval(correct, len(yte))),
        "n_test": len(yte),
        "n_train": len(ytr),
        "feature_seconds": t_feat,
        "total_seconds": time.perf_counter() - t0,
        "C": float(clf[-1].C_[0]),
    }


def run_finetune(
    data: Path, model_id: str, unfreeze: str, epochs: int, augment: bool, out: Path, args
) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "advisor",
        "finetune",
        "--data",
        str(data),
        "--model",
        model_id,
        "--unfreeze",
        unfreeze,
        "--epochs",
        str(epochs),
        "--augment" if augment else "--no-augment",
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--format",
        "json",
        "--no-progress",
        "--patience",
        str(args.patience),
    ]
    if args.budget:
        cmd += ["--budget", str(args.budget)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "ADVISOR_CACHE_DIR": str(out.parent)}
    )
    if proc.returncode != 0:
        raise SystemExit(f"advisor finetune failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout)
    res["wall_seconds_process"] = time.perf_counter() - t0
    return res


def hardware() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def to_markdown(rec: dict) -> str:
    p = rec["probe"]
    lines = [
        f"# Fine-tuning on CPU: {rec['model_id']} on a Fashion-MNIST subset",
        "",
        f"Recorded {rec['date']} by `benchmarks/finetune_cpu.py` on {rec['hardware']['cpu']} "
        f"({rec['hardware']['cores']} cores, torch threads {rec['hardware']['torch_threads']}); "
        f"torch {rec['versions'].get('torch')}, timm {rec['versions'].get('timm')}.",
        "",
        f"Data: {rec['data']['train']} train / {rec['data']['val']} val (epoch selection) images from Fashion-MNIST "
        f"train, {rec['data']['test']} test images from Fashion-MNIST test; 28x28 grey, upscaled by the model's "
        "own preprocessing. Config: " + ", ".join(f"{k}={v}" for k, v in rec["args"].items()) + ".",
        "",
        "| method | test acc (%) | 95% CI (%) | val acc (%) | epochs run (best) | stopped | s/epoch (s) | "
        "total (s) | peak RSS (MB) | trainable params (M) | vs probe |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| linear probe (LogReg, C={p['C']:g}) | {p['test_accuracy'] * 100:.1f} | "
        f"{p['test_accuracy_ci'][0] * 100:.1f}-{p['test_accuracy_ci'][1] * 100:.1f} | - | - | - | - | "
        f"{p['total_seconds']:.0f} | - | - | - |",
    ]
    for r in rec["finetune"]:
        t = r["test"]
        lines.append(
            f"| fine-tune {r['unfreeze']} ({'augmented' if r['config']['augment'] else 'no augmentation'}) | "
            f"{t['accuracy'] * 100:.1f} | {t['accuracy_ci'][0] * 100:.1f}-"
            f"{t['accuracy_ci'][1] * 100:.1f} | {r['val_accuracy'] * 100:.1f} | {r['epochs_run']} ({r['best_epoch']}) | "
            f"{r['stopped_reason']} | {r['seconds_per_epoch']:.1f} | {r['total_seconds']:.0f} | "
            f"{r['peak_memory_mb']:.0f} | {r['trainable_params'] / 1e6:.2f} | {r['vs_probe']['verdict']} "
            f"({r['vs_probe']['gain_pp']:+.1f} pp) |"
        )
    if not rec.get("complete"):
        lines += ["", "**Incomplete record**: the runs listed are the ones that finished."]
    la0, la1 = rec.get("load_average_start"), rec.get("load_average_now")
    if la0 and la1:
        lines += [
            "",
            f"CPU load average (1/5/15 min) at start {la0[0]:.1f}/{la0[1]:.1f}/{la0[2]:.1f}, at the last write "
            f"{la1[0]:.1f}/{la1[1]:.1f}/{la1[2]:.1f}: other jobs shared the cores, so times are upper bounds.",
        ]
    lines += [
        "",
        "Head-only without augmentation runs the backbone once (during epoch 1) and then trains the head on "
        "cached features, so its s/epoch is the mean of one long epoch and near-instant ones. "
        "Test accuracy is measured on test images that no choice (C, epoch) saw. s/epoch includes "
        "validation. Peak RSS is the `advisor finetune` process's own (`ru_maxrss`).",
    ]
    return "\n".join(lines) + "\n"


def render(json_path: Path) -> None:
    """Re-render the markdown of a stored record (reports are pure functions of records)."""
    rec = json.loads(json_path.read_text())
    json_path.with_suffix(".md").write_text(to_markdown(rec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pkg:efficientnet_lite0")
    ap.add_argument(
        "--runs", nargs="+", default=["head:5:noaug", "last-2:3:aug"], help="UNFREEZE:EPOCHS:aug|noaug"
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--budget", type=float, default=None)
    ap.add_argument("--train-per-class", type=int, default=50)
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument("--test-per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--render", type=Path, default=None, help="only re-render the .md of this stored .json")
    args = ap.parse_args()
    if args.render:
        render(args.render)
        return
    if not NPZ.exists():
        raise SystemExit(f"{NPZ} not found (set ADVISOR_ASSETS)")

    from advisor.data import load_dataset
    from advisor.finetune import compare_with_probe, evaluate_finetuned
    from advisor.finetune.run import library_versions

    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "fashion"
        counts = write_image_folder(
            data, args.train_per_class, args.val_per_class, args.test_per_class, args.seed
        )
        ds = load_dataset(data, modality="image")
        print(f"data: {counts['train']} train / {counts['val']} val / {counts['test']} test", file=sys.stderr)
        rec = {
            "benchmark": "finetune_cpu",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_id": args.model,
            "args": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "results"
            },
            "data": {k: counts[k] for k in ("train", "val", "test")},
            "hardware": hardware(),
            "versions": library_versions(),
            "load_average_start": os.getloadavg(),
            "probe": None,
            "finetune": [],
            "complete": False,
        }

        def save() -> None:
            rec["load_average_now"] = os.getloadavg()
            args.results.mkdir(parents=True, exist_ok=True)
            stem = f"finetune_cpu_{args.model.replace(':', '_').replace('/', '_')}_{rec['hardware']['cores']}core"
            (args.results / f"{stem}.json").write_text(json.dumps(rec, indent=2) + "\n")
            if rec["probe"] is not None:
                (args.results / f"{stem}.md").write_text(to_markdown(rec))

        rec["probe"] = probe = linear_probe(ds, args.model, args.seed)
        save()
        print(
            f"probe: test acc {probe['test_accuracy']:.3f} ({probe['total_seconds']:.0f} s)", file=sys.stderr
        )
        for spec in args.runs:
            unfreeze, epochs, aug = spec.split(":")
            out = tmp / "runs" / spec.replace(":", "_")
            res = run_finetune(data, args.model, unfreeze, int(epochs), aug == "aug", out, args)
            res["run"] = spec
            res["test"] = evaluate_finetuned(out, ds, split="test", device="cpu")
            res["vs_probe"] = compare_with_probe(
                {
                    **res,
                    "val_accuracy": res["test"]["accuracy"],
                    "val_accuracy_ci": res["test"]["accuracy_ci"],
                },
                probe["test_accuracy"],
                probe["test_accuracy_ci"],
            )
            res.pop("checkpoint", None)
            res.pop("out_dir", None)
            rec["finetune"].append(res)
            save()
            print(
                f"{spec}: test acc {res['test']['accuracy']:.3f}, val {res['val_accuracy']:.3f}, "
                f"{res['seconds_per_epoch']:.1f} s/epoch, {res['total_seconds']:.0f} s",
                file=sys.stderr,
            )
        rec["complete"] = True
        save()
    print(to_markdown(rec))


if __name__ == "__main__":
    main()
