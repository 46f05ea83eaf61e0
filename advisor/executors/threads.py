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
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING

from advisor.errors import UsageError
from advisor.recommend.work import Executor, evaluate_candidate

if TYPE_CHECKING:
    from advisor.recommend.work import CandidateOutcome, CandidateSpec, OnStart, WorkContext


class ThreadExecutor(Executor):
    """Evaluate candidates with `workers` threads (default: 2, at most the CPU count)."""

    def __init__(self, workers: int | None = None) -> None:
        n = workers if workers is not None else min(2, os.cpu_count() or 1)
        if n < 1:
            raise UsageError(f"the threads executor needs at least 1 worker (got {n})")
        self.workers = int(n)

    def outcomes(
        self, specs: Sequence[CandidateSpec], context: WorkContext | None, on_start: OnStart
    ) -> Iterator[tuple[int, CandidateOutcome]]:
        """``(index, outcome)`` as the threads finish them (`Executor.run` puts them in spec order)."""
        lock = threading.Lock()

        def work(i: int, spec: CandidateSpec) -> CandidateOutcome:
            with lock:  # progress lines from one thread at a time
                on_start(i + 1, spec)
            return evaluate_candidate(spec, context)

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="advisor-candidate") as pool:
            futures = {pool.submit(work, i, spec): i for i, spec in enumerate(specs)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
