"""`advisor recommend`: candidates, staged ranking, linear probes, strategy advice and the typed results.

The package itself is callable, so ``advisor.recommend(data, **options)`` works however it was imported
(``import advisor.recommend.run`` makes ``advisor.recommend`` this package, which then forwards the call to
`advisor.api.recommend`). Importing it stays light: torch loads only when a run starts.
"""

from __future__ import annotations

import sys
from typing import Any

from advisor import _CallableModule


def __getattr__(name: str) -> Any:
    if name in ("recommend", "run_recommend"):
        from advisor.recommend.run import recommend

        return recommend
    raise AttributeError(f"module 'advisor.recommend' has no attribute {name!r}")


# callable as `advisor.api.recommend`, like the other subpackages named after an API function (it forwarded to
# `advisor.recommend.run.recommend` once, which takes neither ``config=`` nor ``executor=``)
sys.modules[__name__].__class__ = _CallableModule
