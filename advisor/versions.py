"""Library versions recorded with every result and folded into cache keys (one implementation for all modules)."""

from __future__ import annotations

import importlib.metadata as md
import platform
from collections.abc import Iterable

# The libraries whose versions can change a number advisor reports.
RESULT_PACKAGES = (
    "advisor",
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "numpy",
    "scipy",
    "scikit-learn",
    "onnxruntime",
    "safetensors",
    "fvcore",
)


def package_versions(names: Iterable[str], *, python: bool = True) -> dict[str, str | None]:
    """``{name: installed version or None}`` for `names`, plus the Python version when `python` is set."""
    out: dict[str, str | None] = {"python": platform.python_version()} if python else {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def library_versions() -> dict[str, str | None]:
    """Versions of Python, the platform and every library in RESULT_PACKAGES (None when not installed)."""
    return {"platform": platform.platform(), **package_versions(RESULT_PACKAGES)}
