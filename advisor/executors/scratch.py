"""A remote candidate's work in a private scratch cache, and the driver's side: its files merged into the cache.

A worker never writes the shared cache: it evaluates its candidate with ``$ADVISOR_CACHE_DIR`` pointing at a fresh
temporary folder and sends back the outcome and the files it wrote there (the features entry, its index file, the
scores entry). The driver, the only writer of the cache, puts each file that it does not have yet into place
atomically; the entries are content-addressed, so the same relative path names the same value on both sides.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from advisor.io import atomic_write
from advisor.paths import CACHE_ENV, cache_root
from advisor.recommend.work import CandidateOutcome, CandidateSpec, evaluate_candidate

log = logging.getLogger(__name__)

INDEX_PREFIX = "features/index/"  # index files point at entries: written after the entries they name


def remote_work(
    spec: dict[str, Any], threads: int | None = None, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evaluate one candidate in a scratch cache (the function a remote worker runs).

    Args:
        spec: `CandidateSpec.to_dict` of the candidate (the worker loads the dataset it names).
        threads: torch's CPU threads in the worker (None: leave as the worker has them).
        data: the driver's subsample (`advisor.executors.shipping.pack_subsample`), used instead of the
            dataset's path (a cluster without a shared filesystem).

    Returns:
        ``{"outcome": CandidateOutcome.to_dict(), "files": {relative path: bytes}}``.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    old = os.environ.get(CACHE_ENV)
    with (
        tempfile.TemporaryDirectory(prefix="advisor-task-") as scratch,
        tempfile.TemporaryDirectory(prefix="advisor-task-data-") as files_dir,
    ):
        os.environ[CACHE_ENV] = scratch
        try:
            context = None
            if data is not None:
                from advisor.executors.shipping import unpack_subsample

                context = unpack_subsample(data, files_dir)
            outcome = evaluate_candidate(CandidateSpec.from_dict(spec), context)
        finally:
            if old is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = old
        files = {
            p.relative_to(scratch).as_posix(): p.read_bytes()
            for p in sorted(Path(scratch).rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
    return {"outcome": outcome.to_dict(), "files": files}


def merge_files(files: dict[str, bytes]) -> int:
    """Put a worker's cache files that this cache lacks into place (atomically, entries before index files).

    Returns:
        How many files were written (files already present are kept: same path, same content).

    Raises:
        StorageError: the cache folder is read-only or the disk is full.
        ValueError: a path that is not a plain relative path (a worker never sends one).
    """
    root = cache_root()
    written = 0
    for rel in sorted(files, key=lambda r: (r.startswith(INDEX_PREFIX), r)):
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"refusing cache path {rel!r} from a worker")
        dest = root.joinpath(*parts)
        if dest.exists():
            continue
        atomic_write(dest, _writer(files[rel]))
        written += 1
    return written


def _writer(data: bytes) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


def load_features(outcome: CandidateOutcome) -> Any:
    """The `FeatureSet` of a successful remote outcome, read from this cache (None when it is not there)."""
    from advisor.features.store import entry_paths, load_hit

    if not outcome.ok or not outcome.feature_key:
        return None
    _, final, _ = entry_paths(outcome.feature_key)
    if not final.is_file():
        log.warning("features of %s are not in the cache after the merge", outcome.model_id)
        return None
    return load_hit(final, time.perf_counter())
