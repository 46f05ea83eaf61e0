"""advisor: which pretrained model should I use for my data, on my hardware?

The public API is one function per CLI command, defined in `advisor.api`::

    advisor.profile(data)                    advisor.features(data, "timm:resnet18.a1_in1k")
    advisor.score("feats.npz")               advisor.bench(["timm:resnet18.a1_in1k"], batch_sizes=(1, 8))
    advisor.recommend(data, device="cpu")    advisor.finetune(data, "timm:resnet18.a1_in1k", epochs=3)
    advisor.report("advisor-runs/RUN")       advisor.catalog("convnext in22k", max_params=30e6)
    advisor.metrics("detection", "gt.json", "predictions.json")
    advisor.sweep(["data/a", "data/b"], models="pkg:efficientnet_lite0,pkg:mobilenetv3_small_100")

``features``, ``bench``, ``recommend``, ``finetune``, ``report``, ``catalog``, ``metrics`` and ``sweep`` are also the names of subpackages
(``advisor.bench.runner`` ...). Python sets a subpackage as an attribute of ``advisor`` once it is imported, so
those names are the subpackages themselves, made callable: calling one runs its `advisor.api` function. The
package is import-light: torch, timm and transformers load only when a function that needs them runs.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# API functions whose name is also a module of this package; the rest are plain functions of advisor.api.
_MODULE_NAMES = frozenset(
    {"features", "bench", "recommend", "finetune", "report", "catalog", "metrics", "sweep"}
)
_FUNCTION_NAMES = frozenset({"profile", "score", "sample", "DatasetSpec"})

__all__ = sorted({"__version__", *_MODULE_NAMES, *_FUNCTION_NAMES})


class _CallableModule(types.ModuleType):
    """A subpackage that is also an API function: ``advisor.bench(...)`` runs `advisor.api.bench`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from advisor import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        """The API function's signature, so ``inspect.signature`` (IDEs, ``advisor.recommend?``) shows its options."""
        import inspect

        from advisor import api

        return inspect.signature(getattr(api, self.__name__.rpartition(".")[2]))


class _AdvisorPackage(types.ModuleType):
    """``advisor`` itself: whichever way a subpackage named like an API function was imported, reading it
    from ``advisor`` returns it callable (a module that already is, like `advisor.recommend`, is left alone)."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in _MODULE_NAMES and isinstance(value, types.ModuleType) and not callable(value):
            value.__class__ = _CallableModule
        return value


def __getattr__(name: str) -> Any:
    """Lazy public API: the subpackages and `advisor.api` functions load on first use."""
    if name in _MODULE_NAMES:
        return importlib.import_module(f"advisor.{name}")
    if name in _FUNCTION_NAMES:
        return getattr(importlib.import_module("advisor.api"), name)
    raise AttributeError(f"module 'advisor' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy public API as well as what is loaded (tab completion, ``dir(advisor)``)."""
    return sorted(set(globals()) | set(__all__))


sys.modules[__name__].__class__ = _AdvisorPackage
