"""Dataset scan cost: how long `advisor.data.load_dataset` takes on a 10k-image folder, header-only vs stat-only,
threaded vs not, against fully decoding every image; writes benchmarks/results/data_scan_*.{json,md}.

Usage:
    python benchmarks/data_scan.py [--n 10000] [--classes 100] [--repeats 3] [--big 1000]

Images are synthetic JPEGs written to a temp dir (64x64 noise+gradient, and `--big` 1024x768 ones to show that
header checks do not grow with pixel count while decoding does). The page cache is warm (files were just written):
this measures CPU/syscall cost, not cold-disk latency. Other processes may share the machine: medians of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int, classes: int, size: tuple[int, int], seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3).astype(np.uint8)
    for i in range(n):
        d = root / f"class_{i % classes:03d}"
        d.mkdir(parents=True, exist_ok=True)
        arr = base ^ rng.integers(0, 32, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"{i:06d}.jpg", quality=85)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(n: int, classes: int, repeats: int, big: int) -> dict:
    from advisor.data import load_dataset, load_image

    results = []
    with tempfile.TemporaryDirectory(prefix="advisor-scan-") as tmp:
        for label, count, size in (("64x64 JPEG", n, (64, 64)), ("1024x768 JPEG", big, (1024, 768))):
            if count <= 0:
                continue
            root = Path(tmp) / label.replace(" ", "_")
            t0 = time.perf_counter()
            make_folder(root, count, classes, size)
            gen_s = time.perf_counter() - t0
            row = {"images": label, "n_files": count, "n_classes": classes, "generate_s": round(gen_s, 2)}
            t, ds = timed(lambda root=root: load_dataset(root, check_headers=False), repeats)
            row["stat_only_s"] = round(t, 3)
            assert len(ds) == count
            os.environ["ADVISOR_SCAN_THREADS"] = "4"
            t, _ = timed(lambda root=root: load_dataset(root), repeats)
            row["headers_4_threads_s"] = round(t, 3)
            del os.environ["ADVISOR_SCAN_THREADS"]
            t, ds = timed(lambda root=root: load_dataset(root), repeats)  # the default (1 thread)
            row["headers_default_s"] = round(t, 3)
            assert len(ds.media_info) == count
            n_dec = min(count, 500)
            t, _ = timed(lambda ds=ds, n_dec=n_dec: [load_image(s) for s in ds.samples[:n_dec]], repeats)
            row["full_decode_per_file_ms"] = round(1000 * t / n_dec, 3)
            row["full_decode_extrapolated_s"] = round(t / n_dec * count, 2)
            t, _ = timed(
                lambda ds=ds, n_dec=n_dec: [load_image(s, min_side=256) for s in ds.samples[:n_dec]], 1
            )
            row["draft_decode_min_side_256_per_file_ms"] = round(1000 * t / n_dec, 3)
            row["headers_per_file_ms"] = round(1000 * row["headers_default_s"] / count, 3)
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    return {"results": results, "environment": environment(), "repeats": repeats}


def environment() -> dict:
    import PIL

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def to_markdown(rec: dict) -> str:
    env = rec["environment"]
    lines = [
        "# Dataset scan cost (`advisor.data.load_dataset`)",
        "",
        f"{env['date_utc']} · {env['cpu']} ({env['cpu_count']} CPUs) · Python {env['python']} · Pillow "
        f"{env['pillow']} · median of {rec['repeats']} runs · warm page cache · `python benchmarks/data_scan.py`",
        "",
        "| images | files | stat only (s) | headers, default = 1 thread (s) | headers, 4 threads (s) | header ms/file "
        "| full decode ms/file | full decode, all files (s, extrapolated) | `load_image(min_side=256)` ms/file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rec["results"]:
        lines.append(
            f"| {r['images']} | {r['n_files']} | {r['stat_only_s']} | {r['headers_default_s']} | "
            f"{r['headers_4_threads_s']} | {r['headers_per_file_ms']} | {r['full_decode_per_file_ms']} | "
            f"{r['full_decode_extrapolated_s']} | {r['draft_decode_min_side_256_per_file_ms']} |"
        )
    lines += [
        "",
        "Header mode (the default) opens each file with `PIL.Image.open` and reads only its size/mode: no pixels are",
        "decoded, so its cost does not grow with resolution, while a full decode does. Stat-only mode",
        "(`check_headers=False`) reads no file at all; broken files then surface later as `SkipItem`.",
        "`min_side=256` lets the JPEG decoder downscale by a power of two while the short side stays >= 256",
        "(no effect on images already smaller than 512 px). Decode times: first 500 files, median of the repeats.",
        "The machine is shared with other jobs, so expect +-30% noise between runs.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    rec = run(args.n, args.classes, args.repeats, args.big)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"data_scan_{platform.machine()}_{os.cpu_count()}cpu"
    (args.out / f"{stem}.json").write_text(json.dumps(rec, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(rec))
    print(to_markdown(rec))


if __name__ == "__main__":
    main()
