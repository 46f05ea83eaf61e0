"""Benchmark: does batch-1 latency on this machine hold one speed over a minute? (the "latency stage is noisy
between runs" question of the runtimes issue).

One process, one model (EfficientNet-Lite0 from the pip package's weights, or a random-init timm copy when that
package is absent), exported to ONNX once. Then, for ``--seconds`` (default 60), windows in turn of:
- ONNX Runtime at batch 1 with 2 intra-op threads (what `recommend` times on a 2-core CPU),
- ONNX Runtime at batch 1 with 1 thread,
- a canary: a 384x384 float32 matmul in torch on its 2 OpenMP threads (does the machine as a whole slow down?),
- a single-thread pure-Python loop (the same question for one core).
Each window records the median of 15 calls. A window is "slow" when its median is over 1.5x the fastest window of
its kind (the factor `advisor.bench.reliability.UNSTABLE_BETWEEN_ROUNDS` flags between rounds).

    python benchmarks/bench_latency_modes.py [--seconds 60]   # writes benchmarks/results/latency-modes-<cpu>.json

The machine is shared: the result is a description of this machine in that minute, with its load recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SLOW = 1.5


def _onnx_file(cache: Path) -> tuple[Path, str]:
    os.environ["ADVISOR_CACHE_DIR"] = str(cache)
    from advisor.models import load_model
    from advisor.models.runtimes import with_runtime

    try:
        lm, model = (
            load_model("pkg:efficientnet_lite0", device="cpu", pretrained=True),
            "pkg:efficientnet_lite0",
        )
    except Exception:  # noqa: BLE001 - the pip weights are optional here
        lm, model = (
            load_model("timm:efficientnet_lite0", device="cpu", pretrained=False),
            "timm (random init)",
        )
    ort_lm, choice = with_runtime(lm, "onnxruntime")
    if choice.runtime != "onnxruntime":
        raise SystemExit(f"ONNX export failed: {choice.reasons}")
    return Path(ort_lm.info["onnx_file"]), model


def _median_ms(fn, n: int = 15) -> float:
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def _spells(slow: np.ndarray) -> list[int]:
    """Lengths (in windows) of the runs of consecutive slow windows."""
    out, n = [], 0
    for s in [*slow.tolist(), False]:
        if s:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path, model = _onnx_file(Path(tmp))

        def session(threads: int):
            o = ort.SessionOptions()
            o.intra_op_num_threads = threads
            o.log_severity_level = 3
            return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])

        s2, s1 = session(2), session(1)
        name = s2.get_inputs()[0].name
        x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
        a = torch.randn(384, 384)
        kinds = {
            "ort_2_threads": lambda: s2.run(None, {name: x}),
            "ort_1_thread": lambda: s1.run(None, {name: x}),
            "torch_matmul_canary": lambda: torch.mm(a, a),
            "python_loop_canary": lambda: sum(i * i for i in range(3000)),
        }
        load0 = os.getloadavg()[0]
        windows: dict[str, list[float]] = {k: [] for k in kinds}
        end = time.time() + args.seconds
        while time.time() < end:
            for k, fn in kinds.items():
                windows[k].append(round(_median_ms(fn), 3))
        load1 = os.getloadavg()[0]
    summary = {}
    for k, v in windows.items():
        arr = np.asarray(v)
        summary[k] = {
            "windows": len(v),
            "fastest_ms": float(arr.min()),
            "p50_ms": float(np.median(arr)),
            "slowest_ms": float(arr.max()),
            "slow_fraction": float(np.mean(arr > SLOW * arr.min())),
            "slow_spells_windows": _spells(arr > SLOW * arr.min()),
        }
    rec = {
        "benchmark": "latency-modes",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model,
        "seconds": args.seconds,
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
        "loadavg_1m": {"start": load0, "end": load1},
        "slow_factor": SLOW,
        "summary": summary,
        "windows_ms": windows,
    }
    dest = HERE / "results"
    dest.mkdir(exist_ok=True)
    out = dest / f"latency-modes-{platform.machine()}.json"
    out.write_text(json.dumps(rec, indent=2))
    print(json.dumps({k: rec[k] for k in ("model", "loadavg_1m", "summary")}, indent=2))


if __name__ == "__main__":
    main()
