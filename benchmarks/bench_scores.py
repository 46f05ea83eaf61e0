"""Benchmark of the transferability-score suite: whole-suite wall time and per-metric / shared-step times.

Usage: python benchmarks/bench_scores.py [--n 5000 --d 2048 --c 100 --z 1000 --device cpu --repeats 1]
       (set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS in the environment to pin BLAS threads; recorded)

Writes benchmarks/results/scores-n{N}-d{D}-c{C}-{device}.{md,json} with hardware (CPU model, cores, load
average), library versions and every timing. Features are synthetic float32 (class means + unit noise), the
typical dtype of extracted features; all computation runs in float64 inside the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def hardware() -> dict:
    """CPU model, core counts, load average and library versions."""
    import scipy
    import torch

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": model or platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def make_data(n: int, d: int, c: int, z: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    x = (rng.standard_normal((n, d)) + 0.15 * rng.standard_normal((c, d))[y]).astype(np.float32)
    w = rng.standard_normal((d, z)) / np.sqrt(d)
    logits = (x @ w * 3).astype(np.float32)
    return x, y, logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--c", type=int, default=100)
    ap.add_argument("--z", type=int, default=1000, help="source classes of the synthetic logits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="suite runs; the median is reported")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    import torch

    from advisor.scores import Prepared, compute_scores, get_scorer, list_scorers

    x, y, logits = make_data(args.n, args.d, args.c, args.z)
    compute_scores(
        x[:200, :32], y[:200] % 5, logits=logits[:200], device=args.device
    )  # warm-up imports/kernels
    load_before = os.getloadavg()

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    totals = []
    cpu_totals = []
    suite = None
    for _ in range(args.repeats):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        suite = compute_scores(x, y, logits=logits, device=args.device)
        sync()
        totals.append(time.perf_counter() - t0)
        cpu_totals.append(time.process_time() - c0)

    # Accounting: shared steps timed one by one on a fresh object, then each metric on the warm cache.
    prep = Prepared(x, y, logits=logits, device=args.device)
    shared = {}
    shared_cpu = {}
    for name, fn in (
        ("convert+class sums", lambda: prep.class_sums),
        ("X^T X (float64)", lambda: prep.gram),
        ("eigh of X^T X (LogME)", lambda: prep.uncentered_eig),
        ("centred scatter + Cholesky", lambda: prep.scatter_cholesky()),
        ("PCA basis (64 dims)", lambda: prep.pca(64)),
    ):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        shared[name] = time.perf_counter() - t0
        shared_cpu[name] = time.process_time() - c0
    metric_only = {}
    metric_cpu = {}
    for name in list_scorers():
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        get_scorer(name).fn(prep)
        sync()
        metric_only[name] = time.perf_counter() - t0
        metric_cpu[name] = time.process_time() - c0
    load_after = os.getloadavg()

    result = {
        "benchmark": "advisor.scores suite",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "shape": {
            "N": args.n,
            "D": args.d,
            "C": args.c,
            "Z": args.z,
            "dtype_in": "float32",
            "compute": "float64",
        },
        "device": args.device,
        "hardware": hardware(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "suite_seconds": totals,
        "suite_seconds_median": float(np.median(totals)),
        # CPU seconds used by this process (all its threads): with one thread this is close to the wall time
        # the suite would take on an idle core, whatever the other jobs on the machine do
        "suite_cpu_seconds": cpu_totals,
        "goal_seconds": 10.0,
        "per_metric_in_suite_seconds": {k: r.seconds for k, r in suite.items()},
        "shared_step_seconds": shared,
        "shared_step_cpu_seconds": shared_cpu,
        "metric_only_seconds_warm_cache": metric_only,
        "metric_only_cpu_seconds_warm_cache": metric_cpu,
        "values": {k: r.value for k, r in suite.items()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = re.sub(r"[^a-z0-9]+", "-", (result["hardware"]["cpu_model"] or "cpu").lower()).strip("-")
    thr = f"t{result['hardware']['torch_threads']}"
    stem = out / f"scores-n{args.n}-d{args.d}-c{args.c}-{args.device}-{thr}-{cpu}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")

    hw = result["hardware"]
    lines = [
        f"# Score suite benchmark: N={args.n}, D={args.d}, C={args.c}, Z={args.z} ({args.device})",
        "",
        f"- date (UTC): {result['date_utc']}",
        f"- CPU: {hw['cpu_model']}, {hw['usable_cores']} usable cores (torch threads {hw['torch_threads']}); "
        f"GPU: {hw['gpu'] or 'none'}",
        f"- versions: python {hw['python']}, torch {hw['torch']}, numpy {hw['numpy']}, scipy {hw['scipy']}",
        f"- load average before/after (1, 5, 15 min): {tuple(round(v, 2) for v in load_before)} / "
        f"{tuple(round(v, 2) for v in load_after)} — other jobs share these cores; a load above the core count "
        "inflates every time below",
        f"- **whole suite (all {len(suite)} metrics, cold): {result['suite_seconds_median']:.2f} s** "
        f"(runs: {', '.join(f'{t:.2f}' for t in totals)}; goal ≤ 10 s); process CPU time "
        f"{', '.join(f'{t:.2f}' for t in cpu_totals)} s (with 1 thread ≈ the wall time on an idle core)",
        "",
        "## Shared steps (fresh object, timed one by one)",
        "",
        "| step | wall (s) | CPU (s) |",
        "|---|---:|---:|",
        *[f"| {k} | {v:.3f} | {shared_cpu[k]:.3f} |" for k, v in shared.items()],
        "",
        "## Per metric",
        "",
        "In-suite time includes any shared step the metric was first to need; warm-cache time is the metric alone.",
        "",
        "| metric | in suite wall (s) | warm cache wall (s) | warm cache CPU (s) | value |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {k} | {r.seconds:.3f} | {metric_only[k]:.3f} | {metric_cpu[k]:.3f} | "
            f"{'—' if r.value is None else format(r.value, '.5g')} |"
            for k, r in suite.items()
        ],
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
