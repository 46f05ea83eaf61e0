"""The public Python API: one function per CLI command (each command calls its function); heavy imports on call.

``import advisor`` stays light: these functions import torch, timm or transformers only when they run. They are
reachable as ``advisor.profile``, ``advisor.features``, ``advisor.score``, ``advisor.bench``, ``advisor.recommend``,
``advisor.finetune``, ``advisor.report`` and ``advisor.catalog`` (see `advisor.__init__`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.data.spec import DatasetSpec
from advisor.metrics.run import evaluate_predictions

if TYPE_CHECKING:
    from collections.abc import Callable

    from advisor.bench.runner import BenchConfig, BenchResult
    from advisor.catalog.schema import CatalogEntry
    from advisor.data.profile import DatasetProfile
    from advisor.dense.results import DenseResults
    from advisor.finetune.config import FinetuneConfig, FinetuneResult
    from advisor.recommend.results import RecommendResults
    from advisor.recommend.run import Plan, RunConfig
    from advisor.recommend.work import Executor
    from advisor.scores.registry import ScoreResult
    from advisor.sweep.run import SweepResults

__all__ = [
    "DatasetSpec",
    "bench",
    "build_catalog",
    "build_catalog_community",
    "catalog",
    "catalog_community",
    "catalog_entry",
    "default_finetune_dir",
    "features",
    "finetune",
    "metrics",
    "profile",
    "recommend",
    "report",
    "run_config",
    "sample",
    "score",
]

DataLike = str | Path | DatasetSpec


# ----------------------------------------------------------------------------------------------- data
def profile(
    data: DataLike, *, ignore_index: int | None = 255, **dataset: Any
) -> DatasetProfile | dict[str, Any]:
    """Profile a dataset (`advisor data profile`): counts per class, imbalance, sizes, what was skipped and why.

    Detection/segmentation data (found by `advisor.dense.readers.detect_dense`, or ``task="detection"`` /
    ``"segmentation"``) gives the dict of `advisor.dense.profile.profile_dense` instead (objects per class, size
    split, pixel shares, counted warnings); `ignore_index` is the mask value not scored there.

    Args:
        data: a path or a `DatasetSpec`; ``**dataset`` sets its fields (modality, task, text_column,
            label_column, split, group_column).

    Raises:
        DatasetError: the path cannot be read as given.
    """
    from advisor.data import profile_dataset
    from advisor.dense.profile import profile_if_dense

    spec = DatasetSpec.of(data, **dataset)
    dense = profile_if_dense(
        spec.path, task=spec.task, modality=spec.modality, split=spec.split, ignore_index=ignore_index
    )
    return dense if dense is not None else profile_dataset(spec.load())


def sample(
    data: DataLike,
    *,
    max_per_class: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    **dataset: Any,
) -> dict[str, Any]:
    """The seeded, stratified subsample a run with these caps would use (`advisor data sample`).

    Returns:
        ``root``, ``fingerprint``, the caps and ``seed``, ``n_total``, ``n_selected`` and ``samples`` (id, label,
        split of each chosen sample).

    Raises:
        DatasetError: the path cannot be read as given.
    """
    from advisor.data import stratified_sample

    ds = DatasetSpec.of(data, **dataset).load()
    chosen = stratified_sample(ds, max_per_class=max_per_class, max_samples=max_samples, seed=seed)
    return {
        "root": str(ds.root),
        "fingerprint": ds.fingerprint,
        "seed": seed,
        "max_per_class": max_per_class,
        "max_samples": max_samples,
        "n_total": len(ds.samples),
        "n_selected": len(chosen),
        "samples": [{"id": s.id, "label": s.label, "split": s.split} for s in chosen],
    }


# ----------------------------------------------------------------------------------------------- features, scores
def features(
    data: DataLike, model: str, *, workers: int = 0, progress: bool = False, **options: Any
) -> dict[str, Any]:
    """Extract (cached, resumable) features of `model` on `data` and optionally write them (`advisor features`).

    Args:
        data: a path or a `DatasetSpec` (its modality, text_column, label_column and split are used).
        model: a model id (``timm:...``, ``torchvision:...``, ``hf:org/name``, ``pkg:name``, ``local:/path``).
        workers: DataLoader worker processes (0: the main process).
        progress: a progress bar on stderr.
        **options: of `advisor.features.run_features_command`: ``out`` (write the features to this ``.npz`` or
            ``.safetensors``), ``device``, ``batch_size``, ``max_per_class``, ``max_samples``, ``seed``,
            ``overwrite_strategy``, ``precision``, ``offline`` (None: the environment decides), ``pretrained``
            (False: random weights, nothing downloaded), ``trust_remote_code``, ``runtime`` (``eager`` | ``auto`` |
            ``channels-last`` | ``onnxruntime`` | ``compile``, `advisor.models.runtimes`).

    Returns:
        `FeatureSet.summary()` plus ``out``, ``samples`` and ``sampling``.

    Raises:
        UsageError, DatasetError, ModelLoadError, ResultsError: see `advisor.features.run_features_command`.
    """
    from advisor.features import run_features_command

    return run_features_command(
        data=DatasetSpec.of(data), model=model, num_workers=workers, progress=progress, **options
    )


def score(
    file: str | Path,
    *,
    scores: str | Sequence[str] = "all",
    bootstrap: int = 0,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, ScoreResult]:
    """Transferability scores of one model's saved features on a labelled set (`advisor score`).

    Args:
        file: an ``.npz`` with ``features`` (N, D), ``labels`` (N,) and optional ``logits``/``probs``.
        scores: score names (comma-separated or a sequence), or ``all``.
        bootstrap: stratified bootstrap replicates for a 95 % interval (0: none).

    Returns:
        score name -> `ScoreResult`, in the order asked.

    Raises:
        ScoreError, UsageError: an unreadable file (named) or an unknown score name.
    """
    from advisor.scores.api import score_file

    return score_file(file, metrics=scores, device=device, bootstrap=bootstrap, seed=seed)


# ----------------------------------------------------------------------------------------------- bench
def bench(
    models: str | Sequence[str],
    config: BenchConfig | None = None,
    *,
    store: bool = True,
    reuse: bool = False,
    **settings: Any,
) -> list[BenchResult]:
    """Latency, throughput, memory, cold start and GMACs of each model on this machine (`advisor bench`).

    Args:
        models: one model id or several, all measured with the same settings.
        config: the settings; or give `BenchConfig` fields as ``**settings`` (not both).
        store: append each result to the bench store (``$ADVISOR_CACHE_DIR/bench.sqlite``).
        reuse: return a stored result for identical model, settings and hardware instead of measuring.

    Raises:
        UsageError: both `config` and ``**settings``; BenchError, ModelLoadError from the runner.
    """
    from advisor.bench.runner import BenchConfig, benchmark_model
    from advisor.errors import UsageError

    if config is not None and settings:
        raise UsageError("give either a BenchConfig or its fields as keyword arguments, not both")
    cfg = config if config is not None else BenchConfig(**settings)
    ids = [models] if isinstance(models, str) else list(models)
    return [benchmark_model(m, cfg, store=store, reuse=reuse) for m in ids]


# ----------------------------------------------------------------------------------------------- recommend
def run_config(data: DataLike | None = None, *, demo: bool | str = False, **options: Any) -> RunConfig:
    """The `RunConfig` of a recommend run: `data` (a path or `DatasetSpec`) plus `RunConfig` fields.

    ``demo=True`` uses the bundled Fashion-MNIST sample, offline, on the CPU unless a device is given;
    ``demo="detection"`` / ``"segmentation"`` the generated dense demos (`advisor.dense.demo`), the same way. ``None``
    values keep the field's default; ``models`` and ``scores`` may be comma-separated strings.

    Raises:
        UsageError: no dataset, an unknown option, or a field value `RunConfig` refuses.
    """
    import dataclasses

    from advisor.errors import UsageError
    from advisor.recommend.run import RunConfig

    if demo in ("detection", "segmentation"):
        from advisor.dense.demo import dense_demo_path

        data = dense_demo_path(str(demo))
        options["task"] = str(demo)
    elif isinstance(demo, str) and demo:
        raise UsageError(f"no demo {demo!r}", hint="use --demo, --demo detection or --demo segmentation")
    elif demo:
        from advisor.demo import demo_dataset_path

        data = demo_dataset_path()
    if demo:
        options["offline"] = True
        if options.get("device") in (None, "auto"):
            options["device"] = "cpu"
    if data is None:
        raise UsageError("no dataset given", hint="pass a dataset path, or --demo for the bundled sample")
    if isinstance(data, DatasetSpec):
        options = {**data.reader_options(), "task": data.task, **options}
        data = data.path
    for k in ("models", "scores"):
        v = options.get(k)
        if v is not None and not isinstance(v, tuple):
            options[k] = (
                tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else tuple(v)
            )
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(k for k, v in options.items() if k not in known and v is not None)
    if unknown:
        raise UsageError(f"unknown recommend option(s): {', '.join(unknown)}")
    given = {k: v for k, v in options.items() if k in known and (v is not None or k == "out")}
    return RunConfig(data=str(data), **given)


def recommend(
    data: DataLike | None = None,
    *,
    config: RunConfig | None = None,
    demo: bool | str = False,
    progress_fn: Callable[[str], None] | None = None,
    executor: Executor | str | None = None,
    **options: Any,
) -> RecommendResults | Plan | DenseResults:
    """Rank pretrained models for a labelled dataset on this hardware (`advisor recommend`).

    Args:
        data: a path or a `DatasetSpec` (None with ``demo=True``).
        config: a ready `RunConfig` (then give neither `data` nor options).
        demo: the bundled Fashion-MNIST sample (offline, packaged models, CPU by default).
        progress_fn: receives one-line progress messages.
        executor: runs each candidate's features + scores: an `Executor`, or the name of one
            (`advisor.executors.get_executor`: ``serial``, ``ray``); None: serial. Not part of any cache key.
        **options: `RunConfig` fields (see `run_config`).

    Returns:
        `RecommendResults`, or the `Plan` when ``dry_run=True``.

    Raises:
        UsageError, DatasetError: bad data or options (failing candidates are recorded, not raised).
    """
    from advisor.errors import UsageError
    from advisor.recommend.run import run

    if config is not None and (data is not None or demo or options):
        raise UsageError("give either a RunConfig or the data and options, not both")
    cfg = config if config is not None else run_config(data, demo=demo, **options)
    if isinstance(executor, str):
        from advisor.executors import get_executor

        executor = get_executor(executor)
    return run(cfg, progress_fn=progress_fn, executor=executor)


def sweep(
    datasets: Sequence[str | Path] | None = None,
    *,
    models: Sequence[str] | str = (),
    out: str | Path | None = None,
    file: str | Path | None = None,
    executor: Executor | str | None = None,
    resume: bool = True,
    progress_fn: Callable[[str], None] | None = None,
    **options: Any,
) -> SweepResults:
    """Datasets x models through `recommend` into one folder with a combined report (`advisor sweep`).

    Args:
        datasets: dataset paths (each run in ``<out>/runs/<name>``); or give `file`.
        models: the candidates of every dataset (a list or a comma-separated string; empty: each one's defaults).
        out: the sweep folder: ``sweep.json`` (manifest and rows), ``sweep.csv``, ``sweep.md``, ``sweep.html``
            (None: the file's ``out``, else ``advisor-sweep``).
        file: a TOML/YAML sweep file (`advisor.sweep.config`) instead of `datasets` and `models`; `out` and
            `options` given beside it override the file's.
        executor: runs every dataset's candidates (`recommend`'s executor); resume: read back finished datasets
            whose settings and data are unchanged (a rerun computes only what is missing).
        **options: `RunConfig` fields for every dataset (device, max_samples, seed, offline, ...).

    Raises:
        UsageError: no dataset, a bad sweep file, or options given twice (a failing dataset is a failed cell).
    """
    from advisor.errors import UsageError
    from advisor.sweep.config import load_sweep_file, sweep_config
    from advisor.sweep.run import run_sweep

    if file is not None:
        if datasets or models:
            raise UsageError("give either a sweep file or datasets and models, not both")
        cfg = load_sweep_file(file)
        if out is not None or options:  # what the caller gave beside the file wins over the file
            from dataclasses import replace

            cfg = replace(
                cfg, out=str(out) if out is not None else cfg.out, options={**cfg.options, **options}
            )
    else:
        names = (
            tuple(x.strip() for x in models.split(",") if x.strip()) if isinstance(models, str) else models
        )
        cfg = sweep_config(
            [str(d) for d in datasets or ()], models=names, out=out or "advisor-sweep", **options
        )
    if isinstance(executor, str):
        from advisor.executors import get_executor

        executor = get_executor(executor)
    return run_sweep(cfg, executor=executor, resume=resume, progress_fn=progress_fn)


def report(run_dir: str | Path, *, rewrite: bool = False) -> RecommendResults | DenseResults:
    """A stored recommend run (no recomputation); ``rewrite=True`` re-renders its report files (`advisor report`).

    Render it with `advisor.report.render.render(results, "md" | "csv" | "json" | "html")`, or for a detection /
    segmentation run (a `DenseResults`) with `advisor.report.dense.render_dense`.

    Raises:
        ResultsError: the run directory or its results.json is missing or unreadable.
    """
    from advisor.recommend.results import load_results
    from advisor.report.dense import load_dense_run
    from advisor.report.render import write_run_dir

    dense = load_dense_run(run_dir)
    if dense is not None:
        if rewrite:
            from advisor.report.dense import write_dense_dir

            write_dense_dir(dense, dense.run_dir or run_dir)
        return dense
    res = load_results(run_dir)
    if rewrite:
        write_run_dir(res, res.run_dir or run_dir)
    return res


# ----------------------------------------------------------------------------------------------- finetune
def default_finetune_dir(data: str | Path, model: str, unfreeze: str, seed: int) -> Path:
    """A stable run folder under the cache, so the same command with ``resume=True`` finds its run."""
    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")[:60]
    key = stable_hash(
        {"data": str(Path(data).resolve()), "model": model, "unfreeze": unfreeze, "seed": seed}, 10
    )
    return cache_dir("finetune") / f"{slug}-{unfreeze}-seed{seed}-{key}"


def finetune(
    data: DataLike,
    model: str,
    config: FinetuneConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    offline: bool | None = None,
    pretrained: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> FinetuneResult:
    """Fine-tune `model` on `data` (new linear head; frozen, last-N or all blocks) (`advisor finetune`).

    Args:
        data: a path or a `DatasetSpec`.
        config: the run settings; or give `FinetuneConfig` fields as ``**settings`` (not both).
        out: run folder (checkpoint, state, result.json); None: `default_finetune_dir` under the cache.
        resume: continue the run in `out` from its last completed epoch.
        pretrained: False trains from random weights (smoke tests; the result says so).
        callback: progress events (see `advisor.finetune.loop.train`).

    Raises:
        UsageError, DatasetError, ModelLoadError: bad options, data or model.
    """
    from advisor.errors import UsageError
    from advisor.finetune import FinetuneConfig
    from advisor.finetune import finetune as _finetune

    if config is not None and settings:
        raise UsageError("give either a FinetuneConfig or its fields as keyword arguments, not both")
    cfg = config if config is not None else FinetuneConfig(**settings)
    spec = DatasetSpec.of(data, group_column=cfg.group_column)  # the reader fills Sample.group from it
    if spec.group_column is not None and cfg.group_column is None and cfg.group_pattern is None:
        cfg = dataclasses.replace(cfg, group_column=spec.group_column)  # a spec's groups are honoured too
    out_dir = Path(out) if out is not None else default_finetune_dir(spec.path, model, cfg.unfreeze, cfg.seed)
    return _finetune(
        spec.load(),
        model,
        cfg,
        out_dir=out_dir,
        resume=resume,
        offline=offline,
        pretrained=pretrained,
        callback=callback,
    )


# ----------------------------------------------------------------------------------------------- metrics
metrics = (
    evaluate_predictions  # `advisor metrics`: saved detection/segmentation predictions against a ground truth
)


# ----------------------------------------------------------------------------------------------- catalog
def catalog(query: str | None = None, **filters: Any) -> list[CatalogEntry]:
    """Catalog entries (`advisor catalog list` / `search`): all words of `query` in each (id, family, task, tags),
    and the filters of `advisor.catalog.api.list_entries` (modality, task, source, family, max_params,
    max_gmacs, license, probeable, sort, descending).

    Returns:
        the entries, in search order with a query, else sorted by ``sort`` (default id).

    Raises:
        UsageError: an unknown filter value or sort key.
    """
    from advisor.catalog.api import list_entries
    from advisor.catalog.store import load_catalog

    if query is None:
        return list_entries(**filters)
    hits = load_catalog().search(query)
    if not filters:
        return hits
    keep = {e.id for e in list_entries(**filters)}
    return [e for e in hits if e.id in keep]


def catalog_entry(model_id: str) -> CatalogEntry:
    """One catalog entry by id (`advisor catalog show`).

    Raises:
        CatalogEntryNotFound: the id is not in the catalog (the message lists close ids).
    """
    from advisor.catalog.store import load_catalog

    return load_catalog().get(model_id)


def catalog_community(model_id: str) -> Any:
    """The Hub community record of one catalog entry (`advisor.catalog.community.CommunityRecord`: downloads over
    the last 30 days, likes, last modified, with when and how they were retrieved), or None when unknown.

    Raises:
        CatalogEntryNotFound: the id is not in the catalog.
    """
    from advisor.catalog.api import entry_community

    return entry_community(model_id)


def build_catalog(
    sources: str | Path | None = None,
    out: str | Path | None = None,
    *,
    count_params: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Regenerate the catalog from the upstream tables in `sources` (`advisor catalog build`); see
    `advisor.catalog.api.rebuild_catalog`."""
    from advisor.catalog.api import rebuild_catalog

    return rebuild_catalog(
        sources, out=Path(out) if out is not None else None, count_params=count_params, progress=progress
    )


def build_catalog_community(ids: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
    """Record Hub downloads (last 30 days), likes and last modification for catalog entries into the community
    file (`advisor catalog community`; needs network); see `advisor.catalog.api.fetch_community_signal`."""
    from advisor.catalog.api import fetch_community_signal

    return fetch_community_signal(list(ids) if ids else None, **options)
