"""`ThreadExecutor`: the same results as the serial executor, outcomes in spec order, one failing candidate alone."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.executors import get_executor
from advisor.executors.threads import ThreadExecutor

timm = pytest.importorskip("timm")

# eager, not the default auto: the runtime choice is a timed speed decision, and trials that run
# side by side can time differently, so the figures compared below would not be bit-identical
OPTS = dict(device="cpu", folds=3, out=None, bench=False, baselines=False, runtime="eager")
TIMING_KEYS = {"seconds", "timings"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 classes x 8 images of 32x32 px whose colour depends on the class; two tiny random local models."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("toy")
    data = root / "shapes"
    rng = np.random.default_rng(0)
    for cls, rgb in {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}.items():
        (data / cls).mkdir(parents=True)
        for i in range(8):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(data / cls / f"{i:02d}.png")
    models = []
    for arch in ("test_vit", "test_efficientnet"):
        torch.manual_seed(0)
        m = timm.create_model(arch, pretrained=False)
        f = root / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:{arch}&input_size=64")
    return data, models


def _figures(res) -> list[dict]:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMING_KEYS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return [strip(c.to_dict()) for c in res.ranked]


def test_registry_builds_threads_with_workers_and_refuses_other_options():
    ex = get_executor("threads", workers=3)
    assert isinstance(ex, ThreadExecutor) and ex.workers == 3
    with pytest.raises(UsageError, match="takes only `workers`"):
        get_executor("threads", address="auto")
    with pytest.raises(UsageError, match="at least 1 worker"):
        ThreadExecutor(0)


def test_threads_give_the_serial_results_and_a_broken_model_fails_alone(toy, tmp_path, monkeypatch):
    from advisor import api

    data, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "serial-cache"))
    serial = api.recommend(data, models=models, executor="serial", **OPTS)
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "thread-cache"))
    broken = f"local:{tmp_path / 'missing.onnx'}"
    seen: list[str] = []
    ex = ThreadExecutor(2)
    threaded = api.recommend(
        data, models=[models[0], broken, models[1]], executor=ex, progress_fn=seen.append, **OPTS
    )
    assert [c.model_id for c in threaded.ranked] == [c.model_id for c in serial.ranked]
    assert len(serial.ranked) == 2
    assert _figures(threaded) == _figures(serial)  # features, scores, signals, probes: the same numbers
    assert all(c.cached["features"] is False for c in threaded.ranked)  # computed by the threads
    assert any(broken in n and "skipped" in n for n in threaded.notes)
