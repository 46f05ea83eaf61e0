"""Latency/memory benchmarks as Ray tasks with exclusive placement, each figure with its node's hardware.

A benchmark task asks for one unit of the custom resource `BENCH_RESOURCE`; a node that offers exactly one unit
(``ray start --resources '{"advisor_bench": 1}'``; a local instance started by `RayExecutor` offers it) runs one
benchmark at a time, and the benchmark stage runs after every candidate's features are done, so no feature task
shares the node's CPUs with a timing. A cluster where no node offers the resource benchmarks on the driver, as the
serial executor does, and the run's notes say so.

The task times in a scratch cache (its bench store is not the driver's: the driver is the only writer) and sends
back the figure with the measuring node's hardware fingerprint, stored with the figure (``bench["hardware"]``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from advisor.paths import CACHE_ENV

BENCH_RESOURCE = "advisor_bench"
# the `RunConfig` fields a benchmark depends on (what a task needs to time as the driver would)
BENCH_FIELDS = (
    "device", "latency_batch_size", "bench_min_time_s", "bench_max_time_s", "bench_threads", "rebench", "runtime",
)  # fmt: skip


def bench_settings(cfg: Any) -> dict[str, Any]:
    """The benchmark settings of a `RunConfig`, JSON-able."""
    return {k: getattr(cfg, k) for k in BENCH_FIELDS}


def remote_bench(model_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Benchmark `model_id` as `advisor.recommend.measure._bench` does, in a scratch cache (a task's function).

    Returns:
        ``{"record": BenchRecord | None, "error": str | None, "hardware": the node's fingerprint}``.
    """
    from advisor.bench.hardware import hardware_fingerprint
    from advisor.recommend.config import RunConfig
    from advisor.recommend.measure import _bench

    errors: list[str] = []
    old = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as scratch:
        os.environ[CACHE_ENV] = scratch
        try:
            cfg = RunConfig(data="", **settings)
            got = _bench([model_id], cfg, on_error=lambda _m, e: errors.append(str(e)))
        finally:
            if old is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = old
    return {
        "record": got.get(model_id),
        "error": errors[0] if errors else None,
        "hardware": hardware_fingerprint(),
    }


def has_bench_slots(ray: Any) -> bool:
    """Whether any node of the cluster offers the benchmark resource."""
    return float(ray.cluster_resources().get(BENCH_RESOURCE, 0.0)) >= 1.0


def run_benches(
    ray: Any,
    model_ids: Sequence[str],
    cfg: Any,
    *,
    on_error: Callable[[str, BaseException], None] | None = None,
    say: Callable[[str], None] | None = None,
    fn: Callable[..., dict[str, Any]] = remote_bench,
) -> dict[str, Any]:
    """Every model's benchmark as a task holding one benchmark slot; ``{model id: BenchRecord}`` with hardware."""
    from ray.exceptions import RayError

    task = ray.remote(fn).options(num_cpus=0, resources={BENCH_RESOURCE: 1}, max_retries=1)
    settings = bench_settings(cfg)
    refs = {m: task.remote(m, settings) for m in model_ids}
    out: dict[str, Any] = {}
    for m, ref in refs.items():
        try:
            payload = ray.get(ref)
        except RayError as e:
            if on_error is not None:
                on_error(m, RuntimeError(f"benchmark task failed: {str(e).splitlines()[0][:200]}"))
            continue
        if payload.get("record") is None:
            if on_error is not None:
                on_error(m, RuntimeError(payload.get("error") or "no figure"))
            continue
        hw = payload.get("hardware") or {}
        rec = dict(payload["record"])
        rec["hardware"] = {
            k: hw.get(k) for k in ("key", "cpu_model", "cpu_usable_cpus", "gpus", "hostname_hash")
        }
        out[m] = rec
        if say is not None:
            say(f"  bench {m}: measured on node {hw.get('hostname_hash')} ({hw.get('cpu_model')})")
    return out
