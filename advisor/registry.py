"""The one rule every plug-in registry keeps: a name is registered once (`add_unique`)."""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")


def add_unique(table: dict[str, V], name: str, value: V, kind: str) -> None:
    """Put `value` under `name` in the registry `table` of plug-ins of one `kind` (``"model source"``, ...).

    Raises:
        ValueError: `name` is already registered (a programming error, not a user error).
    """
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered")
    table[name] = value
