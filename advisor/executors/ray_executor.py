"""`RayExecutor`: each candidate's features + scores as a Ray task, on a local instance or a cluster.

The driver (this process) stays the only writer of the cache and of the run directory: a task evaluates its
candidate in a scratch cache and sends back the outcome and its files (`advisor.executors.scratch`), which the
driver merges. Candidates whose features this cache already holds are evaluated here, without a task. Results come
back as they finish (``ray.wait``) and are handed to ``on_done`` in the order of the specs, as soon as every
earlier one is in, so a run's notes and results do not depend on which task finished first.

Failures: a task whose worker dies (killed, out of memory, node lost) is retried ``max_retries`` times by Ray; an
exception in the task, a spent retry budget or a task past its deadline (``timeout_s`` of the spec plus
``grace_s``; the task is then cancelled) gives that candidate a failed outcome, never losing the others.

Privacy: usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) before Ray starts, and a local instance
starts without the dashboard and with loopback as its node address. Ray still listens on every interface (its
gRPC ports take no bind address), and the API server it always starts asks the cloud metadata endpoints which cloud
it runs on (``169.254.169.254``, a DNS look-up of ``metadata.google.internal``) whatever the usage-statistics
setting; where nothing may leave the machine, run inside a loopback-only network namespace
(``unshare -rn sh -c 'ip link set lo up && advisor recommend ... --executor ray'``), as the tests do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from advisor.errors import AdvisorError, UsageError
from advisor.executors.ray_bench import BENCH_RESOURCE, has_bench_slots, run_benches
from advisor.executors.scratch import load_features, merge_files, remote_work
from advisor.recommend.work import (
    CandidateOutcome,
    CandidateSpec,
    Executor,
    OnStart,
    WorkContext,
    evaluate_candidate,
)

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SHIP_CHOICES = ("auto", "always", "never")


@dataclasses.dataclass
class RayExecutor(Executor):
    """Runs candidates as Ray tasks (see the module docstring); the same `Executor` protocol as `SerialExecutor`.

    Args:
        address: the cluster to join (``auto``, ``ray://host:port``, ``host:port``); None: start a local instance
            (every CPU and GPU of this machine unless `num_cpus` / `num_gpus` say otherwise), shut down after
            each run. Joining a running instance (or one this process already started) leaves it running.
        num_gpus_per_candidate: GPUs (a fraction allowed) each task asks for; None: 1 when the cluster has a GPU
            (its whole GPU when it has less than one), else 0 (the task then runs on the CPU).
        num_cpus_per_candidate: CPUs each task asks for (Ray's scheduling unit; see `cpu_threads`).
        max_retries: retries of a task whose worker died (system failures; an exception is never retried).
        grace_s: seconds past the spec's ``timeout_s`` after which the driver cancels a task that has not
            stopped by itself.
        max_in_flight: tasks submitted at a time (None: as many as the cluster's CPUs and GPUs fit), so that a
            task starts when it is submitted and its deadline counts from then.
        cpu_threads: torch and BLAS (OpenMP, OpenBLAS, MKL) threads in each task (None: as many torch threads as
            this process uses, so that a candidate's features and scores are the very bits a serial run computes:
            float sums depend on the thread count).
        num_cpus, num_gpus: the resources of a local instance (None: Ray detects them).
        include_dashboard: start Ray's dashboard with a local instance (off unless asked).
        ship_data: how tasks get the data: ``never`` (by path: a shared filesystem, fingerprint checked in the
            task), ``always`` (the subsample's bytes put into the object store once, unpacked by each task), or
            ``auto`` (ship when the cluster has more than one node).
        work: the function a task runs (`advisor.executors.scratch.remote_work`; tests replace it).
    """

    address: str | None = None
    num_gpus_per_candidate: float | None = None
    num_cpus_per_candidate: float = 1.0
    max_retries: int = 2
    grace_s: float = 30.0
    max_in_flight: int | None = None
    cpu_threads: int | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    include_dashboard: bool = False
    ship_data: str = "auto"
    work: Callable[..., dict[str, Any]] = remote_work
    startup_s: float | None = dataclasses.field(
        default=None, init=False
    )  # the last `ray.init` (None: running already)

    def outcomes(
        self, specs: Sequence[CandidateSpec], context: WorkContext | None, on_start: OnStart
    ) -> Iterator[tuple[int, CandidateOutcome]]:
        """Cached candidates here, the others as tasks, as they finish (`Executor.run` puts them in order)."""
        remote = []
        for i, spec in enumerate(specs):
            if context is not None and features_cached(spec, context):
                on_start(i + 1, spec)
                yield i, evaluate_candidate(spec, context)
            else:
                remote.append(i)
        if remote:
            with self.session() as ray:
                data = self._shipped(ray, context)
                yield from self._run_tasks(ray, specs, remote, on_start, data)

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """The `ray` module, initialised (usage statistics off); a Ray started here is shut down on exit."""
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before `import ray`: nothing is reported anywhere
        import ray

        if ray.is_initialized():
            self.startup_s = None
            yield ray
            return
        t0 = time.perf_counter()
        ray.init(**self._init_options())
        self.startup_s = time.perf_counter() - t0
        log.info("ray: started in %.1f s (%s)", self.startup_s, self.address or "local instance")
        try:
            yield ray
        finally:
            ray.shutdown()

    def _init_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.address is not None:
            return opts | {"address": self.address}
        return opts | {
            "include_dashboard": self.include_dashboard,
            "_node_ip_address": LOOPBACK,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "resources": {BENCH_RESOURCE: 1},  # one benchmark at a time on this node
        }

    def _task_options(self, ray: Any) -> tuple[dict[str, Any], int]:
        """The options of every task, and how many tasks to keep in flight."""
        total = ray.cluster_resources()
        gpus = self.num_gpus_per_candidate
        if gpus is None:
            gpus = min(1.0, float(total.get("GPU", 0.0)))
        cpus = self.num_cpus_per_candidate
        fits = [int(total.get("CPU", 1.0) // cpus)] if cpus > 0 else []
        if gpus > 0:
            fits.append(int(total.get("GPU", 0.0) // gpus))
        width = self.max_in_flight or max(1, min(fits, default=1))
        threads = str(
            self.cpu_threads or _driver_threads()
        )  # read when a worker process starts, so set there
        env = {k: threads for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        opts = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": self.max_retries}
        return opts | {"runtime_env": {"env_vars": env}}, width

    def _run_tasks(
        self,
        ray: Any,
        specs: Sequence[CandidateSpec],
        todo: list[int],
        on_start: OnStart,
        data: Any = None,
    ) -> Iterator[tuple[int, CandidateOutcome]]:
        """Submit the `todo` specs, at most the in-flight width at a time, and collect them as they finish."""
        options, width = self._task_options(ray)
        task = ray.remote(self.work)
        has_gpu = float(ray.cluster_resources().get("GPU", 0.0)) > 0
        threads = self.cpu_threads or _driver_threads()
        queue = deque(todo)
        pending: dict[Any, tuple[int, float | None]] = {}
        while queue or pending:
            while queue and len(pending) < width:
                i = queue.popleft()
                on_start(i + 1, specs[i])
                spec = dataclasses.replace(specs[i], progress=False)  # no progress bars from workers
                opts = options | self._resources(spec, has_gpu)
                args = (spec.to_dict(), threads) if data is None else (spec.to_dict(), threads, data)
                pending[task.options(**opts).remote(*args)] = (i, self._deadline(specs[i]))
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_wait_s(pending))
            for ref in ready:
                i, _ = pending.pop(ref)
                yield i, _collect(ray, ref, specs[i])
            now = time.monotonic()
            for ref, (i, deadline) in list(pending.items()):
                if deadline is not None and now > deadline:
                    ray.cancel(ref, force=True)
                    del pending[ref]
                    yield (
                        i,
                        failed(specs[i], f"timed out after {specs[i].timeout_s:g} s (candidate_timeout_s)"),
                    )

    def _shipped(self, ray: Any, context: WorkContext | None) -> Any:
        """The subsample put into the object store once (`advisor.executors.shipping`), or None: tasks read the
        dataset by path. ``ship_data``: ``always``, ``never``, or ``auto`` (when the cluster has more than one
        node, whose filesystems may differ)."""
        if self.ship_data not in SHIP_CHOICES:
            raise UsageError(f"ship_data {self.ship_data!r} is not one of {', '.join(SHIP_CHOICES)}")
        if context is None or self.ship_data == "never":
            return None
        if self.ship_data == "auto" and sum(1 for n in ray.nodes() if n.get("Alive")) < 2:
            return None
        from advisor.executors.shipping import pack_subsample

        try:
            pack = pack_subsample(context)
        except (OSError, ValueError) as e:
            log.warning("ray: the subsample is not shipped (%s); tasks read the dataset by path", e)
            return None
        log.info("ray: %d files (%.1f MB) of the subsample put into the object store", len(pack["files"]),
                 pack["bytes"] / 1e6)  # fmt: skip
        return ray.put(pack)

    def _resources(self, spec: CandidateSpec, has_gpu: bool) -> dict[str, Any]:
        """This candidate's GPU fraction and memory (`advisor.executors.resources`; its catalog entry's size)."""
        from advisor.catalog.store import load_catalog
        from advisor.errors import AdvisorError
        from advisor.executors.resources import candidate_resources

        try:
            entry = load_catalog().get(spec.model_id)
        except (AdvisorError, KeyError):
            entry = None  # a local file or a model the catalog does not list: the unknown-size rule
        r = candidate_resources(
            entry,
            modality=spec.modality,
            cluster_has_gpu=has_gpu,
            gpus_per_candidate=self.num_gpus_per_candidate,
            cpus_per_candidate=self.num_cpus_per_candidate,
        )
        log.info("ray: %s asks for %s", spec.model_id, r.why)
        return {"num_gpus": r.num_gpus, "memory": r.memory}

    def bench(
        self,
        model_ids: Sequence[str],
        cfg: Any,
        *,
        on_error: Callable[[str, BaseException], None] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> dict[str, Any] | None:
        """Latency/memory of `model_ids` as benchmark tasks with exclusive placement (`advisor.executors.
        ray_bench`); None when no node offers a benchmark slot (the caller then benchmarks on the driver)."""
        with self.session() as ray:
            if not has_bench_slots(ray):
                return None
            return run_benches(ray, model_ids, cfg, on_error=on_error, say=say)

    def _deadline(self, spec: CandidateSpec) -> float | None:
        return None if spec.timeout_s is None else time.monotonic() + spec.timeout_s + self.grace_s


def _driver_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _wait_s(pending: dict[Any, tuple[int, float | None]]) -> float | None:
    """How long `ray.wait` may block: until the nearest deadline (None: until a task finishes)."""
    deadlines = [d for _, d in pending.values() if d is not None]
    return None if not deadlines else max(0.0, min(deadlines) - time.monotonic()) + 0.05


def _collect(ray: Any, ref: Any, spec: CandidateSpec) -> CandidateOutcome:
    """The outcome of a finished task, its cache files merged here; a failed task gives a failed outcome."""
    from ray.exceptions import RayError, RayTaskError

    try:
        payload = ray.get(ref)
    except RayTaskError as e:
        cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
        msg = cause.message if isinstance(cause, AdvisorError) else f"{type(cause).__name__}: {cause}"
        return failed(spec, msg[:500])
    except RayError as e:  # the worker died and the retries are spent, the node was lost, ...
        return failed(spec, f"task lost ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    outcome = CandidateOutcome.from_dict(payload["outcome"])
    try:
        merge_files(payload["files"])
    except (AdvisorError, ValueError) as e:
        return failed(spec, f"cannot store its results: {e}")
    outcome.features = load_features(outcome)
    return outcome


def failed(spec: CandidateSpec, msg: str) -> CandidateOutcome:
    """A failed outcome of `spec` with `msg`, noted the way `evaluate_candidate` notes its own failures."""
    m = spec.model_id
    return CandidateOutcome(
        m, ok=False, error=msg, notes=[f"{m} skipped: {msg}"], messages=[f"  skipped {m}: {msg}"]
    )


def features_cached(spec: CandidateSpec, ctx: WorkContext) -> bool:
    """Whether this cache holds the features `evaluate_candidate` would compute for `spec` (no model is loaded).

    Mirrors the index look-up of `advisor.features.extract_features` (default precision, pretrained weights).
    """
    from advisor.features import store
    from advisor.io import stable_hash
    from advisor.runtime import resolve_device

    ds = ctx.dataset
    data_key: dict[str, Any] = {
        "dataset": ds.fingerprint,
        "modality": ds.modality,
        "ids": stable_hash([s.id for s in ctx.samples], length=32),
    }
    if ds.modality == "audio":
        from advisor.data.media import max_audio_seconds

        data_key["audio_max_seconds"] = max_audio_seconds()
    try:
        key = store.index_key(
            spec.model_id, True, "auto", resolve_device(spec.device).type, data_key, spec.runtime
        )
        entry = store.read_index(store.index_path(key))
    except (AdvisorError, OSError, ValueError):
        return False
    return entry is not None and store.entry_paths(entry)[1].is_file()
