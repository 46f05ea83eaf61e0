"""`advisor recommend`: candidates, staged ranking, linear probes, strategy advice and the typed results.

The package itself is callable, so ``advisor.recommend(data, **options)`` works however it was imported
(``import advisor.recommend.run`` makes ``advisor.recommend`` this package, which then forwards the call to
`advisor.recommend.run.recommend`). Importing it stays light: torch loads only when a run starts.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("recommend", "run_recommend"):
        from advisor.recommend.run import recommend

        return recommend
    raise AttributeError(f"module 'advisor.recommend' has no attribute {name!r}")


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any):
        """Run a recommendation: see `advisor.recommend.run.recommend`."""
        from advisor.recommend.run import recommend

        return recommend(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
