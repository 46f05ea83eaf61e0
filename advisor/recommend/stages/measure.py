"""Stage 3: measured latency/memory of the candidates that have features, and the resource limits."""

from __future__ import annotations

import time
from typing import Any

from advisor.errors import AdvisorError
from advisor.recommend.config import ProgressFn
from advisor.recommend.measure import _bench, apply_resource_limits
from advisor.recommend.state import RunState


def measure(state: RunState, say: ProgressFn) -> RunState:
    """Bench every candidate with features (unless ``--no-bench``), then drop those over the limits."""
    cfg, results, notes = state.cfg, state.results, state.notes
    t0 = time.perf_counter()
    alive = list(state.feats)
    if cfg.bench:

        def bench_failed(m: str, e: BaseException) -> None:
            msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
            notes.append(f"{m}: latency not measured ({msg})")

        say(f"bench: {len(alive)} candidate(s) at batch {cfg.latency_batch_size}")
        for m, b in _measured(state, alive, bench_failed, say).items():
            results[m].bench = b
            results[m].cached["bench"] = bool(b.get("cached"))
        flagged = [m for m in alive if (results[m].bench or {}).get("reliable") is False]
        if flagged:
            notes.append(
                "latency unreliable (marked ?) for "
                + ", ".join(f"{m} ({(results[m].bench or {}).get('unreliable_reason')})" for m in flagged)
                + ": no 'faster' claim rests on these figures; rerun on an idle machine, or with --threads 1 "
                "--rebench"
            )
    apply_resource_limits([results[m] for m in alive], cfg, notes)
    state.alive = [m for m in alive if results[m].status != "excluded"]
    state.timings["bench"] = time.perf_counter() - t0
    return state


def _measured(state: RunState, alive: list[str], on_error: Any, say: ProgressFn) -> dict[str, Any]:
    """The benchmarks of `alive`: on the executor's benchmark slots when it has them, else here."""
    remote = getattr(state.executor, "bench", None)
    if callable(remote):
        got = remote(alive, state.cfg, on_error=on_error, say=say)
        if got is not None:
            state.notes.append(
                "latency measured by benchmark tasks, one at a time per node; each figure carries its node's "
                "hardware fingerprint"
            )
            return dict(got)
        state.notes.append(
            "latency measured on the driver: no cluster node offers the advisor_bench resource (start nodes with "
            "ray start --resources '{\"advisor_bench\": 1}' for exclusive benchmarks)"
        )
    return dict(_bench(alive, state.cfg, on_error=on_error, say=say))
