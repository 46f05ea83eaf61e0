"""One candidate's features + scores as a pure function of a serialisable `CandidateSpec`, and the executors."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from advisor.data.spec import ReaderOptions
from advisor.errors import AdvisorError, DatasetError, UsageError
from advisor.io import check_fields, field_names
from advisor.recommend.config import CACHE_VERSION
from advisor.recommend.records import ScoreRecord
from advisor.recommend.signals import _logits, _score_dict, domain_signals
from advisor.recommend.store import _cache_get, _cache_put, feature_key

R = TypeVar("R")


@dataclass(frozen=True)
class CandidateSpec(ReaderOptions):
    """Everything one candidate's work depends on; JSON round-trips (`to_dict`/`from_dict`) for any executor.

    The dataset is named by path, reader options (`ReaderOptions`, keyword-only) and fingerprint (checked when the
    worker loads it), the subsample by its sample ids (in order). ``timeout_s``: wall-clock limit of the work,
    None = no limit.
    """

    model_id: str
    data_path: str
    dataset_fingerprint: str
    sample_ids: tuple[str, ...]
    ids_hash: str
    task: str = "classification"
    device: str = "auto"
    batch_size: int = 32
    runtime: str = "eager"
    offline: bool = False
    progress: bool = False
    scores: tuple[str, ...] = ()
    seed: int = 0
    timeout_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["sample_ids"], d["scores"] = list(self.sample_ids), list(self.scores)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateSpec:
        """Rebuild from `to_dict`. Raises UsageError on unknown or missing fields."""
        check_fields(
            cls, d, lambda unknown: UsageError(f"candidate spec has unknown field(s): {', '.join(unknown)}")
        )
        try:
            return cls(**(d | {"sample_ids": tuple(d["sample_ids"]), "scores": tuple(d.get("scores") or ())}))
        except (KeyError, TypeError) as e:
            raise UsageError(f"candidate spec is incomplete: {e}") from None


@dataclass
class CandidateOutcome:
    """The typed result of one candidate's work. ``features`` (the in-process `FeatureSet`) is not serialised:
    a remote executor leaves it None and later stages read the features back from the features cache."""

    model_id: str
    ok: bool
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # for the results' notes, in order
    messages: list[str] = field(default_factory=list)  # progress lines
    feature_key: str | None = None
    feature_dim: int | None = None
    scores: dict[str, ScoreRecord] = field(default_factory=dict)
    domain: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    features: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the in-process features)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "features"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateOutcome:
        """Rebuild from `to_dict` (``features`` None)."""
        names = field_names(cls) - {"features"}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class WorkContext:
    """What a worker in the same process may reuse instead of reloading: the loaded dataset and its subsample."""

    dataset: Any
    samples: list[Any]


class CandidateTimeout(BaseException):
    """A candidate's work ran past its deadline (a BaseException, so that no ``except Exception`` swallows it)."""


def run_with_deadline(fn: Callable[[], R], seconds: float | None) -> R:
    """``fn()``, or `CandidateTimeout` once `seconds` have passed (None: no limit).

    In the main thread on POSIX a SIGALRM timer interrupts `fn` at its next Python instruction (a native call
    is interrupted when it returns to Python); elsewhere `fn` runs in a daemon thread that is abandoned, still
    running, when the deadline passes.
    """
    if seconds is None:
        return fn()
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _deadline_by_alarm(fn, seconds)
    return _deadline_by_thread(fn, seconds)


def _deadline_by_alarm(fn: Callable[[], R], seconds: float) -> R:
    done = False

    def on_alarm(signum: int, frame: Any) -> None:
        if not done:  # an alarm landing after `fn` returned must not break the clean-up below
            raise CandidateTimeout(seconds)

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        value = fn()
        done = True
        return value
    finally:
        done = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # someone else's timer was running: re-arm what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 1e-3))


def _deadline_by_thread(fn: Callable[[], R], seconds: float) -> R:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    t = threading.Thread(target=target, name="advisor-candidate", daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise CandidateTimeout(seconds)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def evaluate_candidate(spec: CandidateSpec, context: WorkContext | None = None) -> CandidateOutcome:
    """Features, transferability scores and dataset-similarity signals of one candidate (cached).

    Args:
        spec: the candidate and everything its figures depend on.
        context: the loaded dataset and subsample when the caller has them (same process); None: load the dataset
            named by the spec and check its fingerprint.

    Returns:
        A `CandidateOutcome`; a model that fails (or runs past ``spec.timeout_s``) gives ``ok=False`` with the
        error and a note, never an exception.
    """
    try:
        return run_with_deadline(
            lambda: _features_and_scores(spec, context or load_context(spec)), spec.timeout_s
        )
    except CandidateTimeout:
        msg = f"timed out after {spec.timeout_s:g} s (candidate_timeout_s)"
        return CandidateOutcome(
            spec.model_id,
            ok=False,
            error=msg,
            notes=[f"{spec.model_id} skipped: {msg}"],
            messages=[f"  skipped {spec.model_id}: {msg}"],
        )


def load_context(spec: CandidateSpec) -> WorkContext:
    """Load the dataset the spec names, check it is the one planned, and pick its subsample by id."""
    from advisor.recommend.config import RunConfig
    from advisor.tasks import get_task

    cfg = RunConfig(data=spec.data_path, **spec.reader_options())
    dataset = get_task(spec.task).load_dataset(cfg)
    if dataset.fingerprint != spec.dataset_fingerprint:
        raise DatasetError(
            f"{spec.data_path}: the dataset changed since the run was planned (fingerprint differs)",
            hint="rerun `advisor recommend`",
        )
    by_id = {s.id: s for s in dataset.samples}
    return WorkContext(dataset, [by_id[i] for i in spec.sample_ids])


def _features_and_scores(spec: CandidateSpec, ctx: WorkContext) -> CandidateOutcome:
    from advisor.features import extract_features

    m = spec.model_id
    t1 = time.perf_counter()
    try:
        fs = extract_features(
            ctx.dataset,
            m,
            samples=ctx.samples,
            device=spec.device,
            batch_size=spec.batch_size,
            progress=spec.progress,
            offline=spec.offline,
            runtime=spec.runtime,
        )
    except AdvisorError as e:
        return CandidateOutcome(
            m,
            ok=False,
            error=str(e),
            notes=[f"{m} skipped: {e.message}"],
            messages=[f"  skipped {m}: {e.message}"],
        )
    except Exception as e:  # a broken model must not sink the run
        return CandidateOutcome(
            m,
            ok=False,
            error=f"{type(e).__name__}: {e}"[:500],
            notes=[f"{m} skipped: unexpected {type(e).__name__}: {str(e)[:200]}"],
        )
    out = CandidateOutcome(m, ok=True, features=fs)
    out.timings["features"] = time.perf_counter() - t1
    out.cached["features"] = bool((getattr(fs, "meta", None) or {}).get("cache_hit"))
    out.feature_dim = int(fs.features.shape[1])
    out.feature_key = feature_key(fs, m, spec.dataset_fingerprint, spec.ids_hash)
    _scores(fs, spec, out)
    return out


def _scores(fs: Any, spec: CandidateSpec, out: CandidateOutcome) -> None:
    """Scores and similarity signals of the features `fs`, from the scores cache when it has them."""
    from advisor.io import stable_hash

    # "sv": score semantics (2: no second softmax of probability outputs, degenerate-score flags)
    skey = stable_hash(
        {"v": CACHE_VERSION, "sv": 2, "f": out.feature_key, "scores": list(spec.scores), "seed": spec.seed}
    )
    cached = _cache_get("scores", skey)
    out.cached["scores"] = cached is not None
    if cached is None:
        t1 = time.perf_counter()
        lkind = (getattr(fs, "meta", None) or {}).get("logits_kind")
        cached = {"scores": {}, "domain": domain_signals(np.asarray(fs.features), _logits(fs), lkind)}
        try:
            from advisor.scores import compute_scores

            is_p = lkind == "probabilities"
            sc = compute_scores(
                fs.features,
                fs.labels,
                logits=None if is_p else _logits(fs),
                probs=_logits(fs) if is_p else None,
                metrics=list(spec.scores),
                seed=spec.seed,
            )
            cached["scores"] = {k: _score_dict(v) for k, v in sc.items()}
            failed = False
        except Exception as e:  # scores inform the shortlist; a failure must not sink the run
            msg = e.message if isinstance(e, AdvisorError) else f"{type(e).__name__}: {str(e)[:200]}"
            out.notes.append(f"{spec.model_id}: scores failed: {msg}")
            failed = True
        cached["seconds"] = time.perf_counter() - t1
        if not failed:  # a failure is retried on the next run, not cached
            _cache_put("scores", skey, cached)
    out.scores = cached["scores"]
    out.domain = cached["domain"]
    out.timings["scores"] = cached.get("seconds", 0.0)


OnStart = Callable[[int, CandidateSpec], None]
OnDone = Callable[[CandidateOutcome], None]


class Executor:
    """Runs candidate work; results come back in the order of `specs`.

    A subclass yields ``(index, outcome)`` from `outcomes` in any order (as its candidates finish); `run` hands
    each outcome to ``on_done`` in the order of the specs, as soon as every earlier one is in, so a run's notes and
    results do not depend on which candidate finished first. Any object with this `run` serves as an executor.
    """

    def run(
        self,
        specs: Sequence[CandidateSpec],
        *,
        context: WorkContext | None = None,
        on_start: OnStart | None = None,
        on_done: OnDone | None = None,
    ) -> list[CandidateOutcome]:
        """Evaluate every spec (`evaluate_candidate`).

        `on_start(i, spec)` (i 1-based) is called before a candidate starts, `on_done(outcome)` when it is done.
        """
        done: dict[int, CandidateOutcome] = {}
        released = 0
        for i, outcome in self.outcomes(specs, context, on_start or _no_start):
            done[i] = outcome
            while released < len(specs) and released in done:
                if on_done is not None:
                    on_done(done[released])
                released += 1
        return [done[i] for i in range(len(specs))]

    def outcomes(
        self, specs: Sequence[CandidateSpec], context: WorkContext | None, on_start: OnStart
    ) -> Iterator[tuple[int, CandidateOutcome]]:
        """``(index into specs, outcome)`` for every spec, in the order they finish."""
        raise NotImplementedError


def _no_start(i: int, spec: CandidateSpec) -> None:
    del i, spec


class SerialExecutor(Executor):
    """The default executor: one candidate after the other in this process, reusing the loaded dataset."""

    def outcomes(
        self, specs: Sequence[CandidateSpec], context: WorkContext | None, on_start: OnStart
    ) -> Iterator[tuple[int, CandidateOutcome]]:
        """Each spec in order."""
        for i, spec in enumerate(specs):
            on_start(i + 1, spec)
            yield i, evaluate_candidate(spec, context)
