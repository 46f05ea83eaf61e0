"""Latency of a backbone as a dense model would run it: one image at the working size, to its feature pyramid.

The timed call takes a decoded PIL image at the data's working size, resizes and normalises it (the dense
preprocessing of `advisor.dense.backbones.image_tensor`, sides rounded to a multiple of 32) and runs the network up
to its last tapped stage: what a detector's or segmenter's neck would read. It leaves out the head, so it is the
floor of a full model's latency; the record says so. Timing follows `advisor.bench.timing.time_callable`, and the
figure is flagged unreliable on a busy machine or with a large spread (`advisor.bench.reliability`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from advisor.bench.contention import OthersCpu, others_cpu


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def latency_record(
    stats: Any,
    *,
    what: str,
    size: tuple[int, int],
    loads: list[float | None],
    others: OthersCpu | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The JSON record of a `TimingStats` taken at `size` (width, height), with its reliability verdict.

    `others` (the CPU other processes used while timing, `advisor.bench.contention`) decides whether the machine
    was busy when it was measured; otherwise the highest of `loads` (1-minute load averages) does.
    """
    from advisor.bench.reliability import UNRELIABLE_SPREAD_REL, busy_reason

    seen = [v for v in loads if v is not None]
    load = max(seen) if seen else None
    spread = stats.iqr_ms / stats.p50_ms if stats.p50_ms > 0 else None
    reasons = []
    if spread is not None and spread > UNRELIABLE_SPREAD_REL:
        reasons.append(f"large spread: IQR is {100 * spread:.0f} % of the median")
    env = {"loadavg_1m_before": load, "cpu_others": others.value if others else None}
    if others is not None:
        env["cpu_capacity"] = others.capacity
    busy = busy_reason(env, _usable_cpus(), threads)
    if busy:
        reasons.append(busy)
    return {
        "p50_ms": stats.p50_ms,
        "p90_ms": stats.p90_ms,
        "iqr_ms": stats.iqr_ms,
        "n": stats.n,
        "size": list(size),
        "what": what,
        "loadavg_1m": load,
        "cpu_others": env["cpu_others"],
        "unreliable": bool(reasons),
        "reasons": reasons,
        "warnings": list(stats.warnings),
    }


def measure_backbone_latency(
    model: Any, size: tuple[int, int], *, pretrained: bool = True, device: str = "cpu", repeats: int = 10
) -> dict[str, Any]:
    """p50/p90 ms per image of a backbone's feature pyramid at `size` (width, height), preprocessing included.

    `model` is a model id (loaded here, with `pretrained`) or an already loaded `LoadedModel`.
    """
    import torch
    from PIL import Image

    from advisor.dense.backbones import dense_backbone, feature_maps, image_tensor, load_backbone

    loaded = load_backbone(model, pretrained=pretrained, device=device)
    bb = dense_backbone(loaded)
    w, h = size
    hw = (max(32, round(h / 32) * 32), max(32, round(w / 32) * 32))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for _ in range(2)]
    dev = loaded.device

    def call(im: Any) -> None:
        with torch.inference_mode():
            feature_maps(bb, image_tensor([im], hw, bb.mean, bb.std).to(dev))

    what = f"backbone to its stride-{bb.taps[-1].stride} features at {hw[1]}x{hw[0]} (no head), batch 1"
    return timed_record(
        call, images, what=what, size=size, device=dev, warmup=2, repeats=repeats, max_time=20.0
    )


def timed_record(
    call: Callable[[Any], Any],
    images: Sequence[Any],
    *,
    what: str,
    size: tuple[int, int],
    device: Any,
    warmup: int,
    repeats: int,
    max_time: float,
) -> dict[str, Any]:
    """Time ``call(image)`` over `images` (`advisor.bench.timing.time_callable`, the device synchronised) while
    watching the load and the other processes' CPU use, and return its `latency_record`."""
    import torch

    from advisor.bench.timing import time_callable

    sync = torch.cuda.synchronize if getattr(device, "type", None) == "cuda" else None
    before = _loadavg()
    with others_cpu() as others:
        stats = time_callable(
            call, [(im,) for im in images], sync=sync, warmup=warmup, min_repeats=repeats, max_time=max_time
        )
    return latency_record(
        stats,
        what=what,
        size=size,
        loads=[before, _loadavg()],
        others=others,
        threads=torch.get_num_threads(),
    )
