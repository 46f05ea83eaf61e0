"""GPU check, one call: `recommend --demo` on the Ray executor with 1 and 0.5 GPUs per candidate vs the serial run.

For a machine with a GPU (the device tool lends one to some tasks). Three runs of the bundled demo, each with its own
cache: serial on the GPU; Ray with ``num_gpus_per_candidate=1``; Ray with 0.5 (two candidates share the GPU). Checks:
the same ranking; every candidate's features equal to the serial run's within a tolerance (GPU kernels are not
bitwise deterministic across processes: max |delta| / max |x| <= 1e-3, the same order for the probe); benchmarks
run alone (one ``advisor_bench`` slot, so latency figures are never measured while features run); no Ray left.

    python benchmarks/gpu_ray_demo.py [--out-dir $OUT]                   # on the GPU machine
    python benchmarks/gpu_ray_demo.py --device cpu --fake-gpus 1 --out-dir /tmp   # dry run on a CPU (scheduling
        # only: Ray is given a fake GPU resource; the figures are CPU ones)

Inside a loopback-only network namespace where nothing may leave the machine:
``unshare -rn sh -c 'ip link set lo up && python benchmarks/gpu_ray_demo.py'``.
Writes <out-dir>/gpu_ray_demo-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOLERANCE = 1e-3


def _run(cache: Path, device: str, executor: object | None) -> tuple[float, object]:
    from advisor import api

    os.environ["ADVISOR_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    res = api.recommend(demo=True, device=device, out=None, executor=executor, progress=False)
    return time.perf_counter() - t0, res


def _features(cache: Path) -> dict[str, np.ndarray]:
    """Each model's cached feature array of the run in `cache` (by model id)."""
    out = {}
    for meta in (cache / "features").glob("*/meta.json"):
        m = json.loads(meta.read_text())
        with np.load(meta.parent / "features.npz", allow_pickle=False) as z:
            out[str(m["model_id"])] = z["features"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--fake-gpus", type=int, default=None, help="give Ray this many GPUs (dry run on a CPU)")
    ap.add_argument("--out-dir", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from advisor.executors.ray_executor import RayExecutor

    record: dict = {"device": args.device, "fake_gpus": args.fake_gpus, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="advisor-gpu-ray-") as tmp:
        root = Path(tmp)
        wall, serial = _run(root / "serial", args.device, None)
        ref = _features(root / "serial")
        record["runs"]["serial"] = {"wall_s": round(wall, 1), "ranking": [c.model_id for c in serial.ranked]}
        for share in (1.0, 0.5):
            name = f"ray-{share:g}gpu"
            ex = RayExecutor(num_gpus_per_candidate=share, num_gpus=args.fake_gpus)
            wall, res = _run(root / name, args.device, ex)
            feats = _features(root / name)
            worst = max(
                float(np.abs(feats[k] - ref[k]).max() / max(float(np.abs(ref[k]).max()), 1e-12)) for k in ref
            )
            record["runs"][name] = {
                "wall_s": round(wall, 1),
                "ranking": [c.model_id for c in res.ranked],
                "same_ranking": [c.model_id for c in res.ranked] == record["runs"]["serial"]["ranking"],
                "max_rel_feature_delta": worst,
                "features_equal_within_tolerance": worst <= TOLERANCE,
                "ray_left_running": ray.is_initialized(),
                "bench_hardware": sorted(
                    {str((c.bench or {}).get("device_class")) for c in res.ranked if c.bench}
                ),
            }
    ok = all(
        r["same_ranking"] and r["features_equal_within_tolerance"] and not r["ray_left_running"]
        for k, r in record["runs"].items()
        if k != "serial"
    )
    record["ok"] = ok
    out = Path(args.out_dir) / f"gpu_ray_demo-{args.device}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
