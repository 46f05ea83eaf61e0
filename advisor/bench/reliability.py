"""Whether a latency figure can be trusted (spread, machine load), and re-measuring candidates in interleaved rounds.

A figure is *unreliable* when its IQR is a large fraction of its median (`UNRELIABLE_SPREAD_REL`, a multiple of
the timing module's warning threshold) or when the machine was busy while it was timed (`busy_reason`, the same
rule `benchmark_model` warns about): other processes used more CPU than our threads left free
(`advisor.bench.contention`), or, where that is not measured, the 1-minute load average exceeded the usable CPUs.
Unreliable figures are never reused from the store, and `measure_candidates` re-measures them in round-robin rounds over all candidates (so load hits all alike), with the
thread count bench recommends on a busy machine (1), keeping each model's most reliable round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from advisor.bench.timing import SPREAD_WARN_REL

# IQR/median above this marks a figure unreliable (the timing module only warns above SPREAD_WARN_REL): at 25 %
# a 2x compute difference still shows, at 120 % (seen under load on 2 cores) the order of models is noise.
UNRELIABLE_SPREAD_REL = 2.5 * SPREAD_WARN_REL
DEFAULT_ROUNDS = 3
# Reliable tries of one model whose medians differ by more than this factor mark its figure unstable.
UNSTABLE_BETWEEN_ROUNDS = 1.5

LoadFn = Callable[[], float | None]


def machine_busy(load: float | None, usable_cpus: int | None) -> bool:
    """True when the 1-minute load average exceeds the usable CPUs (figures then pessimistic and noisy)."""
    return load is not None and load > (usable_cpus or 1)


def busy_reason(env: dict[str, Any], usable_cpus: int | None, threads: int | None) -> str | None:
    """Why the machine counts as busy for a figure timed with `threads` (None: it was not), from its environment.

    ``cpu_others`` (CPUs other processes used while timing, `advisor.bench.contention`) decides when recorded;
    records without it (older ones, non-Linux, windows too short to resolve) fall back to the load average, which
    also counts this process's own threads.
    """
    from advisor.bench.contention import is_busy

    others = env.get("cpu_others")
    if others is not None:
        cap = int(env.get("cpu_capacity") or usable_cpus or 1)
        if is_busy(float(others), cap, threads):
            return f"machine busy: other processes used {float(others):.1f} of {cap} CPUs while timing"
        return None
    loads = [v for v in (env.get("loadavg_1m_before"), env.get("loadavg_1m_after")) if v is not None]
    load = max(loads) if loads else None
    if machine_busy(load, usable_cpus):
        return f"machine busy: 1-min load average {load:.1f} > {usable_cpus or 1} usable CPUs"
    return None


def assess(record: dict[str, Any]) -> dict[str, Any]:
    """Reliability of the first successful figure of a stored or fresh bench record (``BenchResult.to_dict()``).

    Returns ``{reliable, reasons, spread_rel, loadavg_1m, cpu_others, busy, unstable, usable_cpus, threads}``:
    ``spread_rel`` = IQR/median, ``loadavg_1m`` the highest 1-minute load average seen before/after timing and
    ``cpu_others`` the CPUs other processes used while timing (each None when unknown), ``busy`` whether
    `busy_reason` found one, ``unstable`` whether the figure was flagged unstable between rounds when chosen.
    """
    env = record.get("environment") or {}
    loads = [v for v in (env.get("loadavg_1m_before"), env.get("loadavg_1m_after")) if v is not None]
    load = max(loads) if loads else None
    usable = (record.get("hardware") or {}).get("cpu_usable_cpus")
    ok = [r for r in record.get("records") or [] if r.get("status") == "ok"]
    lat = (ok[0].get("latency") or {}) if ok else {}
    p50, iqr = lat.get("p50_ms"), lat.get("iqr_ms")
    spread = iqr / p50 if p50 and iqr is not None and p50 > 0 else None
    reasons = []
    if spread is not None and spread > UNRELIABLE_SPREAD_REL:
        reasons.append(
            f"large spread: IQR is {100 * spread:.0f} % of the median (> {100 * UNRELIABLE_SPREAD_REL:.0f} %)"
        )
    threads = ok[0].get("threads") if ok else None
    busy = busy_reason(env, usable, threads)
    if busy:
        reasons.append(busy)
    if not ok:
        reasons.append("no successful measurement")
    # a figure flagged unstable between rounds when it was chosen (`measure_candidates`) stays flagged in the store
    stored = record.get("reliability") or {}
    unstable = bool(stored.get("unstable"))
    if unstable:
        reasons += [r for r in stored.get("reasons") or [] if str(r).startswith("unstable")]
    return {
        "reliable": not reasons,
        "reasons": reasons,
        "spread_rel": spread,
        "loadavg_1m": load,
        "cpu_others": env.get("cpu_others"),
        "busy": busy is not None,
        "unstable": unstable,
        "usable_cpus": usable,
        "threads": threads,
    }


def reusable(record: dict[str, Any]) -> bool:
    """A stored record may be reused only when its figure was reliable when measured (judged from its own data)."""
    return bool(assess(record)["reliable"])


@dataclass(frozen=True)
class Measured:
    """One model's chosen figure: the bench record (dict), its reliability, and how it was obtained."""

    record: dict[str, Any]
    reliability: dict[str, Any]
    from_cache: bool
    rounds: int  # re-measurement rounds run for this model (0: the first figure was kept)
    threads_requested: int | None


BenchFn = Callable[..., Any]


def _p50(m: Measured) -> float | None:
    ok = [r for r in m.record.get("records") or [] if r.get("status") == "ok"]
    v = (ok[0].get("latency") or {}).get("p50_ms") if ok else None
    return float(v) if v is not None else None


def _rank_key(m: Measured) -> tuple[int, float, float]:
    """Reliable first, then the fastest median (noise and a slow scheduling spell only ever add time), then the
    smallest spread."""
    s, p = m.reliability.get("spread_rel"), _p50(m)
    return (
        0 if m.reliability["reliable"] else 1,
        math.inf if p is None else p,
        math.inf if s is None else float(s),
    )


def unstable_reason(tries: Sequence[Measured]) -> str | None:
    """Why a model's figure changed too much between its reliable tries (None: it did not, or too few tries).

    Each try can look steady on its own (small spread, no other process busy) while the machine runs at another
    speed from one try to the next: on a shared 2-vCPU VM, ONNX Runtime's batch-1 latency switches between about
    7 and 14 ms for seconds at a time (`benchmarks/results/latency-modes-SUMMARY.md`). The fastest try is then kept,
    but it is flagged: the model's latency on this machine is not one number.
    """
    p50s = [p for t in tries if t.reliability["reliable"] and (p := _p50(t)) is not None and p > 0]
    if len(p50s) < 2 or max(p50s) <= UNSTABLE_BETWEEN_ROUNDS * min(p50s):
        return None
    return (
        f"unstable between rounds: p50 {min(p50s):.3g}-{max(p50s):.3g} ms (x{max(p50s) / min(p50s):.1f}); "
        "the fastest round is kept"
    )


def measure_candidates(
    model_ids: Sequence[str],
    config: Any,
    *,
    rebench: bool = False,
    rounds: int = DEFAULT_ROUNDS,
    bench_fn: BenchFn | None = None,
    load_fn: LoadFn | None = None,
    store_path: Any = None,
    on_error: Callable[[str, BaseException], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Measured]:
    """Measure every model with ``config`` (a `BenchConfig`), re-measure in interleaved rounds when unreliable.

    First pass: one `benchmark_model` per model (a reliable stored figure with the same settings is reused unless
    ``rebench``). If any figure is unreliable, ``rounds`` round-robin passes over *all* models follow, with
    ``threads`` = 1 when the machine was busy (OpenMP threads then wait on each other) and ``min_time / rounds``
    each, not stored; each model then keeps its best round (reliable first, then the fastest median, then the
    smallest spread), so all figures come from the same settings. A model whose reliable tries (first pass
    included) differ by more than `UNSTABLE_BETWEEN_ROUNDS` is flagged unreliable (`unstable_reason`). The chosen
    re-measured figures are stored with their reliability.

    Args:
        bench_fn: stands in for `benchmark_model` (tests); called as ``bench_fn(model_id, config, store=, reuse=,
            store_path=, load_fn=)``.
        load_fn: the 1-minute load average source (tests simulate a busy machine with it).
        on_error: called with (model_id, exception) when a model cannot be measured; it is then left out.

    Returns:
        model id -> `Measured`, for the models that could be measured.
    """
    from advisor.bench.runner import benchmark_model

    fn: BenchFn = bench_fn or benchmark_model
    say = say or (lambda _m: None)

    def one(m: str, cfg: Any, *, store: bool, reuse: bool) -> dict[str, Any] | None:
        try:
            res = fn(m, cfg, store=store, reuse=reuse, store_path=store_path, load_fn=load_fn)
        except Exception as e:  # noqa: BLE001 - one failing model must not lose the others
            if on_error:
                on_error(m, e)
            return None
        d = res.to_dict() if hasattr(res, "to_dict") else dict(res)
        d["from_cache"] = bool(getattr(res, "from_cache", d.get("from_cache", False)))
        return d

    first: dict[str, Measured] = {}
    for m in model_ids:
        d = one(m, config, store=True, reuse=not rebench)
        if d is not None:
            first[m] = Measured(d, assess(d), bool(d["from_cache"]), 0, config.threads)
    bad = [m for m, x in first.items() if not x.reliability["reliable"]]
    if not bad or rounds < 1:
        return first
    threads = 1 if any(x.reliability.get("busy") for x in first.values()) else config.threads
    # GMACs do not depend on load: counted once in the first pass, not again in every round.
    rcfg = replace(
        config,
        threads=threads,
        min_time=config.min_time / rounds,
        max_time=config.max_time / rounds,
        count_flops=False,
    )
    say(
        f"latency unreliable for {', '.join(bad)}: re-measuring all {len(first)} candidates in {rounds} "
        f"interleaved rounds (threads {threads or 'default'})"
    )
    tries: dict[str, list[Measured]] = {m: [] for m in first}
    for r in range(1, rounds + 1):
        for m in first:
            d = one(m, rcfg, store=False, reuse=False)
            if d is not None:
                tries[m].append(Measured(d, assess(d), False, r, threads))
    out: dict[str, Measured] = {}
    for m, x in first.items():
        if not tries[m]:
            out[m] = x
            continue
        best = min(tries[m], key=_rank_key)
        if best.record.get("gmacs") is None:
            best.record["gmacs"] = x.record.get("gmacs")
        rel = best.reliability
        why = unstable_reason([x, *tries[m]])
        if why is not None:
            best.record["reliability"] = {**rel, "unstable": True, "reasons": [*rel["reasons"], why]}
            rel = assess(best.record)
        out[m] = replace(best, reliability=rel, rounds=len(tries[m]))
        try:  # stored with its reliability; `reusable` keeps an unreliable one from being served again
            from advisor.bench.store import ResultsStore

            ResultsStore(store_path).put(best.record)
        except Exception as e:  # noqa: BLE001 - a store failure must not lose the figure
            if on_error:
                on_error(m, e)
    return out
