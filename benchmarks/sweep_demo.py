"""Benchmark: `advisor sweep` over three datasets of three modalities, killed mid-sweep, then resumed (issue 16).

Datasets (read from ``../shared/assets``; the script skips when they are not there): the bundled Fashion-MNIST demo
images, Banking77 intents (text, ``data/banking77``) and FSDD spoken digits (audio; a manifest of the recordings with
the digit as label, written here). Each dataset has its own offline candidates (packaged models).

Steps, with one empty cache (``ADVISOR_CACHE_DIR``) so the first run is cold:
1. ``advisor sweep FILE`` as a subprocess, killed with SIGKILL once the second dataset has finished its first
   candidate (read from its progress lines): no clean-up, like a lost driver.
2. the same command again: the first dataset must be read back (``reused``), the second run again with its finished
   candidate's features served from the cache, the third run.
3. the same command a third time: every dataset ``reused``.

    python benchmarks/sweep_demo.py        # writes benchmarks/results/sweep-demo-<machine>.json and prints a summary

The machine is shared: the seconds are this run's, with the load average beside them.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent.parent / "shared" / "assets"
TEXT_MODELS = ["pkg:all-MiniLM-L6-v2", "pkg:paraphrase-MiniLM-L3-v2", "pkg:wordllama-l2-supercat-256"]
IMAGE_MODELS = ["pkg:efficientnet_lite0", "pkg:efficientnet_lite1", "pkg:efficientnet_lite2"]
AUDIO_MODELS = ["pkg:resemblyzer-ge2e"]


def _sweep_file(work: Path) -> Path:
    from advisor.demo import demo_dataset_path

    rec = ASSETS / "audio" / "fsdd" / "recordings"
    files = sorted(rec.glob("*.wav"))
    (work / "fsdd.csv").write_text("path,label\n" + "".join(f"{f},{f.name.split('_')[0]}\n" for f in files))
    f = work / "sweep.toml"
    f.write_text(
        'out = "sweep"\n'
        '[options]\ndevice = "cpu"\noffline = true\nmax_samples = 300\n'
        f'[[dataset]]\nname = "fashion-mnist"\npath = "{demo_dataset_path()}"\nmodels = {json.dumps(IMAGE_MODELS)}\n'
        f'[[dataset]]\nname = "banking77"\npath = "{ASSETS / "data" / "banking77"}"\n'
        f"models = {json.dumps(TEXT_MODELS)}\n"
        f'[[dataset]]\nname = "fsdd-digits"\npath = "{work / "fsdd.csv"}"\nmodels = {json.dumps(AUDIO_MODELS)}\n'
    )
    return f


def _run(file: Path, env: dict[str, str], kill_after_first_of: str | None = None) -> dict:
    """One `advisor sweep` run; with `kill_after_first_of`, SIGKILL once that dataset's first candidate is done."""
    cmd = [sys.executable, "-m", "advisor", "sweep", str(file)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    lines, in_target, killed = [], False, False
    for line in p.stderr:
        lines.append(line.rstrip())
        if kill_after_first_of and line.startswith("sweep [") and kill_after_first_of in line:
            in_target = True
        elif in_target and line.startswith("[2/"):  # the second candidate starts: the first one is done
            p.send_signal(signal.SIGKILL)
            killed = True
            break
    p.wait()
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "returncode": p.returncode, "killed": killed, "stderr_tail": lines[-6:]}


def main() -> int:
    if not ASSETS.is_dir():
        print(f"skip: {ASSETS} is not there (the shared assets)")
        return 0
    from advisor.bench.hardware import hardware_fingerprint

    with tempfile.TemporaryDirectory(prefix="advisor-sweep-bench-") as tmp:
        work = Path(tmp)
        env = os.environ | {"ADVISOR_CACHE_DIR": str(work / "cache")}
        file = _sweep_file(work)
        out = work / "sweep"
        steps = {"killed": _run(file, env, kill_after_first_of="banking77")}
        steps["killed"]["cells_in_manifest"] = [
            c["name"] for c in json.loads((out / "sweep.json").read_text())["cells"]
        ]
        steps["resumed"] = _run(file, env)
        m2 = json.loads((out / "sweep.json").read_text())
        steps["resumed"]["cells"] = {c["name"]: (c["status"], c["seconds"]) for c in m2["cells"]}
        banking = json.loads((out / "runs" / "banking77" / "results.json").read_text())
        steps["resumed"]["banking77_features_cached"] = {
            c["model_id"]: (c.get("cached") or {}).get("features") for c in banking["candidates"]
        }
        steps["again"] = _run(file, env)
        m3 = json.loads((out / "sweep.json").read_text())
        steps["again"]["cells"] = {c["name"]: (c["status"], c["seconds"]) for c in m3["cells"]}
        winners = {r["dataset"]: (r["model_id"], r["value"]) for r in m3["rows"] if r["rank"] == 1}
        report = (out / "sweep.md").read_text()
    hw = hardware_fingerprint()
    record = {
        "what": "advisor sweep over 3 datasets (image, text, audio), killed mid-sweep then resumed, then rerun",
        "steps": steps,
        "winners": winners,
        "loadavg_1m": os.getloadavg()[0],
        "hardware": {k: hw.get(k) for k in ("cpu_model", "cpu_usable_cpus", "memory_total_gb", "versions")},
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    dest = HERE / "results" / f"sweep-demo-{platform.machine()}.json"
    dest.write_text(json.dumps(record, indent=2) + "\n")
    (HERE / "results" / "sweep-demo-report.md").write_text(report)
    print(json.dumps({k: record[k] for k in ("steps", "winners", "loadavg_1m")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
