"""Where advisor keeps its caches and results: one root, overridable by the ADVISOR_CACHE_DIR environment variable."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ADVISOR_CACHE_DIR"


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The cache root (``$ADVISOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/advisor``, else ``~/.cache/advisor``) or a subfolder."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "advisor"
    p = base.joinpath(*parts)
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p
