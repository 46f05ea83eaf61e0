"""Latency and memory of a dense model as the user would run it: one decoded image at the working size through
``predict`` (pre-processing, network, decoding and NMS included), timed by `advisor.bench.timing.time_callable`,
its peak RSS increase sampled by `advisor.bench.memory.RssSampler`, flagged unreliable on a busy machine or with a
large spread (`advisor.dense.backbone_latency.latency_record`)."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_TIME_S = 20.0
N_IMAGES = 2  # distinct random images, cycled, so no call sees the previous one's data


def measure_dense_latency(
    model: Any, size: tuple[int, int], *, repeats: int = 10, warmup: int = 2, max_time: float = MAX_TIME_S
) -> dict[str, Any]:
    """p50/p90 ms per image of ``model.predict([image])`` on `size` (width, height) images, batch 1.

    Args:
        model: a loaded `DenseModel`.
        size: the working image size (width, height) the user's images have.
        repeats: at least this many timed calls.
        warmup: untimed calls first (lazy sessions, allocator, caches).
        max_time: seconds of timed calls at most (a warning in the record says when it stopped early).

    Returns:
        The `latency_record` fields (``p50_ms``, ``p90_ms``, ``iqr_ms``, ``n``, ``size``, ``what``, ``loadavg_1m``,
        ``unreliable``, ``reasons``, ``warnings``) plus ``rss_delta_mb`` (peak process RSS during the warm-up and
        timed calls minus RSS before them; 0 when the model's buffers were already allocated), ``rss_method``,
        ``warmup`` and ``model_id``.
    """
    from PIL import Image

    from advisor.bench.memory import RssSampler
    from advisor.dense.backbone_latency import timed_record

    w, h = size
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for _ in range(N_IMAGES)]
    what = f"predict() on one {w}x{h} image: pre-processing, network, decoding and NMS"
    with RssSampler() as rss:
        rec = timed_record(
            lambda im: model.predict([im]),
            images,
            what=what,
            size=size,
            device=getattr(model, "device", None),
            warmup=warmup,
            repeats=repeats,
            max_time=max_time,
        )
    rec |= {
        "rss_delta_mb": rss.delta_bytes / 2**20,
        "rss_method": rss.method,
        "warmup": warmup,
        "model_id": getattr(model, "model_id", None),
    }
    return rec
