"""`advisor recommend` for dense tasks: the stages of a detection / semantic-segmentation run.

Stages over one `DenseRunState` (each a small function, run in order by `run_dense`):

1. plan: read the data (`advisor.dense.readers`), profile it, draw a seeded image subsample (classes balanced by
   the rarest class each image holds), and choose the rows of the ladder: pretrained dense models whose label set
   overlaps the data's classes (zero-shot), image backbones (proxies) with their random-init twins and the raw-pixel
   floor, and the detector/segmenter architectures to time;
2. latency: every model timed here at the data's working size, pre/post-processing and NMS included
   (`advisor.dense.latency`); ``--max-latency-ms`` excludes;
3. zero-shot: the real metric on the sample (`advisor.metrics`) for the shared classes;
4. proxies: frozen-feature probes (`advisor.dense.proxies`), cached by content;
5. verdict: the ranking by rung, ties from the proxies' intervals, the route (zero-shot / fine-tune a head / new
   head on a backbone) and why (`advisor.dense.verdict`);
6. fine-tune (``--finetune-top K``): short fine-tunes of the route's top K rows on a held-out split of the sample,
   as the confirmation (`advisor.dense.finetune_stage`);
7. results: the typed `DenseResults`, written to the run directory.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.results import DenseCandidate, DenseResults, Role
from advisor.dense.types import BOX_TASKS, DENSE_TASKS, DenseDataset, DenseSample

if TYPE_CHECKING:
    from advisor.recommend.config import RunConfig

log = logging.getLogger(__name__)

ProgressFn = Callable[[str], None]

# images in the subsample without --max-samples (instance segmentation: Mask R-CNN is slow on a CPU)
DEFAULT_DENSE_IMAGES = {"detection": 120, "instance-segmentation": 48, "segmentation": 48}
DEFAULT_BACKBONES = 3  # pretrained backbones probed without --max-candidates
LATENCY_REPEATS = 10


@dataclass
class DenseRunState:
    """What the dense stages hand to each other."""

    cfg: RunConfig
    catalog: Any = None
    t_start: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dataset: DenseDataset | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    sample: DenseDataset | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    working_size: tuple[int, int] = (320, 320)
    rows: list[DenseCandidate] = field(default_factory=list)
    pool: Any = None  # advisor.dense.candidates.ModelPool: backbones loaded once for latency and proxies
    verdict: dict[str, Any] = field(default_factory=dict)
    out: DenseResults | None = None

    @property
    def task(self) -> str:
        """``detection``, ``instance-segmentation`` or ``segmentation``."""
        assert self.dataset is not None
        return self.dataset.task

    def get_sample(self) -> DenseDataset:
        """The subsample (set by the plan stage)."""
        assert self.sample is not None, "the plan stage did not run"
        return self.sample

    def get_pool(self) -> Any:
        """The run's `ModelPool` (created on first use)."""
        if self.pool is None:
            from advisor.dense.candidates import ModelPool

            self.pool = ModelPool(self.cfg.device)
        return self.pool

    def row(self, model_id: str) -> DenseCandidate:
        """The row of `model_id`."""
        return next(r for r in self.rows if r.model_id == model_id)


# ----------------------------------------------------------------------------------------------- plan
def subsample(ds: DenseDataset, n: int, seed: int) -> tuple[DenseDataset, dict[str, Any]]:
    """A seeded subsample of at most `n` images, balanced by the rarest class each image holds.

    Detection (and instance-segmentation) images are keyed by the rarest of their classes (so images holding rare classes are drawn first, in
    turn per class); unlabelled images come last. Segmentation images are drawn uniformly (their classes are only
    known after decoding the masks). Returns the sample and how it was drawn.
    """
    rng = np.random.default_rng(seed)
    samples = list(ds.samples)
    if len(samples) <= n:
        return ds, {"images": len(samples), "of": len(samples), "how": "all images"}
    if ds.task not in BOX_TASKS:
        idx = np.sort(rng.choice(len(samples), size=n, replace=False))
        picked = [samples[i] for i in idx]
        how = f"{n} images drawn uniformly (seed {seed})"
    else:
        picked = _balanced_by_rarest(ds, samples, n, rng)
        how = f"{n} images, classes balanced by the rarest class per image (seed {seed})"
    sub = dataclasses.replace(ds, samples=picked, warnings=list(ds.warnings), skipped=list(ds.skipped))
    return sub, {"images": len(picked), "of": len(samples), "how": how}


def _balanced_by_rarest(
    ds: DenseDataset, samples: list[DenseSample], n: int, rng: np.random.Generator
) -> list[DenseSample]:
    counts = ds.objects_per_class()
    freq = np.asarray([counts[c] for c in ds.classes], dtype=np.float64)
    buckets: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        key = int(min(set(s.labels.tolist()), key=lambda c: freq[c])) if s.n_objects else -1
        buckets.setdefault(key, []).append(i)
    for v in buckets.values():
        rng.shuffle(v)
    order = sorted(buckets, key=lambda k: (k == -1, freq[k] if k >= 0 else 0.0))
    picked: list[int] = []
    while len(picked) < n:
        for k in order:
            if buckets[k] and len(picked) < n:
                picked.append(buckets[k].pop())
    return [samples[i] for i in sorted(picked)]


def working_size(ds: DenseDataset) -> tuple[int, int]:
    """The data's working size (width, height): the median image size."""
    if not ds.samples:
        return (320, 320)
    w = int(np.median([s.width for s in ds.samples]))
    h = int(np.median([s.height for s in ds.samples]))
    return (max(w, 32), max(h, 32))


def plan_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """Read and profile the data, draw the sample, choose the rows of the ladder."""
    from advisor.dense.candidates import choose_rows
    from advisor.dense.profile import profile_dense

    cfg = state.cfg
    t0 = time.perf_counter()
    task = cfg.task if cfg.task in DENSE_TASKS else None
    ds = load_run_dataset(cfg, task)
    state.dataset = ds
    state.profile = profile_dense(ds)
    n = cfg.max_samples or DEFAULT_DENSE_IMAGES[ds.task]
    state.sample, state.sampling = subsample(ds, n, cfg.seed)
    state.working_size = working_size(ds)
    from advisor.recommend.stages.plan import _effective_offline

    offline = _effective_offline(cfg, state.notes)
    state.rows = choose_rows(state.task, ds.classes, cfg, catalog=state.catalog, offline=offline)
    shared_none = [r.model_id for r in state.rows if r.role == Role.ARCH]
    if shared_none:
        state.notes.append(
            f"timed only (random weights: their label sets share no class with the data, they have no label set of "
            f"their own, or their weights need the network): {', '.join(shared_none)}"
        )
    say(
        f"{ds.task} data: {len(ds.samples)} images, {ds.num_classes} classes ({ds.format}); "
        f"sample {state.sampling['images']} images; {len(state.rows)} rows to measure"
    )
    state.timings["plan_s"] = time.perf_counter() - t0
    return state


def load_run_dataset(cfg: RunConfig, task: str | None = None) -> DenseDataset:
    """The run's dense dataset: ``cfg.data`` read for `task` (None: from its format), split and ignore index."""
    from advisor.dense.readers import load_dense

    ignore = 255 if cfg.ignore_index is None else int(cfg.ignore_index)
    return load_dense(cfg.data, task=task, split=cfg.split, ignore_index=ignore)


# ----------------------------------------------------------------------------------------------- latency
def latency_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """Time every dense model and backbone at the working size; apply ``--max-latency-ms``."""
    from advisor.dense.candidates import measure_row_latency

    if not state.cfg.bench:
        state.notes.append("latency not measured (--no-bench)")
        return state
    t0 = time.perf_counter()
    for r in state.rows:
        if r.role in (Role.FLOOR, Role.TWIN) or r.error:  # a twin is its pretrained model's architecture
            continue
        say(f"latency: {r.model_id} at {state.working_size[0]}x{state.working_size[1]}")
        measure_row_latency(
            r, state.working_size, device=state.cfg.device, repeats=LATENCY_REPEATS, pool=state.get_pool(),
            classes=state.dataset.classes if state.dataset is not None else (),
        )  # fmt: skip
        limit = state.cfg.max_latency_ms
        if limit is not None and r.latency_ms is not None and r.latency_ms > limit and r.role != Role.TWIN:
            r.error = f"excluded: p50 {r.latency_ms:.1f} ms > --max-latency-ms {limit:g}"
    state.timings["latency_s"] = time.perf_counter() - t0
    return state


# ----------------------------------------------------------------------------------------------- zero-shot
def zero_shot_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """The real metric of each pretrained dense model on the sample, for the classes both label sets share."""
    from advisor.dense.zero_shot import evaluate_zero_shot

    t0 = time.perf_counter()
    for r in state.rows:
        if r.role != Role.ZERO_SHOT or r.error:
            continue
        say(f"zero-shot: {r.model_id} on {len(state.get_sample().samples)} images")
        evaluate_zero_shot(r, state.get_sample(), device=state.cfg.device)
    state.timings["zero_shot_s"] = time.perf_counter() - t0
    return state


# ----------------------------------------------------------------------------------------------- proxies
def proxy_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """Frozen-feature proxies for backbones, twins and the raw-pixel floor (cached by content); box tasks add the
    ROI probe beside the crop probe (``proxy["roi_probe"]``; its failure is recorded there, never on the row)."""
    from advisor.dense.proxy_cache import cached_proxy, cached_roi_proxy

    t0 = time.perf_counter()
    sample = state.get_sample()
    kw = {"seed": state.cfg.seed, "device": state.cfg.device, "pool": state.get_pool()}
    boxes = state.task in BOX_TASKS
    for r in state.rows:
        if r.role not in (Role.BACKBONE, Role.TWIN, Role.FLOOR) or r.error:
            continue
        if r.role == Role.FLOOR and not state.cfg.baselines:
            continue
        say(f"proxy: {r.model_id} ({'crop probe' if boxes else 'pixel probe'})")
        try:
            r.proxy = cached_proxy(r, sample, **kw)
        except Exception as e:  # one row failing never loses the others
            r.error = f"proxy failed: {_proxy_error(e)}"
            continue
        if boxes and state.cfg.roi_probe:
            say(f"proxy: {r.model_id} (ROI probe)")
            try:
                r.proxy["roi_probe"] = cached_roi_proxy(r, sample, **kw)
            except Exception as e:
                r.proxy["roi_probe"] = {"kind": "roi-probe", "value": None, "error": _proxy_error(e)}
    state.get_pool().clear()
    if boxes and not state.cfg.roi_probe:
        state.notes.append(
            "ROI probe not run (--no-roi-probe): the detection proxies are the crop probe only"
        )
    state.timings["proxy_s"] = time.perf_counter() - t0
    return state


def _proxy_error(e: Exception) -> str:
    """The first line of a proxy's expected failure; anything else is re-raised (a bug, not a data problem)."""
    from advisor.errors import AdvisorError

    if not isinstance(e, AdvisorError | RuntimeError | ValueError | OSError):
        raise e
    return str(e).splitlines()[0] if str(e) else type(e).__name__


# ----------------------------------------------------------------------------------------------- verdict, results
def verdict_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """Rank by rung, mark ties, choose the route and the reasons (`advisor.dense.verdict`)."""
    from advisor.dense.verdict import decide

    assert state.dataset is not None
    state.verdict = decide(state.rows, state.dataset, state.cfg, state.notes, len(state.get_sample().samples))
    return state


def results_stage(state: DenseRunState, say: ProgressFn) -> DenseResults:
    """The `DenseResults` of the run, written to the run directory unless ``out`` is None."""
    from advisor.bench.hardware import hardware_fingerprint
    from advisor.versions import library_versions

    assert state.dataset is not None
    ds = state.dataset
    state.timings["total_s"] = time.perf_counter() - state.t_start
    res = DenseResults(
        task=ds.task,
        dataset={
            "path": str(ds.root),
            "format": ds.format,
            "classes": list(ds.classes),
            "images": len(ds.samples),
            "fingerprint": ds.fingerprint(),
            "sampling": state.sampling,
            "working_size": list(state.working_size),
            "profile": state.profile,
            "warnings": [w.to_dict() for w in ds.warnings],
        },
        config=state.cfg.to_dict(),
        candidates=state.rows,
        verdict=state.verdict,
        notes=state.notes,
        hardware=dict(hardware_fingerprint()),
        timings=state.timings,
        versions=library_versions(),
    )
    if state.cfg.out:
        from pathlib import Path

        from advisor.errors import ResultsNotSaved, StorageError
        from advisor.recommend.stages.results import default_out
        from advisor.report.dense import write_dense_dir

        out = default_out(ds.root.name or ds.task) if state.cfg.out == "auto" else Path(state.cfg.out)
        try:
            write_dense_dir(res, out)
        except StorageError as e:  # the ranking is computed: hand it back with the error, to be shown
            raise ResultsNotSaved(e.message, hint=e.hint, results=res) from e
        say(f"wrote {out}")
    return res


def finetune_stage(state: DenseRunState, say: ProgressFn) -> DenseRunState:
    """``--finetune-top K``: short fine-tunes of the verdict's top rows on a held-out split of the sample, their
    figures on the rows and the outcome in the verdict (`advisor.dense.finetune_stage`)."""
    if state.cfg.finetune_top <= 0:
        return state
    from advisor.dense.finetune_stage import finetune_stage as run_finetunes

    return run_finetunes(state, say)


STAGES = (plan_stage, latency_stage, zero_shot_stage, proxy_stage, verdict_stage, finetune_stage)


def run_dense(cfg: RunConfig, *, progress_fn: ProgressFn | None = None, catalog: Any = None) -> DenseResults:
    """A dense recommend run for `cfg`: each stage of `STAGES` in turn over one `DenseRunState`, then results."""
    say = progress_fn or (lambda _m: None)
    state = DenseRunState(cfg, catalog=catalog)
    for stage in STAGES:
        state = stage(state, say)
    return results_stage(state, say)
