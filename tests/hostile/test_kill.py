"""kill -9 during `advisor features`, `advisor recommend` and `advisor finetune`, then rerun: the results equal an
uninterrupted run's, and the rerun reuses what the killed run had finished (issue 12, "Done means").

Each run is a real CLI process (`python run.py ARGS`, a wrapper that shrinks the feature chunks to 4 samples and,
for the run that gets killed, sleeps before every forward pass and optimiser step so the kill lands mid-run). The
test polls for the first finished file (a feature chunk, a candidate's features, an epoch's state), then SIGKILLs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

WRAPPER = """\
import os, sys, time
import torch
torch.set_num_threads(1)
import advisor.features as F
F.CHUNK_SIZE = 4
slow = float(os.environ.get("TEST_SLOW_S", "0"))
if slow:
    import advisor.features.engine as E
    real_forward = E.forward_with_oom_retry
    def slow_forward(*a, **k):
        time.sleep(slow)
        return real_forward(*a, **k)
    E.forward_with_oom_retry = slow_forward
    real_step = torch.optim.AdamW.step
    def slow_step(self, *a, **k):
        time.sleep(slow)
        return real_step(self, *a, **k)
    torch.optim.AdamW.step = slow_step
from advisor.cli.main import main
sys.argv = ["advisor", *sys.argv[1:]]
main()
"""
pytestmark = pytest.mark.slow  # registered in pyproject; still part of the default `pytest -q` run
POLL_LIMIT_S = 180  # generous: the machine running the suite may be slow and shared; never a timing assertion


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """24 images in 2 classes, two tiny local models (different seeds), the wrapper script."""
    import timm
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("kill")
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("ant", "bee")):
        (root / "data" / c).mkdir(parents=True)
        for i in range(12):
            arr = (rng.random((16, 16, 3)) * 80 + ci * 80).astype(np.uint8)
            Image.fromarray(arr).save(root / "data" / c / f"{i:02d}.png")
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = timm.create_model("test_vit", pretrained=False)
        f = root / f"m{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:test_vit&input_size=32")
    (root / "run.py").write_text(WRAPPER)
    return root, models


def _env(cache: Path, slow: float = 0.0) -> dict[str, str]:
    return {
        **os.environ,
        "ADVISOR_CACHE_DIR": str(cache),
        "TEST_SLOW_S": str(slow),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "500",
    }


def _run(root: Path, cache: Path, *args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(root / "run.py"), *args, "--format", "json"],
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def _kill_when(root: Path, cache: Path, ready, *args: str) -> None:
    """Start a slowed run, wait until `ready()` is true (a file is on disk), SIGKILL it; it must not have finished."""
    proc = subprocess.Popen(
        [sys.executable, str(root / "run.py"), *args, "--format", "json"],
        env=_env(cache, slow=0.5),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + POLL_LIMIT_S
    try:
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        )
        assert ready(), "nothing was written before the poll limit"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _no_temp_files(cache: Path) -> None:
    """Atomic writes: a kill leaves finished files and nothing half-written under a final name."""
    for p in cache.rglob("*.npz"):
        with np.load(p, allow_pickle=False) as z:
            assert len(z.files) > 0, p


# ---------------------------------------------------------------------------------------------------- features
def test_kill_during_features_then_rerun_is_identical(setup, tmp_path):
    root, models = setup
    args = ("features", "-d", str(root / "data"), "-m", models[0], "--device", "cpu", "-b", "4")
    killed_cache = tmp_path / "killed"
    _kill_when(root, killed_cache, lambda: any(killed_cache.glob("features/*/chunk-*.npz")), *args)
    n_chunks = len(list(killed_cache.glob("features/*/chunk-*.npz")))
    assert 1 <= n_chunks < 6 and not list(killed_cache.glob("features/*/features.npz"))
    _no_temp_files(killed_cache)

    resumed = _run(root, killed_cache, *args, "--out", str(tmp_path / "resumed.npz"))
    full = _run(root, tmp_path / "fresh", *args, "--out", str(tmp_path / "full.npz"))
    assert resumed["resumed_chunks"] >= 1 and full["resumed_chunks"] == 0
    assert resumed["n"] == full["n"] == 24
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "full.npz")
    for k in ("features", "labels", "ids", "classes", "logits"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --------------------------------------------------------------------------------------------------- recommend
def _ranking(result: dict) -> list[tuple]:
    """What a user reads off a ranking: order, status, every score value, the probe's accuracy and its CI."""
    rows = []
    for c in result["candidates"]:
        scores = {k: (v["value"], v["applicable"]) for k, v in sorted((c.get("scores") or {}).items())}
        probe = c.get("probe") or {}
        rows.append(
            (
                c["model_id"],
                c["status"],
                c["rank"],
                json.dumps(scores),
                probe.get("accuracy"),
                json.dumps(probe.get("accuracy_ci")),
                json.dumps(probe.get("fold_accuracy")),
                json.dumps((c.get("predicted") or {}).get("score")),
            )
        )
    return rows


def test_kill_during_recommend_then_rerun_is_identical(setup, tmp_path):
    root, models = setup
    base = ("recommend", str(root / "data"), "--models", ",".join(models), "--device", "cpu", "-b", "4")
    base += ("--no-bench", "--no-baselines")
    killed_cache = tmp_path / "killed"
    # killed once the first candidate's features are finished: the second is still being encoded
    _kill_when(
        root,
        killed_cache,
        lambda: any(killed_cache.glob("features/*/features.npz")),
        *base,
        "--out",
        str(tmp_path / "run-killed"),
    )
    assert len(list(killed_cache.glob("features/*/features.npz"))) == 1
    assert not (tmp_path / "run-killed" / "results.json").exists()  # nothing that looks finished
    _no_temp_files(killed_cache)

    resumed = _run(root, killed_cache, *base, "--out", str(tmp_path / "run-resumed"))
    full = _run(root, tmp_path / "fresh", *base, "--out", str(tmp_path / "run-full"))
    assert _ranking(resumed) == _ranking(full)
    assert resumed["winner"] == full["winner"]
    on_disk = json.loads((tmp_path / "run-resumed" / "results.json").read_text())
    assert _ranking(on_disk) == _ranking(full)


# ---------------------------------------------------------------------------------------------------- finetune
def test_kill_during_finetune_then_resume_is_identical(setup, tmp_path):
    from advisor.finetune.checkpoint import STATE_FILE, load_state

    root, models = setup
    args = ("finetune", "-d", str(root / "data"), "-m", models[0], "--device", "cpu", "--epochs", "3")
    args += ("-b", "4", "--unfreeze", "last-1", "--patience", "0", "--no-augment", "--no-progress")
    state = tmp_path / "ft-killed" / STATE_FILE
    _kill_when(root, tmp_path / "cache", state.exists, *args, "--out", str(tmp_path / "ft-killed"))
    assert load_state(state)["epoch"] == 1

    resumed = _run(root, tmp_path / "cache", *args, "--out", str(tmp_path / "ft-killed"), "--resume")
    full = _run(root, tmp_path / "fresh", *args, "--out", str(tmp_path / "ft-full"))
    assert resumed["resumed_from_epoch"] == 1 and full.get("resumed_from_epoch") in (None, 0)
    strip = ("seconds", "resumed_from_epoch", "out_dir", "checkpoint", "created", "created_utc", "run_dir")

    def stable(d):
        if isinstance(d, dict):
            return {k: stable(v) for k, v in d.items() if k not in strip and not k.endswith("_s")}
        if isinstance(d, list):
            return [stable(v) for v in d]
        return d

    assert stable(resumed["history"]) == stable(full["history"])
    assert resumed["val_accuracy"] == full["val_accuracy"]
