"""Benchmark: `advisor recommend --demo` cold with ``--runtime auto`` vs ``eager``, against the bare torch-eager
forward time of the same models on the same images, measured in the same run (issue: speed from the best runtime).

Steps, each with its own empty cache (``ADVISOR_CACHE_DIR``) so every run is cold:
1. ``recommend --demo --runtime eager``: wall time, ranking, probe accuracies, the demo sample's ids.
2. ``recommend --demo --runtime auto``: the same, plus the runtime each model ran on (features meta).
3. the bare loop: per demo model, the same images (the run's subsample, decoded and preprocessed beforehand, not
   timed), forward passes at batch 32 under ``torch.inference_mode`` in eager, timed (the floor that the pipeline
   overhead is measured against).

    python benchmarks/bench_runtimes.py            # writes benchmarks/results/runtimes-demo-<cpu>.{json,md}

The machine is shared: compare the ratios of one run, and read the load average recorded beside them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _recommend(runtime: str, cache: Path) -> tuple[float, dict]:
    env = os.environ | {"ADVISOR_CACHE_DIR": str(cache)}
    out = cache / "run"
    cmd = [sys.executable, "-m", "advisor", "recommend", "--demo", "--runtime", runtime, "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--format", "json"], env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "results.json").read_text())


def _runtimes_used(cache: Path) -> dict[str, str]:
    used = {}
    for meta in (cache / "features").rglob("meta.json"):
        m = json.loads(meta.read_text())
        rt = (m.get("runtime") or {}).get("runtime")
        used[str((m.get("signature") or {}).get("model_id"))] = str(rt)
    return used


def _bare_eager(models: list[str], subsample: dict) -> tuple[dict[str, float], int]:
    """Seconds of eager forward passes (batch 32) of each model over the run's demo subsample, and its size."""
    import torch

    from advisor.data import load_dataset, load_image, stratified_sample
    from advisor.demo import demo_dataset_path
    from advisor.models import load_model

    ds = load_dataset(demo_dataset_path())
    samples = stratified_sample(
        ds, max_per_class=subsample.get("max_per_class"), max_samples=subsample.get("max_samples"),
        seed=int(subsample.get("seed") or 0),
    )  # fmt: skip
    images = [load_image(s.path) for s in samples]
    out = {}
    for m in models:
        lm = load_model(m, device="cpu")
        batches = [lm.preprocess(images[i : i + 32]) for i in range(0, len(images), 32)]
        with torch.inference_mode():
            lm.forward(batches[0])  # warm-up, not timed
            t0 = time.perf_counter()
            for b in batches:
                lm.forward(b)
        out[m] = time.perf_counter() - t0
    return out, len(images)


def _probe(res: dict) -> dict[str, float | None]:
    return {c["model_id"]: (c.get("probe") or {}).get("accuracy") for c in res.get("candidates", [])}


def main() -> None:
    import torch

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        eager_wall, eager_res = _recommend("eager", Path(tmp) / "eager")
        auto_wall, auto_res = _recommend("auto", Path(tmp) / "auto")
        used = _runtimes_used(Path(tmp) / "auto")
    models = [c["model_id"] for c in eager_res["candidates"] if c["model_id"].startswith("pkg:")]
    bare, n_images = _bare_eager(models, eager_res["dataset"]["subsample"])
    bare_total = sum(bare.values())
    rec = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m": {"start": load0, "end": os.getloadavg()[0]},
        "versions": eager_res.get("versions"),
        "images": n_images,
        "eager_cold_s": eager_wall,
        "auto_cold_s": auto_wall,
        "bare_eager_forward_s": bare,
        "ratio_auto_cold_to_bare_eager": auto_wall / bare_total if bare_total else None,
        "ratio_eager_cold_to_bare_eager": eager_wall / bare_total if bare_total else None,
        "runtime_chosen": used,
        "stages_eager_s": eager_res.get("timings"),
        "stages_auto_s": auto_res.get("timings"),
        "ranking_eager": [c["model_id"] for c in eager_res["candidates"]],
        "ranking_auto": [c["model_id"] for c in auto_res["candidates"]],
        "probe_eager": _probe(eager_res),
        "probe_auto": _probe(auto_res),
    }
    dest = HERE / "results"
    dest.mkdir(exist_ok=True)
    tag = (platform.processor() or platform.machine()).replace(" ", "-")[:40]
    (dest / f"runtimes-demo-{tag}.json").write_text(json.dumps(rec, indent=2))
    print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
