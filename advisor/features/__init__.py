"""Feature extraction engine and feature cache: `extract_features` -> `FeatureSet` (batched, resumable, cached).

Engine: a DataLoader decodes samples (``advisor.data.load_image``/``load_audio``, or the text) and runs the model's
own preprocessing in its workers; the main process runs ``LoadedModel.forward`` under ``torch.inference_mode``
(autocast bf16/fp16 on GPU). A CUDA out-of-memory error halves the forward batch and retries. Items whose decoding
raises ``advisor.data.SkipItem`` are skipped, counted and listed in ``meta["skipped_items"]``.

Cache (``advisor.paths.cache_dir("features")``, i.e. ``$ADVISOR_CACHE_DIR/features``): one folder per key, the key
being a hash of (model id + revision + preprocessing signature, precision, dataset fingerprint, sample ids).
Finished chunks of ``CHUNK_SIZE`` samples are written atomically as separate files while the run goes on; the
final ``features.npz`` is assembled from them, so a killed run resumes without recomputing finished chunks.
An index keyed by the model id (plus library versions, and for local files the sha256 of the file and its sidecar)
points at the full key, so a cache hit for a model id needs no model loading.

Overwrite strategies (``overwrite_strategy``, MTEB-style):

- ``only-missing`` (default): reuse a finished entry; otherwise reuse finished chunks and compute the rest.
- ``always``: discard any cached entry/chunks for the key and recompute everything.
- ``never``: never overwrite: if a finished entry exists, raise `UsageError`; otherwise compute (resuming
  chunks) and write it.
- ``only-cache``: never compute: return the finished entry or raise `ResultsError` if there is none.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import ResultsError, UsageError, check_choice
from advisor.features import store
from advisor.features.engine import assemble, compute, forward_with_oom_retry
from advisor.features.featureset import FeatureSet
from advisor.features.store import SCHEMA_VERSION, chunk_path, entry_paths, load_hit, read_chunk
from advisor.io import atomic_write_json, stable_hash
from advisor.paths import cache_dir
from advisor.runtime import PRECISIONS, resolve_device, resolve_precision

if TYPE_CHECKING:
    from advisor.data import Dataset, Sample
    from advisor.data.spec import DatasetSpec
    from advisor.models import LoadedModel

OVERWRITE_STRATEGIES = ("always", "never", "only-missing", "only-cache")
MAX_LISTED_SKIPS = 100  # skipped items listed in the summary (as `data profile` does); all are counted
CHUNK_SIZE = 256  # samples per resumable chunk; independent of batch size so resumes may change --batch-size


# ------------------------------------------------------------------------------------------------ API
def extract_features(
    dataset: Dataset,
    model: str | LoadedModel,
    *,
    samples: list[Sample] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
    overwrite_strategy: str = "only-missing",
    progress: bool = True,
    offline: bool | None = None,
    precision: str = "auto",
    pretrained: bool = True,
    trust_remote_code: bool = False,
    runtime: str = "eager",
) -> FeatureSet:
    """Features (and source logits) of `model` on `samples` of `dataset`, cached and resumable.

    Args:
        dataset: an `advisor.data.Dataset`.
        model: a model id (loaded only when the cache cannot answer) or a `LoadedModel`.
        samples: the samples to encode (default: all of the dataset), in the order wanted.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``mps``.
        batch_size: samples per forward pass (halved automatically on out-of-memory).
        num_workers: DataLoader worker processes for decoding + preprocessing (0: in this process).
        overwrite_strategy: ``only-missing`` | ``always`` | ``never`` | ``only-cache`` (see module docstring).
        progress: report progress (`advisor.progress`; the CLI shows a bar on a terminal).
        offline: passed to `load_model` (None: detect).
        precision: ``auto`` (bf16/fp16 autocast on GPU, fp32 on CPU) | ``fp32`` | ``bf16`` | ``fp16``.
        pretrained: passed to `load_model` for string ids.
        trust_remote_code: passed to `load_model` for string ids.
        runtime: ``eager`` (the model as loaded) | ``auto`` (the fastest runtime equivalent to eager, by a short
            trial) | ``channels-last`` | ``onnxruntime`` | ``compile`` (`advisor.models.runtimes`); which one ran is
            in ``meta["runtime"]``, and the runtime is part of the cache key.

    Returns:
        A `FeatureSet` whose rows are the samples that decoded (skipped ones are listed in ``meta``).

    Raises:
        UsageError: bad options; ``never`` with an existing entry.
        ResultsError: ``only-cache`` with nothing cached.
        ModelLoadError / WeightsUnavailableOffline: the model cannot be loaded.
        DatasetError: no sample could be decoded.
        StorageError: the cache folder is read-only or the disk is full.
    """
    _check_options(overwrite_strategy, batch_size, num_workers)
    from advisor.runtime import check_runtime

    check_runtime(runtime)
    t_start = time.perf_counter()
    samples = list(dataset.samples if samples is None else samples)
    dev = resolve_device(device)
    data_key = _data_key(dataset, samples)
    model_id = model if isinstance(model, str) else model.model_id
    index = None
    if isinstance(model, str):
        # Fast path: a model id whose entry the index already knows; no model loading at all.
        index = store.index_path(store.index_key(model, pretrained, precision, dev.type, data_key, runtime))
        hit = _index_hit(index, model_id, overwrite_strategy, t_start)
        if hit is not None:
            return hit
        if overwrite_strategy == "only-cache":
            raise _not_cached(model_id, dataset)
        from advisor.models.pool import load_on_runtime

        def check_modality(loaded: LoadedModel) -> None:
            _check_modality(loaded, dataset)

        # within a run (`advisor.models.pool.reuse_models`) the loaded model is kept for the bench stage
        options = {"offline": offline, "trust_remote_code": trust_remote_code}
        got = load_on_runtime(
            model, device=str(dev), pretrained=pretrained, runtime=runtime, check=check_modality, **options
        )
        lm, choice = got.model, got.choice
    else:
        lm, choice = model, None
        if lm.device != dev and device != "auto":
            lm.to(dev)
        _check_modality(lm, dataset)
        if runtime != "eager":
            from advisor.models.runtimes import with_runtime

            lm, choice = with_runtime(lm, runtime)
    prec = resolve_precision(precision, lm.device)
    key = store.entry_key(lm.preprocess_signature(), prec, data_key)
    hit = _entry_hit(key, index, model_id, overwrite_strategy, t_start)
    if hit is not None:
        return hit
    if overwrite_strategy == "only-cache":
        raise _not_cached(model_id, dataset)
    run = {"strategy": overwrite_strategy, "batch_size": batch_size, "num_workers": num_workers}
    run["audio_max_seconds"] = data_key.get("audio_max_seconds")
    run["runtime"] = choice.to_dict() if choice is not None else {"runtime": lm.runtime, "requested": "eager"}
    fs = _compute_entry(dataset, samples, lm, key, prec, run, progress, t_start)
    store.write_index(index, key)
    return fs


def _check_modality(lm: LoadedModel, dataset: Dataset) -> None:
    if lm.modality != dataset.modality:
        raise UsageError(
            f"{lm.model_id} is a {lm.modality} model but {dataset.root} is a {dataset.modality} dataset",
            hint=f"pick a {dataset.modality} model (advisor catalog list --modality {dataset.modality})",
        )


def _data_key(dataset: Dataset, samples: list[Sample]) -> dict[str, Any]:
    """What of the data a features entry depends on: the dataset's fingerprint, its modality, the sample ids, and
    for audio the clip-length cap (it changes what long clips give)."""
    key: dict[str, Any] = {
        "dataset": dataset.fingerprint,
        "modality": dataset.modality,
        "ids": stable_hash([s.id for s in samples], length=32),
    }
    if dataset.modality == "audio":
        from advisor.data.media import max_audio_seconds

        key["audio_max_seconds"] = max_audio_seconds()
    return key


def _check_options(strategy: str, batch_size: int, num_workers: int) -> None:
    check_choice(strategy, OVERWRITE_STRATEGIES, "overwrite strategy")
    if batch_size < 1 or num_workers < 0:
        raise UsageError("batch size must be >= 1 and num_workers >= 0")


def _index_hit(index: Path, model_id: str, strategy: str, t_start: float) -> FeatureSet | None:
    """The finished entry the index points at (None: no index, no entry, damaged, or ``always``)."""
    if strategy == "always" or not index.is_file():
        return None
    key = store.read_index(index)
    if not key:
        return None
    _, final, _ = entry_paths(key)
    if not final.is_file():
        return None
    if strategy == "never":
        raise _exists_error(model_id, final)
    return load_hit(final, t_start)


def _entry_hit(
    key: str, index: Path | None, model_id: str, strategy: str, t_start: float
) -> FeatureSet | None:
    """The finished entry of a loaded model (and the index pointed at it), unless the strategy says recompute."""
    _, final, _ = entry_paths(key)
    if not final.is_file():
        return None
    if strategy == "never":
        raise _exists_error(model_id, final)
    if strategy not in ("only-missing", "only-cache"):
        return None
    store.write_index(index, key)
    return load_hit(final, t_start)


def _compute_entry(
    dataset: Dataset,
    samples: list[Sample],
    lm: LoadedModel,
    key: str,
    prec: str,
    run: dict[str, Any],
    progress: bool,
    t_start: float,
) -> FeatureSet:
    """Compute what the entry lacks (resuming finished chunks), assemble, write the entry and drop its chunks."""
    entry, final, meta_path = entry_paths(key)
    chunk_size = CHUNK_SIZE
    if run["strategy"] == "always":
        for p in entry.glob("chunk-*.npz"):
            p.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
    n = len(samples)
    n_chunks = (n + chunk_size - 1) // chunk_size
    done: dict[int, dict] = {}
    for c in range(n_chunks):
        if chunk_path(entry, c).is_file() and (ch := read_chunk(chunk_path(entry, c))) is not None:
            done[c] = ch
    resumed = len(done)
    todo = [c for c in range(n_chunks) if c not in done]
    positions = [p for c in todo for p in range(c * chunk_size, min(n, (c + 1) * chunk_size))]
    t_compute = time.perf_counter()
    state: dict[str, Any] = {"audio_max_seconds": run.get("audio_max_seconds")}
    if positions:
        compute(
            lm,
            samples,
            positions,
            entry,
            done,
            chunk_size=chunk_size,
            batch_size=run["batch_size"],
            num_workers=run["num_workers"],
            precision=prec,
            progress=progress,
            state=state,
        )
    compute_s = time.perf_counter() - t_compute
    fs = assemble(dataset, samples, lm, done, n_chunks)
    if run.get("audio_max_seconds"):
        from advisor.data.media import audio_cut_note

        fs.meta["audio_cut"] = audio_cut_note(dataset, samples, run["audio_max_seconds"])
    fs.meta.update(
        {
            "schema": SCHEMA_VERSION,
            "cache_key": key,
            "cache_dir": str(entry),
            "cache_hit": False,
            "resumed_chunks": resumed,
            "computed_chunks": len(todo),
            "chunk_size": chunk_size,
            "overwrite_strategy": run["strategy"],
            "device": str(lm.device),
            "precision": prec,
            "batch_size": run["batch_size"],
            "effective_batch_size": state.get("max_batch", run["batch_size"]),
            "oom_retries": state.get("oom_retries", 0),
            "num_workers": run["num_workers"],
            "cpu_threads": state.get("cpu_threads"),
            "compute_seconds": round(compute_s, 4),
            "items_per_s": round(len(positions) / compute_s, 2) if positions and compute_s > 0 else None,
            "signature": lm.preprocess_signature(),
            "runtime": run.get("runtime"),
            "revision": lm.revision,
            "pretrained": lm.pretrained,
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_root": str(dataset.root),
            "n_requested": n,
            "versions": store.versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    fs.meta["seconds"] = round(time.perf_counter() - t_start, 4)
    fs.save(final)
    atomic_write_json(meta_path, fs.meta)
    for c in range(n_chunks):  # the assembled file replaces the chunks
        chunk_path(entry, c).unlink(missing_ok=True)
    return fs


def _exists_error(model_id: str, final: Path) -> UsageError:
    return UsageError(
        f"features of {model_id} for these samples are already cached at {final} and the strategy is 'never'",
        hint="use --overwrite-strategy only-missing to reuse them or always to recompute",
    )


def _not_cached(model_id: str, dataset: Any) -> ResultsError:
    return ResultsError(
        f"no cached features of {model_id} for {dataset.root} (strategy 'only-cache')",
        hint="run with --overwrite-strategy only-missing to compute them",
    )


def clear_feature_cache() -> int:
    """Delete every cached feature entry; returns how many entries were removed."""
    return store.clear()


def run_features_command(
    *,
    data: str | Path | DatasetSpec,
    model: str,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
    max_per_class: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    overwrite_strategy: str = "only-missing",
    precision: str = "auto",
    offline: bool | None = None,
    pretrained: bool = True,
    trust_remote_code: bool = False,
    progress: bool = True,
    runtime: str = "eager",
) -> dict[str, Any]:
    """What `advisor features` does: load the dataset (a path, or a `DatasetSpec` with how to read it), take the
    stratified subsample, extract, write `out`.

    Returns:
        `FeatureSet.summary()` plus ``out`` (the written file), ``samples`` (how many were requested) and what
        was skipped (`skipped_summary`: files the dataset reader left out and items that failed to decode).

    Raises:
        UsageError: ``out`` has an unsupported suffix, or exists and the strategy is ``never``.
    """
    from advisor.data import stratified_sample
    from advisor.data.spec import DatasetSpec

    if out is not None:
        out = Path(out)
        if out.suffix not in (".npz", ".safetensors"):
            raise UsageError(f"--out {out}: use a .npz or .safetensors file name")
        if out.exists() and overwrite_strategy == "never":
            raise UsageError(
                f"{out} exists and the strategy is 'never'", hint="choose another --out or strategy"
            )
    ds = DatasetSpec.of(data).load()
    samples = None
    if max_per_class is not None or max_samples is not None:
        samples = stratified_sample(ds, max_per_class=max_per_class, max_samples=max_samples, seed=seed)
    fs = baseline_featureset(ds, model, samples) if model.startswith("baseline:") else None
    fs = fs or extract_features(
        ds,
        model,
        samples=samples,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        overwrite_strategy=overwrite_strategy,
        progress=progress,
        offline=offline,
        precision=precision,
        pretrained=pretrained,
        trust_remote_code=trust_remote_code,
        runtime=runtime,
    )
    summary = fs.summary()
    summary.update(skipped_summary(ds, fs))
    summary["samples"] = len(samples) if samples is not None else len(ds.samples)
    summary["sampling"] = {"max_per_class": max_per_class, "max_samples": max_samples, "seed": seed}
    if out is not None:
        fs.save(out)
        summary["out"] = str(out)
    else:
        summary["out"] = None
    return summary


def baseline_featureset(
    dataset: Dataset, baseline_id: str, samples: list[Sample] | None = None
) -> FeatureSet:
    """The features of a no-pretraining floor (``baseline:raw-pixels`` / ``bag-of-words`` / ``mfcc-stats``, the
    floors `recommend` probes) as a `FeatureSet`; computed on the CPU in seconds, so never cached.

    Raises:
        UsageError: an unknown floor, or one of another modality than the data's.
    """
    import numpy as np

    from advisor.recommend.baselines import BASELINES, baseline_features

    if baseline_id not in BASELINES:
        raise UsageError(f"unknown floor {baseline_id!r}", hint=f"use one of {', '.join(BASELINES)}")
    want = BASELINES[baseline_id][0]
    if want != dataset.modality:
        raise UsageError(
            f"{baseline_id} is a floor for {want} data; {dataset.root} holds {dataset.modality}",
            hint="use " + " or ".join(b for b, (m, _) in BASELINES.items() if m == dataset.modality),
        )
    picked = list(samples) if samples is not None else list(dataset.samples)
    skips: list[str] = []
    t0 = time.perf_counter()
    x, kept_idx = baseline_features(baseline_id, picked, skips.append)
    kept = [picked[i] for i in kept_idx]
    seconds = time.perf_counter() - t0
    kept_ids = {s.id for s in kept}
    why = {m.split(": ", 1)[0]: m.split(": ", 1)[-1] for m in skips}  # on_skip says "<id>: <error>"
    return FeatureSet(
        model_id=baseline_id,
        features=np.asarray(x, dtype=np.float32),
        labels=dataset.labels_array(kept),
        ids=[s.id for s in kept],
        classes=list(dataset.classes),
        meta={
            "model_id": baseline_id,
            "cache_hit": False,
            "seconds": seconds,
            "items_per_s": round(len(kept) / seconds, 2) if seconds > 0 else None,
            "device": "cpu",
            "precision": "fp32",
            "skipped": len(picked) - len(kept),
            "skipped_items": [
                {"id": s.id, "reason": why.get(s.id, "could not be decoded")}
                for s in picked
                if s.id not in kept_ids
            ],
        },
    )


def skipped_summary(dataset: Any, fs: FeatureSet) -> dict[str, Any]:
    """Every item left out, as ``data profile`` reports it: files the dataset reader dropped (zero-byte, corrupt,
    ...) and samples that failed to decode or preprocess during extraction.

    Returns:
        ``skipped`` (the count), ``skipped_by_code`` (count per category) and ``skipped_items`` (the first
        `MAX_LISTED_SKIPS`, each with ``path``, ``reason``, ``code`` and ``stage``: ``dataset`` or ``extraction``).
    """
    items = [
        {"path": s.path, "reason": s.reason, "code": s.code, "stage": "dataset"} for s in dataset.skipped
    ]
    by_id = {s.id: s for s in dataset.samples}
    for it in fs.meta.get("skipped_items") or []:
        sample = by_id.get(it.get("id"))
        path = str(sample.path) if sample is not None and sample.path is not None else str(it.get("id"))
        items.append({"path": path, "reason": it.get("reason"), "code": "undecodable", "stage": "extraction"})
    return {
        "skipped": len(items),
        "skipped_by_code": dict(Counter(str(i["code"]) for i in items).most_common()),
        "skipped_items": items[:MAX_LISTED_SKIPS],
    }


_load_hit = load_hit  # the name the hostile-input tests use

__all__ = [
    "CHUNK_SIZE",
    "OVERWRITE_STRATEGIES",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "FeatureSet",
    "cache_dir",
    "clear_feature_cache",
    "extract_features",
    "forward_with_oom_retry",
    "resolve_precision",
    "run_features_command",
    "skipped_summary",
]
