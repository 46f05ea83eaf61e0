"""`ThreadExecutor`: candidates evaluated by a pool of threads in this process.

Each thread runs `advisor.recommend.work.evaluate_candidate` on one spec, sharing the loaded dataset; torch and
NumPy release the GIL in their kernels, so feature extraction of a small model overlaps with another's. Outcomes
are handed to ``on_done`` in the order of the specs, as soon as every earlier one is in, so the run's notes and
results do not depend on which thread finished first: the results equal the serial executor's.

Caches are written by the thread that computed the entry; writes are atomic (`advisor.io`), and two threads never
compute the same candidate (specs are distinct models).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from advisor.errors import UsageError
from advisor.recommend.work import CandidateOutcome, CandidateSpec, WorkContext, evaluate_candidate


class ThreadExecutor:
    """Evaluate candidates with `workers` threads (default: 2, at most the CPU count)."""

    def __init__(self, workers: int | None = None) -> None:
        n = workers if workers is not None else min(2, os.cpu_count() or 1)
        if n < 1:
            raise UsageError(f"the threads executor needs at least 1 worker (got {n})")
        self.workers = int(n)

    def run(
        self,
        specs: Sequence[CandidateSpec],
        *,
        context: WorkContext | None = None,
        on_start: Callable[[int, CandidateSpec], None] | None = None,
        on_done: Callable[[CandidateOutcome], None] | None = None,
    ) -> list[CandidateOutcome]:
        """Evaluate every spec (see `advisor.recommend.work.Executor.run`); outcomes in the order of `specs`."""
        if not specs:
            return []
        lock = threading.Lock()

        def work(i: int, spec: CandidateSpec) -> CandidateOutcome:
            if on_start is not None:
                with lock:  # progress lines from one thread at a time
                    on_start(i, spec)
            return evaluate_candidate(spec, context)

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="advisor-candidate") as pool:
            futures: list[Future[CandidateOutcome]] = [
                pool.submit(work, i, spec) for i, spec in enumerate(specs, 1)
            ]
            out = []
            for fut in futures:  # in spec order: each waits for its own, later ones keep running meanwhile
                outcome = fut.result()
                if on_done is not None:
                    on_done(outcome)
                out.append(outcome)
        return out
