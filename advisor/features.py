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

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import AdvisorError, ModelLoadError, ResultsError, UsageError
from advisor.io import atomic_write, atomic_write_json, stable_hash
from advisor.paths import cache_dir

if TYPE_CHECKING:
    from advisor.data import Dataset, Sample
    from advisor.models import LoadedModel

OVERWRITE_STRATEGIES = ("always", "never", "only-missing", "only-cache")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CHUNK_SIZE = 256  # samples per resumable chunk; independent of batch size so resumes may change --batch-size
SCHEMA_VERSION = 1


# ------------------------------------------------------------------------------------------------ FeatureSet
@dataclass
class FeatureSet:
    """Features of one model on one (sub)set of a dataset.

    Attributes:
        model_id: the model that made them.
        features: ``(N, D)`` float32.
        labels: ``(N,)`` int64 indices into `classes`; -1 for unlabelled samples.
        ids: sample ids, row-aligned with `features`.
        classes: class names of the dataset.
        logits: ``(N, Z)`` source-head logits, or None.
        meta: provenance and timings (cache key, cache_hit, seconds, device, precision, skipped items ...).
    """

    model_id: str
    features: np.ndarray
    labels: np.ndarray
    ids: list[str]
    classes: list[str]
    logits: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (shape, cache hit, seconds, skipped)."""
        m = self.meta
        return {
            "model_id": self.model_id,
            "n": len(self),
            "dim": int(self.features.shape[1]) if self.features.ndim == 2 else None,
            "shape": list(self.features.shape),
            "logits_shape": list(self.logits.shape) if self.logits is not None else None,
            "classes": len(self.classes),
            "cache_hit": m.get("cache_hit"),
            "resumed_chunks": m.get("resumed_chunks"),
            "seconds": m.get("seconds"),
            "items_per_s": m.get("items_per_s"),
            "skipped": m.get("skipped", 0),
            "device": m.get("device"),
            "precision": m.get("precision"),
            "cache_key": m.get("cache_key"),
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically as ``.npz`` (keys features, labels, ids, classes, logits, meta) or ``.safetensors``."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            tensors = {
                "features": np.ascontiguousarray(self.features),
                "labels": self.labels.astype(np.int64),
            }
            if self.logits is not None:
                tensors["logits"] = np.ascontiguousarray(self.logits)
            md = {
                "model_id": self.model_id,
                "ids": json.dumps(self.ids),
                "classes": json.dumps(self.classes),
                "meta": json.dumps(_jsonable(self.meta)),
            }
            return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=md))

        def write(p: Path) -> None:
            arrays: dict[str, Any] = {
                "features": self.features,
                "labels": self.labels.astype(np.int64),
                "ids": np.asarray(self.ids, dtype=str),
                "classes": np.asarray(self.classes, dtype=str),
                "model_id": np.asarray(self.model_id),
                "meta": np.asarray(json.dumps(_jsonable(self.meta))),
            }
            if self.logits is not None:
                arrays["logits"] = self.logits
            with open(p, "wb") as fh:
                np.savez(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read a FeatureSet written by `save` (no pickle).

        Raises:
            ResultsError: missing or unreadable file.
        """
        path = Path(path)
        if not path.is_file():
            raise ResultsError(
                f"feature file {path} does not exist", hint="run `advisor features` to create it"
            )
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open
                from safetensors.numpy import load_file

                arrays = load_file(str(path))
                with safe_open(str(path), framework="numpy") as fh:
                    md = fh.metadata() or {}
                return cls(
                    model_id=md.get("model_id", ""),
                    features=arrays["features"],
                    labels=arrays["labels"],
                    ids=json.loads(md.get("ids", "[]")),
                    classes=json.loads(md.get("classes", "[]")),
                    logits=arrays.get("logits"),
                    meta=json.loads(md.get("meta", "{}")),
                )
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    model_id=str(z["model_id"]) if "model_id" in z else "",
                    features=z["features"],
                    labels=z["labels"],
                    ids=[str(s) for s in z["ids"]],
                    classes=[str(s) for s in z["classes"]],
                    logits=z["logits"] if "logits" in z else None,
                    meta=json.loads(str(z["meta"])) if "meta" in z else {},
                )
        except (OSError, ValueError, KeyError) as e:
            raise ResultsError(f"feature file {path} is unreadable ({e})", hint="delete it and rerun") from e


def _jsonable(obj: Any) -> Any:
    from advisor.cli._output import to_jsonable

    return to_jsonable(obj)


# ------------------------------------------------------------------------------------------------ decoding
class _Items:
    """Map-style dataset over (position, sample): decodes one sample into a raw item, or a skip record."""

    def __init__(
        self, samples: Sequence[Sample], positions: Sequence[int], modality: str, sample_rate: int | None
    ):
        self.samples = samples
        self.positions = list(positions)
        self.modality = modality
        self.sample_rate = sample_rate or 16000

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        from advisor.data import SkipItem, load_audio, load_image

        pos = self.positions[i]
        s = self.samples[pos]
        try:
            if self.modality == "image":
                return pos, load_image(s), None
            if self.modality == "audio":
                return pos, load_audio(s, self.sample_rate), None
            if s.text is None:
                return pos, None, "sample has no text"
            return pos, s.text, None
        except SkipItem as e:
            return pos, None, e.reason


class _Collate:
    """Runs the model's preprocessing on the decoded items of one batch (inside DataLoader workers)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def __call__(self, rows: list) -> tuple[list[int], tuple | None, list[tuple[int, str]]]:
        ok = [(p, x) for p, x, err in rows if err is None]
        skipped = [(p, err) for p, _, err in rows if err is not None]
        if not ok:
            return [], None, skipped
        try:
            batch = self.model.preprocess([x for _, x in ok])
        except Exception:
            # One bad item must not sink the batch: preprocess one by one, skip the ones that fail.
            good, parts = [], []
            for p, x in ok:
                try:
                    parts.append(self.model.preprocess([x]))
                    good.append((p, x))
                except Exception as e:  # noqa: BLE001 - reported per item
                    skipped.append((p, f"preprocessing failed: {type(e).__name__}: {e}"[:300]))
            if not good:
                return [], None, skipped
            batch = self.model.preprocess([x for _, x in good])
            ok = good
        return [p for p, _ in ok], batch, skipped


# ------------------------------------------------------------------------------------------------ running
def _autocast(device: Any, precision: str):
    import contextlib

    import torch

    if precision == "fp32" or device.type == "cpu":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_precision(precision: str, device: Any) -> str:
    """``auto``: bf16 on CUDA with bf16 support, fp16 on other GPUs, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return "fp32" if device.type == "cpu" else precision
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def forward_with_oom_retry(model: LoadedModel, batch: tuple, precision: str, state: dict) -> tuple[Any, Any]:
    """Run `model.forward` on `batch` (split into sub-batches of ``state['max_batch']``), halving on OOM.

    Returns:
        (features ndarray, logits ndarray or None).

    Raises:
        AdvisorError: out of memory even at batch size 1.
    """
    import torch

    n = int(batch[0].shape[0])
    step = min(n, state.get("max_batch") or n)
    feats, logits = [], []
    i = 0
    while i < n:
        sub = tuple(
            t[i : i + step] if isinstance(t, torch.Tensor) and t.shape[:1] == (n,) else t for t in batch
        )
        try:
            with torch.inference_mode(), _autocast(model.device, precision):
                out = model.forward(sub)
            feats.append(out.features.float().cpu().numpy())
            if out.logits is not None:
                logits.append(out.logits.float().cpu().numpy())
            i += step
        except (RuntimeError, MemoryError) as e:
            if not _is_oom(e) or step == 1:
                if _is_oom(e):
                    raise AdvisorError(
                        f"{model.model_id}: out of memory even at batch size 1 on {model.device}",
                        hint="use a smaller model or --device cpu",
                    ) from e
                raise
            if model.device.type == "cuda":
                torch.cuda.empty_cache()
            step = max(1, step // 2)
            state["max_batch"] = step
            state["oom_retries"] = state.get("oom_retries", 0) + 1
    return np.concatenate(feats), (np.concatenate(logits) if logits else None)


class _Progress:
    """A Rich progress bar on stderr (items/s), or nothing when disabled or stderr is not a terminal."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.bar = None
        if enabled and total > 0 and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),  # description escaped in add_task
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} items/s"),
                TimeRemainingColumn(),
                transient=True,
                redirect_stdout=False,
            )
            self.bar.start()
            from rich.markup import escape

            self.task = self.bar.add_task(escape(label), total=total, rate="-")
            self.t0 = time.perf_counter()
            self.done = 0

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.done += n
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=n, rate=f"{rate:.1f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ------------------------------------------------------------------------------------------------ cache
def _versions() -> dict[str, str | None]:
    from advisor.versions import package_versions

    return package_versions(("torch", "timm", "transformers", "onnxruntime", "advisor"), python=False)


def _index_key(model_id: str, pretrained: bool, precision_req: str, device_type: str, data_key: dict) -> str:
    from advisor.models.local import local_content_key

    return stable_hash(
        {
            "schema": SCHEMA_VERSION,
            "model_id": model_id,
            # A local file is keyed by its content (and its sidecar's), so an overwritten model is recomputed.
            "local_content": local_content_key(model_id),
            "pretrained": pretrained,
            "precision": precision_req,
            "device_type": device_type,
            "versions": _versions(),
            **data_key,
        },
        length=24,
    )


def _chunk_path(entry: Path, c: int) -> Path:
    return entry / f"chunk-{c:06d}.npz"


def _write_chunk(
    path: Path, pos: np.ndarray, feats: np.ndarray, logits: np.ndarray | None, skipped: list
) -> None:
    def write(p: Path) -> None:
        arrays: dict[str, Any] = {"pos": pos, "features": feats, "skipped": np.asarray(json.dumps(skipped))}
        if logits is not None:
            arrays["logits"] = logits
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


# Cache entries whose damaged chunks were already reported in this process: the warning is said once per entry.
_DAMAGED_REPORTED: set[Path] = set()


def _read_chunk(path: Path) -> dict[str, Any] | None:
    """Read one finished chunk; a damaged one (truncated or corrupt file, missing or inconsistent arrays) is
    deleted and None returned, so that the caller recomputes it; this is logged once per cache entry."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            ch = {
                "pos": z["pos"],
                "features": z["features"],
                "logits": z["logits"] if "logits" in z else None,
                "skipped": json.loads(str(z["skipped"])),
            }
        if ch["pos"].ndim != 1 or ch["features"].ndim != 2 or len(ch["features"]) != len(ch["pos"]):
            raise ValueError(f"pos {ch['pos'].shape} and features {ch['features'].shape} do not match")
        if ch["logits"] is not None and (ch["logits"].ndim < 1 or len(ch["logits"]) != len(ch["pos"])):
            raise ValueError(f"logits {ch['logits'].shape} do not match pos {ch['pos'].shape}")
        if not isinstance(ch["skipped"], list):
            raise ValueError("skipped is not a list")
        return ch
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, TypeError) as e:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache: the chunk is recomputed in memory and the write reports the problem
        if path.parent not in _DAMAGED_REPORTED:
            _DAMAGED_REPORTED.add(path.parent)
            logging.getLogger(__name__).warning(
                "feature cache: damaged chunk %s (%s: %s) deleted; recomputing it", path, type(e).__name__, e
            )
        return None


def _entry_paths(key: str) -> tuple[Path, Path, Path]:
    entry = cache_dir("features", key)
    return entry, entry / "features.npz", entry / "meta.json"


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
) -> FeatureSet:
    """Features (and source logits) of `model` on `samples` of `dataset`, cached and resumable.

    Args:
        dataset: an `advisor.data.Dataset`.
        model: a model id (loaded only when the cache cannot answer) or a `LoadedModel`.
        samples: the samples to encode (default: all of the dataset), in the order wanted.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``mps``.
        batch_size: samples per forward pass (halved automatically on GPU out-of-memory).
        num_workers: DataLoader worker processes for decoding + preprocessing (0: in this process).
        overwrite_strategy: ``only-missing`` | ``always`` | ``never`` | ``only-cache`` (see module docstring).
        progress: show a progress bar on stderr when it is a terminal.
        offline: passed to `load_model` (None: detect).
        precision: ``auto`` (bf16/fp16 autocast on GPU, fp32 on CPU) | ``fp32`` | ``bf16`` | ``fp16``.
        pretrained: passed to `load_model` for string ids.
        trust_remote_code: passed to `load_model` for string ids.

    Returns:
        A `FeatureSet` whose rows are the samples that decoded (skipped ones are listed in ``meta``).

    Raises:
        UsageError: bad options; ``never`` with an existing entry.
        ResultsError: ``only-cache`` with nothing cached.
        ModelLoadError / WeightsUnavailableOffline: the model cannot be loaded.
        DatasetError: no sample could be decoded.
    """
    from advisor.models.device import resolve_device

    if overwrite_strategy not in OVERWRITE_STRATEGIES:
        raise UsageError(
            f"unknown overwrite strategy {overwrite_strategy!r}",
            hint=f"use one of {', '.join(OVERWRITE_STRATEGIES)}",
        )
    if batch_size < 1 or num_workers < 0:
        raise UsageError("batch size must be >= 1 and num_workers >= 0")
    t_start = time.perf_counter()
    samples = list(dataset.samples if samples is None else samples)
    dev = resolve_device(device)
    ids = [s.id for s in samples]
    data_key = {
        "dataset": dataset.fingerprint,
        "modality": dataset.modality,
        "ids": stable_hash(ids, length=32),
    }
    model_id = model if isinstance(model, str) else model.model_id

    # Fast path: a model id whose entry the index already knows; no model loading at all.
    index_path = None
    if isinstance(model, str):
        index_path = (
            cache_dir("features", "index")
            / f"{_index_key(model, pretrained, precision, dev.type, data_key)}.json"
        )
        if index_path.is_file() and overwrite_strategy != "always":
            try:
                key = json.loads(index_path.read_text())["key"]
            except (OSError, ValueError, KeyError):
                key = None
            if key:
                _, final, meta_path = _entry_paths(key)
                if final.is_file():
                    if overwrite_strategy == "never":
                        raise _exists_error(model_id, final)
                    hit = _load_hit(final, t_start)
                    if hit is not None:
                        return hit
        if overwrite_strategy == "only-cache":
            raise _not_cached(model_id, dataset)
        from advisor.models import load_model

        lm = load_model(
            model,
            device=str(dev),
            pretrained=pretrained,
            offline=offline,
            trust_remote_code=trust_remote_code,
        )
    else:
        lm = model
        if lm.device != dev and device != "auto":
            lm.to(dev)
    if lm.modality != dataset.modality:
        raise UsageError(
            f"{lm.model_id} is a {lm.modality} model but {dataset.root} is a {dataset.modality} dataset",
            hint=f"pick a {dataset.modality} model (advisor catalog list --modality {dataset.modality})",
        )
    prec = resolve_precision(precision, lm.device)
    key = stable_hash(
        {"schema": SCHEMA_VERSION, "signature": lm.preprocess_signature(), "precision": prec, **data_key},
        length=24,
    )
    entry, final, meta_path = _entry_paths(key)

    if final.is_file():
        if overwrite_strategy == "never":
            raise _exists_error(model_id, final)
        if overwrite_strategy in ("only-missing", "only-cache"):
            _write_index(index_path, key)
            hit = _load_hit(final, t_start)
            if hit is not None:
                return hit
    if overwrite_strategy == "only-cache":
        raise _not_cached(model_id, dataset)
    if overwrite_strategy == "always":
        for p in entry.glob("chunk-*.npz"):
            p.unlink(missing_ok=True)
        final.unlink(missing_ok=True)

    n = len(samples)
    n_chunks = (n + CHUNK_SIZE - 1) // CHUNK_SIZE
    done: dict[int, dict] = {}
    for c in range(n_chunks):
        p = _chunk_path(entry, c)
        if p.is_file():
            ch = _read_chunk(p)
            if ch is not None:
                done[c] = ch
    resumed = len(done)
    todo = [c for c in range(n_chunks) if c not in done]
    positions = [p for c in todo for p in range(c * CHUNK_SIZE, min(n, (c + 1) * CHUNK_SIZE))]

    t_compute = time.perf_counter()
    state: dict[str, Any] = {}
    if positions:
        _compute(lm, samples, positions, entry, done, n, batch_size, num_workers, prec, progress, state)
    compute_s = time.perf_counter() - t_compute

    fs = _assemble(dataset, samples, lm, done, n_chunks)
    fs.meta.update(
        {
            "schema": SCHEMA_VERSION,
            "cache_key": key,
            "cache_dir": str(entry),
            "cache_hit": False,
            "resumed_chunks": resumed,
            "computed_chunks": len(todo),
            "chunk_size": CHUNK_SIZE,
            "overwrite_strategy": overwrite_strategy,
            "device": str(lm.device),
            "precision": prec,
            "batch_size": batch_size,
            "effective_batch_size": state.get("max_batch", batch_size),
            "oom_retries": state.get("oom_retries", 0),
            "num_workers": num_workers,
            "cpu_threads": state.get("cpu_threads"),
            "compute_seconds": round(compute_s, 4),
            "items_per_s": round(len(positions) / compute_s, 2) if positions and compute_s > 0 else None,
            "signature": lm.preprocess_signature(),
            "revision": lm.revision,
            "pretrained": lm.pretrained,
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_root": str(dataset.root),
            "n_requested": n,
            "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    fs.meta["seconds"] = round(time.perf_counter() - t_start, 4)
    fs.save(final)
    atomic_write_json(meta_path, fs.meta)
    for c in range(n_chunks):  # the assembled file replaces the chunks
        _chunk_path(entry, c).unlink(missing_ok=True)
    _write_index(index_path, key)
    return fs


def _write_index(index_path: Path | None, key: str) -> None:
    if index_path is not None:
        atomic_write_json(index_path, {"key": key})


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


def _load_hit(final: Path, t_start: float) -> FeatureSet | None:
    """The cached FeatureSet, or None (file deleted, one warning) when the file is damaged: recompute it."""
    import zipfile

    try:
        fs = FeatureSet.load(final)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        logging.getLogger(__name__).warning(
            "feature cache: damaged file %s (%s: %s) deleted; recomputing it", final, type(e).__name__, e
        )
        final.unlink(missing_ok=True)
        return None
    fs.meta = dict(fs.meta)
    fs.meta["compute_seconds_original"] = fs.meta.get("compute_seconds")
    fs.meta["cache_hit"] = True
    fs.meta["seconds"] = round(time.perf_counter() - t_start, 4)
    return fs


def _compute(
    lm: LoadedModel,
    samples: list,
    positions: list[int],
    entry: Path,
    done: dict[int, dict],
    n: int,
    batch_size: int,
    num_workers: int,
    precision: str,
    progress: bool,
    state: dict,
) -> None:
    from torch.utils.data import DataLoader

    items = _Items(samples, positions, lm.modality, lm.sample_rate)
    kw: dict[str, Any] = {}
    if num_workers > 0:
        kw = {"persistent_workers": False, "prefetch_factor": 2}
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    loader = DataLoader(
        items,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_Collate(lm),
        pin_memory=lm.device.type == "cuda",
        **kw,
    )
    pending: dict[int, dict] = {}
    bar = _Progress(progress, len(positions), lm.model_id)
    import torch

    threads_before = torch.get_num_threads()
    hint = lm.info.get("cpu_threads")
    if hint and lm.device.type == "cpu":  # e.g. RNNs run fastest single-threaded (see the model's info)
        torch.set_num_threads(min(int(hint), threads_before))
    state["cpu_threads"] = torch.get_num_threads()
    try:
        for pos_ok, batch, skipped in loader:
            feats = logits = None
            if batch is not None:
                feats, logits = forward_with_oom_retry(lm, batch, precision, state)
            for j, p in enumerate(pos_ok):
                c = p // CHUNK_SIZE
                buf = pending.setdefault(c, {"pos": [], "feats": [], "logits": [], "skipped": []})
                buf["pos"].append(p)
                buf["feats"].append(feats[j])
                if logits is not None:
                    buf["logits"].append(logits[j])
            for p, reason in skipped:
                c = p // CHUNK_SIZE
                buf = pending.setdefault(c, {"pos": [], "feats": [], "logits": [], "skipped": []})
                buf["skipped"].append([p, reason])
            bar.advance(len(pos_ok) + len(skipped))
            for c in sorted(pending):
                buf = pending[c]
                size = min(n, (c + 1) * CHUNK_SIZE) - c * CHUNK_SIZE
                if len(buf["pos"]) + len(buf["skipped"]) == size:
                    dim = lm.feature_dim if feats is None else feats.shape[1]
                    f = (
                        np.stack(buf["feats"]).astype(np.float32)
                        if buf["feats"]
                        else np.zeros((0, dim), np.float32)
                    )
                    lg = np.stack(buf["logits"]).astype(np.float32) if buf["logits"] else None
                    pos_arr = np.asarray(buf["pos"], dtype=np.int64)
                    _write_chunk(_chunk_path(entry, c), pos_arr, f, lg, buf["skipped"])
                    done[c] = {"pos": pos_arr, "features": f, "logits": lg, "skipped": buf["skipped"]}
                    del pending[c]
    finally:
        bar.close()
        torch.set_num_threads(threads_before)


def _assemble(
    dataset: Any, samples: list, lm: LoadedModel, done: dict[int, dict], n_chunks: int
) -> FeatureSet:
    from advisor.errors import DatasetError

    pos, feats, logits, skipped = [], [], [], []
    has_logits = any(done[c]["logits"] is not None and len(done[c]["pos"]) for c in done)
    for c in range(n_chunks):
        ch = done[c]
        if len(ch["pos"]):
            pos.append(ch["pos"])
            feats.append(ch["features"])
            if has_logits:
                if ch["logits"] is None:
                    raise ModelLoadError(
                        f"{lm.model_id}: cached chunks disagree on logits; rerun with --overwrite-strategy always"
                    )
                logits.append(ch["logits"])
        skipped.extend(ch["skipped"])
    if not pos:
        raise DatasetError(
            f"none of the {len(samples)} samples of {dataset.root} could be decoded for {lm.model_id}",
            hint="check the files (advisor data profile)",
        )
    pos_arr = np.concatenate(pos)
    order = np.argsort(pos_arr, kind="stable")
    pos_arr = pos_arr[order]
    kept = [samples[int(p)] for p in pos_arr]
    skipped.sort()
    return FeatureSet(
        model_id=lm.model_id,
        features=np.concatenate(feats)[order].astype(np.float32, copy=False),
        labels=dataset.labels_array(kept),
        ids=[s.id for s in kept],
        classes=list(dataset.classes),
        logits=np.concatenate(logits)[order] if has_logits else None,
        meta={
            "model_id": lm.model_id,
            "n": len(kept),
            "dim": int(feats[0].shape[1]),
            "skipped": len(skipped),
            "skipped_items": [{"id": samples[int(p)].id, "reason": r} for p, r in skipped],
            "source_classes": lm.source_classes if has_logits else None,
            "logits_kind": (lm.info or {}).get("logits_kind") if has_logits else None,
        },
    )


def clear_feature_cache() -> int:
    """Delete every cached feature entry; returns how many entries were removed."""
    root = cache_dir("features")
    n = 0
    for p in root.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def run_features_command(
    *,
    data: str | Path,
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
    modality: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """What `advisor features` does: load the dataset, take the stratified subsample, extract, write `out`.

    Returns:
        `FeatureSet.summary()` plus ``out`` (the written file) and ``samples`` (how many were requested).

    Raises:
        UsageError: ``out`` has an unsupported suffix, or exists and the strategy is ``never``.
    """
    from advisor.data import load_dataset, stratified_sample

    if out is not None:
        out = Path(out)
        if out.suffix not in (".npz", ".safetensors"):
            raise UsageError(f"--out {out}: use a .npz or .safetensors file name")
        if out.exists() and overwrite_strategy == "never":
            raise UsageError(
                f"{out} exists and the strategy is 'never'", hint="choose another --out or strategy"
            )
    ds = load_dataset(
        data, modality=modality, text_column=text_column, label_column=label_column, split=split
    )
    samples = None
    if max_per_class is not None or max_samples is not None:
        samples = stratified_sample(ds, max_per_class=max_per_class, max_samples=max_samples, seed=seed)
    fs = extract_features(
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
    )
    summary = fs.summary()
    summary["samples"] = len(samples) if samples is not None else len(ds.samples)
    summary["sampling"] = {"max_per_class": max_per_class, "max_samples": max_samples, "seed": seed}
    if out is not None:
        fs.save(out)
        summary["out"] = str(out)
    else:
        summary["out"] = None
    return summary
