"""The one progress interface: library code reports progress through `progress_bar`; the CLI decides how it looks.

Library modules never draw (no Rich below the CLI). The CLI installs a factory at start-up
(`set_progress_factory`); without one, progress is silent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ProgressBar(Protocol):
    """A progress display for one task of ``total`` items."""

    def advance(self, n: int) -> None:
        """``n`` more items are done."""

    def close(self) -> None:
        """The task ended (finished, failed or interrupted): remove the display."""


ProgressFactory = Callable[[int, str], ProgressBar]


class NullProgress:
    """A progress bar that shows nothing."""

    def advance(self, n: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


_factory: ProgressFactory | None = None


def set_progress_factory(factory: ProgressFactory | None) -> ProgressFactory | None:
    """Install how progress is shown (``factory(total, label) -> ProgressBar``); returns the previous factory."""
    global _factory
    previous, _factory = _factory, factory
    return previous


def progress_bar(total: int, label: str, enabled: bool = True) -> ProgressBar:
    """A progress bar for ``total`` items from the installed factory, or a silent one (disabled, nothing to do,
    or no factory installed)."""
    if not enabled or total <= 0 or _factory is None:
        return NullProgress()
    return _factory(total, label)


__all__ = ["NullProgress", "ProgressBar", "ProgressFactory", "progress_bar", "set_progress_factory"]
