"""Atomic file writes (temp file in the same folder + fsync + rename), JSON conversion and content hashing.

`to_jsonable`/`dumps` live here, below the CLI, because `stable_hash` builds every cache key with them: how the
CLI prints must never change a key (the CLI's output module re-exports them).
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from advisor.errors import StorageError


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, enums, paths, numpy/torch scalars and arrays into JSON-ready values (NaN/inf -> None).

    Every cache key is a hash of this conversion (`stable_hash`): change it only with a cache version bump.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def dumps(obj: Any) -> str:
    """Serialise `obj` as indented JSON with the conversions of `to_jsonable`."""
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False)


def field_names(cls: Any) -> set[str]:
    """The field names of the dataclass `cls` (the keys its ``from_dict`` reads)."""
    return {f.name for f in dataclasses.fields(cls)}


def plain_dict(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict(obj)` with its tuple-valued fields as lists: the form JSON reads back, so that a record
    read from a file and a fresh one give equal dicts."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


def known_fields(cls: Any, d: Mapping[str, Any]) -> dict[str, Any]:
    """The items of `d` that are fields of the dataclass `cls`: what its ``from_dict`` passes on, so that a file
    written by another version (a field added or dropped since) still loads."""
    names = field_names(cls)
    return {k: v for k, v in d.items() if k in names}


def check_fields(cls: Any, d: Mapping[str, Any], error: Callable[[list[str]], Exception]) -> None:
    """Raise ``error(unknown keys, sorted)`` when the dict `d` has keys that are not fields of the dataclass `cls`."""
    unknown = sorted(set(d) - field_names(cls))
    if unknown:
        raise error(unknown)


def storage_error(path: str | Path, exc: OSError) -> StorageError:
    """The one-line error for a write that failed at the OS level: which path, why (disk full, read-only,
    permission denied) and what to do (free space, or point ``ADVISOR_CACHE_DIR`` / the output folder elsewhere)."""
    from advisor.paths import CACHE_ENV, cache_root

    path = Path(path)
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    try:
        in_cache = path.resolve().is_relative_to(cache_root().resolve())
    except (OSError, ValueError, RuntimeError):
        in_cache = False
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if in_cache:
        hint = f"set {CACHE_ENV} to a writable folder" + (" on a disk with free space" if full else "")
        if full:
            hint = "free disk space, or " + hint
        return StorageError(f"cannot write the cache file {path}: {why}", hint=hint)
    hint = "free disk space, or write to another disk" if full else "choose a writable output folder (--out)"
    return StorageError(f"cannot write {path}: {why}", hint=hint)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: `write(tmp_path)` fills a temp file that then replaces `path` in one rename.

    A crash or kill leaves either the old file or the new one, never a torn one.

    Raises:
        StorageError: the folder cannot be created or written (read-only, permission denied, disk full).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise storage_error(path, e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~umask)
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise storage_error(path, e) from e
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write bytes to `path`."""

    def write(p: Path) -> None:
        p.write_bytes(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text to `path`."""

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON (dataclasses, numpy values, paths converted)."""
    return atomic_write_text(path, dumps(obj) + "\n")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short content hash of a JSON-serialisable object (keys sorted), for cache keys."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
