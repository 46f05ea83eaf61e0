"""The content-addressed cache: versioned keys, atomic writes, damaged entries detected and recomputed.

One folder of the cache root (``advisor.paths.cache_dir``) per kind of value. A value is named by a key that hashes
everything it depends on, version field included (`content_key`), so a change of inputs or of semantics is a miss,
never a stale hit. Writes go to a temp file renamed into place (`advisor.io.atomic_write`), so a killed run leaves
either the old entry or the new one. A damaged entry (truncated, garbage, inconsistent) is deleted and reported as
a miss, with one warning per entry (or per group of files, such as the chunks of one feature entry), so the caller
recomputes it. A write that fails at the OS level (disk full, read-only folder) raises `StorageError`, one line
naming the path and what to do.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from advisor.io import atomic_write, atomic_write_json, stable_hash
from advisor.paths import cache_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

# What reading a damaged file raises: truncated zip/npz, garbage bytes, missing arrays, wrong shapes or types.
DAMAGE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
)

# Entries (or groups of files) whose damage was already reported in this process: one warning each.
_REPORTED: set[Hashable] = set()


def content_key(payload: Any, length: int = 16) -> str:
    """The key of a cached value: a short sha256 of the canonical JSON of ``payload`` (keys sorted).

    ``payload`` must name everything the value depends on, including a version field that is bumped when the
    value's meaning changes. Byte-identical to `advisor.io.stable_hash`, so existing entries keep being served.
    """
    return stable_hash(payload, length=length)


def report_damage(
    path: Path, exc: BaseException, *, group: Hashable | None = None, what: str = "entry"
) -> None:
    """Delete a damaged cache file and log one warning per ``group`` (default: the file itself) in this process.

    A file we may not read (permission denied) is not damaged: it is left alone, and recomputed all the same."""
    unreadable = isinstance(exc, PermissionError)
    if not unreadable:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache: the value is recomputed in memory and the write reports the problem
    once = path if group is None else group
    if once in _REPORTED:
        return
    _REPORTED.add(once)
    if unreadable:
        log.warning("cache: cannot read %s %s (permission denied); recomputing it", what, path)
    else:
        log.warning(
            "cache: damaged %s %s (%s: %s) deleted; recomputing it", what, path, type(exc).__name__, exc
        )


class Cache:
    """One folder of the content-addressed cache (``cache_dir(*parts)``), created on the first write.

    Args:
        parts: the folder under the cache root, e.g. ``("probes",)`` or ``("features", key)``.
        suffix: the file-name suffix of `path` (``.json`` for `get_json`/`put_json`).
        folder: an absolute folder instead of one under the cache root (an entry found by its path).
    """

    def __init__(self, *parts: str, suffix: str = "", folder: Path | None = None) -> None:
        self.parts = parts
        self.suffix = suffix
        self.folder = folder

    @property
    def root(self) -> Path:
        """The folder (not created by asking)."""
        return self.folder if self.folder is not None else cache_dir(*self.parts, create=False)

    def path(self, name: str) -> Path:
        """Where the value ``name`` lives (``name`` plus the cache's suffix)."""
        return self.root / f"{name}{self.suffix}"

    def read(
        self,
        name: str,
        load: Callable[[Path], T],
        *,
        group: Hashable | None = None,
        what: str = "entry",
    ) -> T | None:
        """``load(path)`` of the value ``name``, or None when absent or damaged.

        A damaged file (``load`` raises one of `DAMAGE_ERRORS`) is deleted and reported once per ``group``, and
        None returned, so the caller recomputes it.
        """
        p = self.path(name)
        if not p.is_file():
            return None
        try:
            return load(p)
        except DAMAGE_ERRORS as e:
            report_damage(p, e, group=group, what=what)
            return None

    def write(self, name: str, write: Callable[[Path], None]) -> Path:
        """Write the value ``name`` atomically: ``write(tmp)`` fills a temp file renamed into place.

        Raises:
            StorageError: the folder is read-only or the disk is full.
        """
        return atomic_write(self.path(name), write)

    def get_json(self, name: str) -> Any | None:
        """The JSON value ``name``, or None (absent, or damaged: deleted, one warning)."""
        return self.read(name, lambda p: json.loads(p.read_text(encoding="utf-8")))

    def put_json(self, name: str, value: Any) -> Path:
        """Store ``value`` as JSON under ``name`` (atomic).

        Raises:
            StorageError: the folder is read-only or the disk is full.
        """
        return atomic_write_json(self.path(name), value)

    def delete(self, name: str) -> None:
        """Remove the value ``name`` if present."""
        self.path(name).unlink(missing_ok=True)


__all__ = ["DAMAGE_ERRORS", "Cache", "content_key", "report_damage"]
