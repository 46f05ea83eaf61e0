"""The CLI's progress display: a Rich bar on stderr (items/s), installed as `advisor.progress`'s factory."""

from __future__ import annotations

import sys
import time

from advisor.progress import NullProgress, ProgressBar, set_progress_factory


class RichProgress:
    """A transient Rich progress bar on stderr for one task (label escaped: it may be a user's path)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} items/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            redirect_stdout=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(escape(label), total=total, rate="-")
        self.t0 = time.perf_counter()
        self.done = 0

    def advance(self, n: int) -> None:
        """``n`` more items done; the rate is items per second since the start."""
        self.done += n
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=n, rate=f"{rate:.1f}")

    def close(self) -> None:
        """Remove the bar."""
        self.bar.stop()


def terminal_progress(total: int, label: str) -> ProgressBar:
    """A Rich bar when stderr is a terminal, else nothing (logs and pipes get no control sequences)."""
    if not sys.stderr.isatty():
        return NullProgress()
    return RichProgress(total, label)


def install() -> None:
    """Make `terminal_progress` the progress display of every library call in this process."""
    set_progress_factory(terminal_progress)
