"""Latency of a dense model as the user would run it: one decoded image at the working size through ``predict``
(pre-processing, network, decoding and NMS included), timed by `advisor.bench.timing.time_callable`."""

from __future__ import annotations

from typing import Any

import numpy as np


def measure_dense_latency(model: Any, size: tuple[int, int], *, repeats: int = 10) -> dict[str, Any]:
    """p50/p90 ms per image of ``model.predict`` on `size` (width, height) images, with its reliability verdict."""
    from PIL import Image

    from advisor.bench.timing import time_callable
    from advisor.dense.backbone_latency import _loadavg, latency_record

    w, h = size
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for _ in range(2)]
    before = _loadavg()
    stats = time_callable(lambda im: model.predict([im]), [(im,) for im in images], warmup=2, min_repeats=repeats,
                          max_time=20.0)  # fmt: skip
    what = f"predict() on one {w}x{h} image: pre-processing, network, decoding and NMS"
    return latency_record(stats, what=what, size=size, loads=[before, _loadavg()])
