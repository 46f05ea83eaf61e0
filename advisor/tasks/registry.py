"""A small registry for code plug-ins: refuses duplicate names, loads lazy entries on first use, suggests on a miss."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from advisor.errors import UsageError
from advisor.registry import add_unique

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plug-ins of one kind (tasks, ...).

    An entry is either the object itself or a lazy ``"package.module:attribute"`` reference, imported on the
    first `get` (so listing names never imports heavy modules).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T]:
        """Add `obj` (or a lazy ``"module:attr"`` string) under `name`; without `obj`, a decorator.

        Raises:
            ValueError: `name` is already registered (a programming error, not a user error).
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def add(o: T) -> T:
            add_unique(self._entries, name, o, self.kind)
            return o

        if obj is not None:
            self._entries[name] = obj
        return add

    def get(self, name: str) -> T:
        """The entry called `name` (imported now when it is lazy).

        Raises:
            UsageError: no such entry; the message lists close names ("did you mean") and all valid ones.
        """
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3)
            hint = (
                f"did you mean {', '.join(close)}? " if close else ""
            ) + f"valid: {', '.join(self.names())}"
            raise UsageError(f"unknown {self.kind} {name!r}", hint=hint)
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            loaded: T = getattr(importlib.import_module(module), attr)
            self._entries[name] = loaded
            return loaded
        return entry

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
