"""advisor: which pretrained model should I use for my data, on my hardware?

The package is import-light: torch, timm and transformers load only when a function that needs them runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "recommend"]


def __getattr__(name: str):
    """Lazy public API: ``advisor.recommend(data, **options)`` imports the orchestration on first use.

    ``advisor.recommend`` is the (callable) subpackage, so it is the same object before and after
    ``advisor.recommend.run`` is imported; calling it runs `advisor.recommend.run.recommend`.
    """
    if name == "recommend":
        import importlib

        return importlib.import_module("advisor.recommend")
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")
