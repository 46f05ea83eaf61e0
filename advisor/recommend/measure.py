"""Latency/memory measurement of the candidates (via `advisor.bench`) and the resource limits applied to them."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from typing import Any

from advisor.recommend.config import RunConfig
from advisor.recommend.records import BenchRecord
from advisor.recommend.results import CandidateResult


def _hardware() -> dict[str, Any]:
    try:
        from advisor.bench.hardware import hardware_fingerprint

        return dict(hardware_fingerprint())
    except Exception as e:  # the bench module is optional for the ranking itself
        import os

        return {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "note": str(e)[:200],
        }


def _bench_config(cfg: RunConfig) -> Any:
    from advisor.bench import BenchConfig

    return BenchConfig(
        device=cfg.device,
        batch_sizes=(cfg.latency_batch_size,),
        min_time=cfg.bench_min_time_s,
        max_time=max(cfg.bench_max_time_s, cfg.bench_min_time_s),
        threads=cfg.bench_threads,
        runtime=cfg.runtime,
        # A derived runtime (an ONNX export, the auto trial) is keyed by a digest of the weights. The features stage
        # built it from the real weights, so time those: the export and the trial are reused, not redone for a
        # random-init copy (which cost about 10 s per model on the demo). Eager timing keeps random init.
        pretrained=cfg.runtime != "eager",
    )


def _bench_summary(measured: Any, cfg: RunConfig) -> BenchRecord:
    """The ``bench`` field of a candidate from a `reliability.Measured` (figure, reliability, provenance).

    ``peak_memory_mb`` = fp32 weights + the peak working memory of the timed forward passes (GPU: peak allocated
    over what was allocated before; CPU: peak RSS growth), in MiB. ``reliable`` False (with
    ``unreliable_reason``) when the spread was large or the machine busy even after re-measurement.
    """
    res = measured.record
    rec = next(
        (r for r in res.get("records") or [] if r.get("requested_batch_size") == cfg.latency_batch_size), None
    )
    lat = (rec.get("latency") or {}) if rec else {}
    mem = (rec.get("memory") or {}) if rec else {}
    weights = res.get("weights_memory_mb") or {}
    w_mb = weights.get("fp32") if isinstance(weights, dict) else None
    if w_mb is None and isinstance(weights, dict) and weights:
        w_mb = next(iter(weights.values()))
    work = mem.get("gpu_peak_allocated_mb")
    if work is None:
        work = mem.get("cpu_rss_delta_mb")
    # without the weights (a model with neither a torch module nor a graph file) the working memory alone would
    # understate the peak (shown as 0 MB for a packaged ONNX model once): unknown instead
    peak = None if w_mb is None else float(w_mb) + float(work or 0.0)
    gm = res.get("gmacs")
    rel = measured.reliability
    out: BenchRecord = {
        "batch_size": rec.get("batch_size") if rec and rec.get("batch_size") else cfg.latency_batch_size,
        "latency_ms_p50": lat.get("p50_ms"),
        "latency_ms_p90": lat.get("p90_ms"),
        "latency_ms_iqr": lat.get("iqr_ms"),
        "throughput_items_s": rec.get("throughput_items_per_s") if rec else None,
        "peak_memory_mb": peak,
        "weights_memory_mb": w_mb,
        "device": res.get("device"),
        "device_class": res.get("device_class"),
        "status": rec.get("status") if rec else "missing",
        "pretrained": res.get("pretrained"),
        "gmacs": gm.get("gmacs") if isinstance(gm, dict) else None,
        "cached": bool(measured.from_cache),
        "reliable": bool(rel.get("reliable")),
        "unreliable_reason": "; ".join(rel.get("reasons") or []) or None,
        "spread_rel": rel.get("spread_rel"),
        "loadavg_1m": rel.get("loadavg_1m"),
        "usable_cpus": rel.get("usable_cpus"),
        "threads": rel.get("threads"),
        "threads_requested": measured.threads_requested,
        "remeasure_rounds": measured.rounds,
        "warnings": list((rec or {}).get("warnings") or []) + list(res.get("warnings") or []),
    }
    if cfg.runtime != "eager":  # eager runs keep the record they had before runtimes existed
        rt = str(res.get("runtime") or "torch")
        out["runtime"] = "eager" if rt == "torch" else rt
    return out


def _bench(
    model_ids: Sequence[str],
    cfg: RunConfig,
    *,
    on_error: Callable[[str, BaseException], None] | None = None,
    say: Callable[[str], None] | None = None,
    **hooks: Any,
) -> dict[str, BenchRecord]:
    """Latency/memory of every candidate at the stated batch size via advisor.bench (random weights).

    Reuses a stored figure only when it was reliable and measured with the same settings (threads, batch size,
    device, hardware), unless ``cfg.rebench``; re-measures in interleaved rounds when a figure is unreliable
    (`advisor.bench.reliability.measure_candidates`). ``hooks`` (bench_fn, load_fn, store_path) are for tests.
    """
    from advisor.bench.reliability import measure_candidates

    got = measure_candidates(
        list(model_ids), _bench_config(cfg), rebench=cfg.rebench, on_error=on_error, say=say, **hooks
    )
    return {m: _bench_summary(x, cfg) for m, x in got.items()}


def apply_resource_limits(cands: Sequence[CandidateResult], cfg: RunConfig, notes: list[str]) -> None:
    """Exclude candidates over ``--max-latency-ms`` / ``--max-memory-mb`` (status "excluded", reason set).

    A reliable latency is compared by its p50; an unreliable one by the upper end of its interval (p90), and a
    note says so. Memory (weights + peak working memory) does not depend on load; a flagged run is noted.
    """
    upper: list[str] = []
    for cr in cands:
        b = cr.bench or {}
        lat, mem = cr.latency_ms, cr.memory_mb
        shaky = b.get("reliable") is False
        why = None
        if cfg.max_latency_ms is not None:
            if lat is None:
                why = "latency not measured"
            else:
                used, what = lat, "p50"
                if shaky:
                    used, what = (b.get("latency_ms_p90") or lat), "p90 (figure unreliable)"
                    upper.append(f"{cr.model_id} {used:.1f} ms")
                if used > cfg.max_latency_ms:
                    why = f"{used:.1f} ms {what} > --max-latency-ms {cfg.max_latency_ms:g}"
        if why is None and cfg.max_memory_mb is not None and (mem is None or mem > cfg.max_memory_mb):
            why = (
                "memory not measured"
                if mem is None
                else f"{mem:.0f} MB > --max-memory-mb {cfg.max_memory_mb:g}"
                + (" (from a run flagged unreliable for latency)" if shaky else "")
            )
        if why:
            cr.status = "excluded"
            cr.reasons = [why]
    if upper:
        notes.append(
            "--max-latency-ms used the upper end of the interval (p90) for unreliable latency figures: "
            + ", ".join(upper)
        )
