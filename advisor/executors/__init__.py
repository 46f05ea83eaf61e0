"""Executors of the per-candidate work (`advisor.recommend.work`): a registry by name, ``serial``, ``threads`` and
``ray``.

An executor runs `evaluate_candidate` over the `CandidateSpec` of each candidate and hands back its
`CandidateOutcome` (`advisor.recommend.work.Executor`). ``serial`` (the default) runs them one after
the other in this process; ``threads`` (`advisor.executors.threads`) with a thread pool in this process; ``ray`` (`advisor.executors.ray_executor`, optional extra ``advisor[ray]``) runs them as
Ray tasks on a local instance or a cluster. Which executor ran a candidate is not part of any cache key: the
figures do not depend on it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from advisor.errors import UsageError
from advisor.recommend.work import Executor, SerialExecutor
from advisor.registry import add_unique

__all__ = ["EXECUTORS", "get_executor", "register_executor"]

EXECUTORS: dict[str, Callable[..., Executor]] = {}


def register_executor(name: str) -> Callable[[Callable[..., Executor]], Callable[..., Executor]]:
    """Decorator: register a factory ``(**options) -> Executor`` under `name` (a duplicate raises ValueError)."""

    def deco(factory: Callable[..., Executor]) -> Callable[..., Executor]:
        add_unique(EXECUTORS, name, factory, "executor")
        return factory

    return deco


def get_executor(name: str, **options: Any) -> Executor:
    """The executor registered as `name`, built with `options` (``ray``: those of `RayExecutor`).

    Raises:
        UsageError: an unknown name, an option the executor does not take, or ``ray`` without Ray installed.
    """
    factory = EXECUTORS.get(name)
    if factory is None:
        raise UsageError(f"unknown executor {name!r}", hint=f"use one of: {', '.join(sorted(EXECUTORS))}")
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return factory(**given)
    except TypeError as e:
        raise UsageError(f"executor {name!r} does not take these options: {e}") from None


@register_executor("serial")
def _serial(**options: Any) -> Executor:
    if options:
        raise UsageError(
            f"the serial executor takes no options (got {', '.join(sorted(options))})",
            hint="--ray-address needs --executor ray",
        )
    return SerialExecutor()


@register_executor("threads")
def _threads(**options: Any) -> Executor:
    from advisor.executors.threads import ThreadExecutor

    unknown = set(options) - {"workers"}
    if unknown:
        raise UsageError(
            f"the threads executor takes only `workers` (got {', '.join(sorted(unknown))})",
            hint="--ray-address needs --executor ray",
        )
    return ThreadExecutor(**options)


@register_executor("ray")
def _ray(**options: Any) -> Executor:
    if importlib.util.find_spec("ray") is None:
        raise UsageError(
            "the ray executor needs Ray, which is not installed", hint="pip install 'advisor[ray]'"
        )
    from advisor.executors.ray_executor import RayExecutor

    return RayExecutor(**options)
