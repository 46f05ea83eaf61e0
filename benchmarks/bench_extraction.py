"""Benchmark: feature-extraction throughput including decoding vs the model-only forward pass (same batch size).

For each dataset and DataLoader worker count, `advisor.features.extract_features` runs end to end (decode +
preprocess + forward + chunked cache writes, cache bypassed with ``overwrite_strategy="always"`` in a temporary
cache) and is compared with ``LoadedModel.forward`` on an already preprocessed batch of the same size, timed
the same way (warm-up, ``torch.inference_mode``, several repeats, median). The ratio end-to-end / forward-only
is the efficiency of the engine (goal >= 0.8 on CPU).

Datasets: the Fashion-MNIST subset (28x28 PNGs, from ../shared/assets) and "photos": 480x360 JPEGs made from
scikit-image's sample photographs (decoding and resizing cost more). Results go to
``benchmarks/results/extraction-<host>-<cpu>.{json,md}`` with hardware, versions and the machine load.

Usage: python benchmarks/bench_extraction.py [--model pkg:efficientnet_lite0] [--n 256] [--batch-size 32]
       [--workers 0 1 2] [--threads 2] [--repeats 3] [--random-init]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ADVISOR_ASSETS", ROOT.parent / "shared" / "assets"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_fashion(root: Path, n: int) -> Path:
    from PIL import Image

    z = np.load(ASSETS / "data" / "fashion_mnist_subset.npz")
    names = [str(c).replace("/", "_") for c in z["class_names"]]
    per = max(1, n // 10)
    for c in range(10):
        d = root / names[c]
        d.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(z["y_train"] == c)[:per]:
            Image.fromarray(z["x_train"][i]).save(d / f"{i:05d}.png")
    return root


def make_photos(root: Path, n: int) -> Path:
    from PIL import Image
    from skimage import data as skd

    srcs = {
        "cat": skd.chelsea(),
        "coffee": skd.coffee(),
        "astronaut": skd.astronaut(),
        "rocket": skd.rocket(),
    }
    rng = np.random.default_rng(0)
    per = max(1, n // len(srcs))
    for name, arr in srcs.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(arr).convert("RGB")
        for i in range(per):
            w, h = im.size
            x0, y0 = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
            crop = im.crop((x0, y0, x0 + 3 * w // 4, y0 + 3 * h // 4)).resize((480, 360))
            crop.save(d / f"{i:04d}.jpg", quality=90)
    return root


def time_forward(model, batch, repeats: int) -> float:
    """Seconds per batch (median) of model.forward on a preprocessed batch."""
    import torch

    with torch.inference_mode():
        model.forward(batch)  # warm-up
        ts = []
        for _ in range(max(2, repeats * 2)):
            t = time.perf_counter()
            model.forward(batch)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def time_extract(ds, model, batch_size: int, workers: int, repeats: int) -> tuple[float, float]:
    """(median items/s of the compute phase, median items/s wall incl. cache assembly) end to end."""
    from advisor.features import extract_features

    compute, wall = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fs = extract_features(
            ds, model, batch_size=batch_size, num_workers=workers, overwrite_strategy="always", progress=False
        )
        wall.append(len(fs) / (time.perf_counter() - t))
        compute.append(fs.meta["items_per_s"])
    return statistics.median(compute), statistics.median(wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pkg:efficientnet_lite0")
    ap.add_argument("--n", type=int, default=256, help="images per dataset")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--random-init", action="store_true", help="random weights (for models with no offline weights)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="advisor-bench-"))
    os.environ["ADVISOR_CACHE_DIR"] = str(tmp / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from advisor.data import load_dataset, load_image
    from advisor.models import load_model

    model = load_model(args.model, device="cpu", offline=True, pretrained=not args.random_init)
    datasets = {
        "fashion-mnist-28px-png": make_fashion(tmp / "fm", args.n),
        "photos-480x360-jpg": make_photos(tmp / "ph", args.n),
    }
    rows = []
    load_before = os.getloadavg()
    for name, path in datasets.items():
        ds = load_dataset(path)
        items = [load_image(s) for s in ds.samples[: args.batch_size]]
        batch = model.preprocess(items)
        t = time.perf_counter()
        for s in ds.samples[: args.batch_size]:
            model.preprocess([load_image(s)])
        decode_ms = (time.perf_counter() - t) / args.batch_size * 1000
        for w in args.workers:
            # Interleave: forward-only right before each end-to-end run, so both see the same machine load.
            fwd, comp, wall, ratios = [], [], [], []
            for _ in range(args.repeats):
                f_s = time_forward(model, batch, 1)
                c_ips, w_ips = time_extract(ds, model, args.batch_size, w, 1)
                fwd.append(args.batch_size / f_s)
                comp.append(c_ips)
                wall.append(w_ips)
                ratios.append(c_ips / (args.batch_size / f_s))
            row = {
                "dataset": name,
                "n": len(ds.samples),
                "batch_size": args.batch_size,
                "num_workers": w,
                "forward_only_items_per_s": round(statistics.median(fwd), 2),
                "decode_preprocess_ms_per_item": round(decode_ms, 2),
                "extract_items_per_s": round(statistics.median(comp), 2),
                "extract_wall_items_per_s": round(statistics.median(wall), 2),
                "ratio_vs_forward": round(statistics.median(ratios), 3),
                "ratios": [round(r, 3) for r in ratios],
                "loadavg_1min": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    import timm
    import transformers

    result = {
        "benchmark": "extraction-throughput",
        "model": args.model,
        "pretrained": not args.random_init,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": {
            "cpu": cpu_name(),
            "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": None,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "rows": rows,
        "note": "ratio = end-to-end extraction items/s (compute phase: decode+preprocess+forward+chunk writes) / "
        "model-only forward items/s at the same batch size, measured back to back (forward first) so both see the "
        "same machine load; the median over repeats is reported. The machine is shared: see load avg.",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{args.model}-{platform.node()}-{cpu_name()}".lower()).strip("-")[:80]
    stem = args.out / f"extraction-{slug}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Extraction throughput: {args.model}",
        "",
        f"{result['created']} · {result['hardware']['cpu']} · {result['hardware']['logical_cores']} logical cores · "
        f"torch threads {result['hardware']['torch_threads']} · load avg before/after "
        f"{result['hardware']['loadavg_before'][0]}/{result['hardware']['loadavg_after'][0]} · "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "",
        "| dataset | n | batch | workers | forward only (items/s) | decode+preprocess (ms/item) | extraction (items/s) "
        "| ratio (median) | ratios | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['n']} | {r['batch_size']} | {r['num_workers']} | {r['forward_only_items_per_s']} "
            f"| {r['decode_preprocess_ms_per_item']} | {r['extract_items_per_s']} | {r['ratio_vs_forward']} "
            f"| {', '.join(map(str, r['ratios']))} | {r['loadavg_1min']} |"
        )
    lines += [
        "",
        result["note"],
        "",
        f"Rerun: `python benchmarks/bench_extraction.py --model {args.model}`",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
