"""Benchmark: advisor's torch L-BFGS linear probe vs scikit-learn LogisticRegression(solver="lbfgs").

Both do the same work: the same stratified folds, the same C grid, the same standardisation (train-fold
mean/std), the same objective (multinomial cross-entropy + L2, intercept unpenalised) and the same gradient
tolerance. scikit-learn fits every (fold, C) pair from scratch, as a GridSearchCV would; advisor warm-starts
each C from the previous (stronger) one and runs in float32. Accuracy is the out-of-fold accuracy at the best C.

Data: realistic synthetic features - Gaussian class clusters whose means live in a low-rank subspace, with
isotropic noise so that classes overlap (accuracy well below 100 %), non-zero mean and heterogeneous feature
scales, like pooled CNN/ViT features.

    python benchmarks/bench_probe.py                       # the full 20,000 x 768 x 100 problem
    python benchmarks/bench_probe.py --n 5000 --d 256 --classes 20 --tag small

Writes benchmarks/results/probe-<tag>-<cpu>-<threads>t.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
import warnings
from pathlib import Path

import numpy as np


def make_features(n: int, d: int, k: int, seed: int = 0, rank: int = 64, spread: float = 0.5):
    """Gaussian class clusters with overlap: means in a `rank`-dim subspace, unit noise, random feature scales."""
    rng = np.random.default_rng(seed)
    rank = min(rank, d)
    basis = np.linalg.qr(rng.normal(size=(d, rank)))[0]  # (d, rank) orthonormal
    means = rng.normal(size=(k, rank)) * spread @ basis.T  # (k, d)
    y = np.repeat(np.arange(k), n // k)
    y = np.concatenate([y, rng.integers(0, k, n - len(y))])
    rng.shuffle(y)
    x = means[y] + rng.normal(size=(n, d))
    scale = np.exp(rng.normal(scale=0.5, size=d))
    x = x * scale + rng.normal(size=d) * 3  # non-standardised, like raw pooled activations
    return x.astype(np.float32), y


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_sklearn(x, y, splits, grid, tol, max_iter, warm_start=False):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    c0 = time.process_time()
    fold_acc = np.zeros((len(grid), len(splits)))
    oof = np.zeros((len(grid), len(y)), dtype=np.int64)
    iters = 0
    for f, (tr, te) in enumerate(splits):
        sc = StandardScaler().fit(x[tr])
        xtr, xte = sc.transform(x[tr]), sc.transform(x[te])
        m = LogisticRegression(solver="lbfgs", tol=tol, max_iter=max_iter, warm_start=warm_start)
        for g, c in enumerate(grid):  # strong -> weak; with warm_start each fit starts from the previous one
            if not warm_start:
                m = LogisticRegression(solver="lbfgs", tol=tol, max_iter=max_iter)
            m.set_params(C=c)
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # ConvergenceWarning at the weak end: same cap for both solvers
                m.fit(xtr, y[tr])
            iters += int(np.max(m.n_iter_))
            p = m.predict(xte)
            oof[g, te] = p
            fold_acc[g, f] = (p == y[te]).mean()
    best = int(np.argmax(fold_acc.mean(1)))
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "accuracy": float((oof[best] == y).mean()),
        "best_c": grid[best],
        "cv_accuracy": fold_acc.mean(1).tolist(),
        "iterations": iters,
    }


def run_sklearn_nested(x, y, splits, grid, tol, max_iter, seed, inner_folds):
    """scikit-learn doing the advisor's protocol: per outer fold, C by an inner stratified CV on the outer-train part
    (the advisor's inner folds and seeds; every (inner fold, C) fitted from scratch over the whole grid, as
    GridSearchCV would; ties to the stronger C), then a refit on the outer-train part at that C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from advisor.probe import effective_folds, inner_seed, stratified_folds

    def fit_predict(xa, ya, xb, c):
        sc = StandardScaler().fit(xa)
        m = LogisticRegression(solver="lbfgs", tol=tol, max_iter=max_iter, C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at the weak end: same cap for both solvers
            m.fit(sc.transform(xa), ya)
        return m.predict(sc.transform(xb)), int(np.max(m.n_iter_))

    t0 = time.perf_counter()
    c0 = time.process_time()
    pred = np.full(len(y), -1, dtype=np.int64)
    chosen, iters = [], 0
    for f, (tr, te) in enumerate(splits):
        xtr, ytr = x[tr], y[tr]
        inner = stratified_folds(ytr, effective_folds(ytr, inner_folds), inner_seed(seed, f))
        curve = np.zeros(len(grid))
        for g, c in enumerate(grid):
            accs = []
            for itr, ite in inner:
                p, it = fit_predict(xtr[itr], ytr[itr], xtr[ite], c)
                iters += it
                accs.append(float((p == ytr[ite]).mean()))
            curve[g] = np.mean(accs)
        best = int(np.flatnonzero(curve >= curve.max() - 1e-12)[0])
        pred[te], it = fit_predict(xtr, ytr, x[te], grid[best])
        iters += it
        chosen.append(grid[best])
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "accuracy": float((pred == y).mean()),
        "chosen_c": chosen,
        "iterations": iters,
    }


def run_advisor(x, y, folds, grid, tol, max_iter, seed, device, dtype):
    from advisor.probe import linear_probe

    c0 = time.process_time()
    r = linear_probe(
        x, y, folds=folds, c_grid=grid, seed=seed, tol=tol, max_iter=max_iter, device=device, dtype=dtype
    )
    return {
        "seconds": r.seconds,
        "cpu_seconds": time.process_time() - c0,
        "accuracy": r.accuracy,
        "accuracy_ci": list(r.accuracy_ci),
        "macro_f1": r.macro_f1,
        "best_c": r.best_c,
        "cv_accuracy": r.cv_accuracy,
        "iterations": r.iterations,
        "device": r.device,
        "dtype": r.dtype,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--grid", type=float, nargs="+", default=None, help="C grid (default: advisor's DEFAULT_C_GRID)"
    )
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--sklearn-warm", action="store_true", help="also time scikit-learn with warm_start=True")
    ap.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: all cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument(
        "--sklearn-nested", action="store_true", help="also time scikit-learn doing the advisor's nested CV"
    )
    ap.add_argument("--tag", default="full")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    threads = args.threads or os.cpu_count() or 1
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    import sklearn

    from advisor.probe import DEFAULT_C_GRID, INNER_FOLDS, effective_folds, stratified_folds

    x, y = make_features(args.n, args.d, args.classes, seed=args.seed)
    folds = effective_folds(y, args.folds)
    splits = stratified_folds(y, folds, args.seed)
    grid = sorted(args.grid or DEFAULT_C_GRID)
    print(f"data {x.shape} classes={args.classes} folds={folds} grid={grid} threads={threads}", flush=True)

    with threadpool_limits(limits=threads):
        ours = run_advisor(x, y, folds, grid, args.tol, args.max_iter, args.seed, args.device, args.dtype)
        print(f"advisor: {ours['seconds']:.1f} s acc={ours['accuracy']:.4f} C={ours['best_c']}", flush=True)
        ref = None if args.skip_sklearn else run_sklearn(x, y, splits, grid, args.tol, args.max_iter)
        if ref:
            print(f"sklearn: {ref['seconds']:.1f} s acc={ref['accuracy']:.4f} C={ref['best_c']}", flush=True)
        warm = (
            run_sklearn(x, y, splits, grid, args.tol, args.max_iter, warm_start=True)
            if args.sklearn_warm
            else None
        )
        if warm:
            print(
                f"sklearn warm: {warm['seconds']:.1f} s acc={warm['accuracy']:.4f} C={warm['best_c']}",
                flush=True,
            )
        nested = (
            run_sklearn_nested(x, y, splits, grid, args.tol, args.max_iter, args.seed, INNER_FOLDS)
            if args.sklearn_nested
            else None
        )
        if nested:
            print(f"sklearn nested: {nested['seconds']:.1f} s acc={nested['accuracy']:.4f}", flush=True)

    record = {
        "benchmark": "linear probe: advisor torch L-BFGS vs scikit-learn LogisticRegression(lbfgs)",
        "problem": {
            "n": args.n,
            "d": args.d,
            "classes": args.classes,
            "folds": folds,
            "c_grid": grid,
            "tol": args.tol,
            "max_iter": args.max_iter,
            "seed": args.seed,
        },
        "advisor": ours,
        "sklearn": ref,
        "sklearn_warm_start": warm,
        "sklearn_nested": nested,
        "speedup_cpu_time_vs_nested": (nested["cpu_seconds"] / ours["cpu_seconds"]) if nested else None,
        "speedup": (ref["seconds"] / ours["seconds"]) if ref else None,
        "speedup_cpu_time": (ref["cpu_seconds"] / ours["cpu_seconds"]) if ref else None,
        "load_average_at_end": os.getloadavg(),
        "accuracy_diff_points": (100 * (ours["accuracy"] - ref["accuracy"])) if ref else None,
        "hardware": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "threads": threads,
            "device": args.device,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_name().lower()).strip("-")[:40]
    stem = out / f"probe-{args.tag}-{slug}-{threads}t-{args.device}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Linear probe benchmark ({args.tag})",
        "",
        f"Problem: {args.n} x {args.d} features, {args.classes} classes, {folds}-fold stratified CV, "
        f"C grid {grid}, tol {args.tol}, max_iter {args.max_iter}.",
        f"Hardware: {record['hardware']['cpu']}, {threads} threads, device {args.device}. "
        f"Versions: torch {torch.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}. "
        f"Date {record['date_utc']}.",
        "",
        "Wall time is sensitive to other processes on a shared machine; CPU time (process_time, single-threaded "
        f"runs) much less so. Load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}.",
        "",
        "| solver | wall time (s) | CPU time (s) | OOF accuracy (%) | best C | L-BFGS iterations |",
        "|---|---:|---:|---:|---:|---:|",
        f"| advisor (torch {args.dtype}, warm-started) | {ours['seconds']:.1f} | {ours['cpu_seconds']:.1f} | "
        f"{100 * ours['accuracy']:.2f} | {ours['best_c']:g} | {ours['iterations']} |",
    ]
    if ref:
        lines.append(
            f"| scikit-learn LogisticRegression(lbfgs) | {ref['seconds']:.1f} | {ref['cpu_seconds']:.1f} | "
            f"{100 * ref['accuracy']:.2f} | {ref['best_c']:g} | {ref['iterations']} |"
        )
    if warm:
        lines.append(
            f"| scikit-learn LogisticRegression(lbfgs, warm_start=True) | {warm['seconds']:.1f} | "
            f"{warm['cpu_seconds']:.1f} | {100 * warm['accuracy']:.2f} | {warm['best_c']:g} | {warm['iterations']} |"
        )
    if nested:
        lines.append(
            f"| scikit-learn LogisticRegression(lbfgs), the advisor's nested CV | {nested['seconds']:.1f} | "
            f"{nested['cpu_seconds']:.1f} | {100 * nested['accuracy']:.2f} | "
            f"{'/'.join(f'{c:g}' for c in nested['chosen_c'])} | {nested['iterations']} |"
        )
    if ref:
        lines += [
            "",
            f"Speed-up vs scikit-learn (each fit from scratch): **{record['speedup']:.1f}x** wall, "
            f"**{record['speedup_cpu_time']:.1f}x** CPU time; accuracy difference "
            f"{record['accuracy_diff_points']:+.2f} points.",
        ]
    if warm:
        lines += [
            f"Speed-up vs scikit-learn with the same warm-started sweep: {warm['seconds'] / ours['seconds']:.1f}x "
            f"wall, {warm['cpu_seconds'] / ours['cpu_seconds']:.1f}x CPU time."
        ]
    if nested:
        lines += [
            f"Speed-up vs scikit-learn doing the same nested CV: {nested['seconds'] / ours['seconds']:.1f}x wall, "
            f"**{record['speedup_cpu_time_vs_nested']:.1f}x** CPU time; accuracy difference "
            f"{100 * (ours['accuracy'] - nested['accuracy']):+.2f} points."
        ]
    lines += [
        "",
        "Per-C mean CV accuracy (%), advisor: "
        + ", ".join(
            f"C={c:g}: " + ("-" if a is None else f"{100 * a:.2f}")
            for c, a in zip(grid, ours["cv_accuracy"], strict=True)
        )
        + " (-: every inner sweep had stopped before this C)",
    ]
    if ref:
        lines += [
            "Per-C mean CV accuracy (%), scikit-learn: "
            + ", ".join(f"C={c:g}: {100 * a:.2f}" for c, a in zip(grid, ref["cv_accuracy"], strict=True))
        ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
