"""Where advisor keeps its caches and results: one root, overridable by the ADVISOR_CACHE_DIR environment variable."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ADVISOR_CACHE_DIR"


def cache_root() -> Path:
    """The cache root: ``$ADVISOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/advisor``, else ``~/.cache/advisor``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "advisor"


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The cache root (see `cache_root`) or a subfolder of it, created unless ``create=False``.

    Raises:
        StorageError: the folder cannot be created (read-only or permission denied, disk full).
    """
    p = cache_root().joinpath(*parts)
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            from advisor.io import storage_error

            raise storage_error(p, e) from e
    return p
