"""Content keys of local model files: sha256 of the file and its sidecar, memoised by inode/size/times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advisor.errors import UsageError

_HASH_MEMO: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised in-process and on disk by (path, inode, size, mtime_ns, ctime_ns).

    ctime cannot be set back by the user (``touch -r`` restores only mtime), so any rewrite is hashed again.
    """
    import hashlib

    from advisor.io import atomic_write_json, stable_hash
    from advisor.paths import cache_dir

    p = path.expanduser().resolve()
    st = p.stat()
    memo_key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo_key in _HASH_MEMO:
        return _HASH_MEMO[memo_key]
    disk = cache_dir("file-hashes") / f"{stable_hash(list(memo_key), length=32)}.json"
    try:
        digest = str(json.loads(disk.read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        try:
            atomic_write_json(disk, {"path": str(p), "sha256": digest})
        except OSError:
            pass  # a read-only cache only costs a rehash next time
    _HASH_MEMO[memo_key] = digest
    return digest


def _sidecar_of(path: Path) -> Path | None:
    for side in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if side.is_file() and side != path:
            return side
    return None


def content_fingerprint(path: Path) -> dict[str, Any]:
    """What a local model's features depend on in its files: the model file's and the sidecar's sha256.

    A folder (``save_pretrained``) is fingerprinted by the names and hashes of the files in it.
    """
    path = path.expanduser()
    if path.is_dir():
        files = sorted(q for q in path.rglob("*") if q.is_file())
        return {"files": {str(q.relative_to(path)): file_sha256(q) for q in files}}
    side = _sidecar_of(path)
    return {"sha256": file_sha256(path), "sidecar_sha256": file_sha256(side) if side else None}


def local_content_key(model_id: str) -> dict[str, Any] | None:
    """`content_fingerprint` for a ``local:`` id whose file exists, else None (not local, or missing)."""
    from advisor.models.ids import ModelId

    try:
        mid = ModelId.parse(model_id)
    except UsageError:
        return None
    path = mid.path
    if path is None or not mid.name:  # "local:" alone names no file (Path("") would be the working folder)
        return None
    if not path.exists():
        return None
    try:
        return content_fingerprint(path)
    except OSError:
        return None


def _file_revision(path: Path) -> str:
    fp = content_fingerprint(path)
    side = fp.get("sidecar_sha256")
    return f"{path.name}:sha256:{fp['sha256'][:16]}" + (f":sidecar:{side[:16]}" if side else "")
