"""The one output sink: `--format human|json`, Rich tables for people, JSON for programs, one-line errors."""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

# JSON conversion lives below the CLI (cache keys hash it); re-exported for the commands.
from advisor.io import dumps as dumps
from advisor.io import to_jsonable as to_jsonable

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(str, enum.Enum):
    human = "human"
    json = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="Output format: a Rich table for people, or JSON for programs.",
        case_sensitive=False,
    ),
]


# C0 controls (newline and tab too: one cell, one line), DEL, C1 (CSI/OSC introducers), and the Unicode
# bidirectional overrides/isolates that can make a terminal show text in another order than it is.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def strip_control(value: object) -> str:
    """`str(value)` with every control character shown as a visible escape (ESC -> `\\x1b`), so user text never
    drives the terminal (no ANSI colours, OSC title changes, cursor moves or bidi reordering)."""
    text = str(value)
    return _CONTROL_RE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def safe(value: object) -> str:
    """A user-supplied value (label, path, model id, message that quotes them) made safe to print with Rich:
    control characters made visible (`strip_control`) and Rich markup escaped, so `[/INST]` prints as itself
    instead of raising MarkupError and `[bold red]x[/bold red]` is not turned into styling."""
    from rich.markup import escape

    return escape(strip_control(value))


def stdout_console() -> Console:
    """Console for results. When stdout is not a terminal (a pipe, a file) tables get a wide page, not 80 columns."""
    import os

    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(soft_wrap=False, width=width)


def stderr_console() -> Console:
    """Console for messages (progress, notes, warnings, errors): stderr, so stdout stays the result alone."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # a message is one line, however narrow the terminal


class Output:
    """The one output sink of the CLI: the result on stdout (JSON, a Rich renderer or raw text), messages on stderr.

    Args:
        fmt: ``json`` writes every result as JSON; ``human`` hands it to the command's renderer.
    """

    def __init__(self, fmt: OutputFormat | str = OutputFormat.human) -> None:
        self.fmt = OutputFormat(fmt)

    @property
    def human(self) -> bool:
        """True when results are for people (a renderer runs), False for ``--format json``."""
        return self.fmt == OutputFormat.human

    def result(self, data: Any, render: Callable[[Any], None] | None = None) -> None:
        """Print a result: JSON on stdout for ``--format json`` (or without a renderer), else ``render(data)``."""
        if not self.human or render is None:
            self.text(dumps(data) + "\n")
        else:
            render(data)

    @staticmethod
    def text(text: str) -> None:
        """Write already rendered text (markdown, CSV, HTML, JSON) to stdout as is."""
        sys.stdout.write(text)
        sys.stdout.flush()

    @staticmethod
    def note(message: str) -> None:
        """A dim message on stderr (progress, where a file went)."""
        stderr_console().print(f"[dim]{safe(message)}[/]", highlight=False)

    @staticmethod
    def warn(message: str) -> None:
        """A warning on stderr."""
        warn(message)

    @staticmethod
    def error(message: str, hint: str | None = None) -> None:
        """One error line on stderr (and the hint, saying what to do); exiting is the caller's part."""
        error(message, hint)


def print_each(console: Console, prefix: str, items: Iterable[object]) -> None:
    """Print `items` one a line, each after `prefix` (Rich markup such as ``"[yellow]warning:[/] "``) and made
    inert (`safe`)."""
    for item in items:
        console.print(f"{prefix}{safe(item)}", highlight=False)


def warn(message: str) -> None:
    """A warning line on stderr."""
    stderr_console().print(f"[yellow]warning:[/] {safe(message)}", highlight=False)


def error(message: str, hint: str | None = None) -> None:
    """``Error: message`` on stderr, then ``hint: ...`` when there is one; user text is printed inertly (`safe`)."""
    msg = safe(message) + (f"\n  [dim]hint:[/] {safe(hint)}" if hint else "")
    stderr_console().print(f"[bold red]Error:[/] {msg}", highlight=False)


INTERRUPTED = "[yellow]Interrupted.[/] Finished work is cached; rerun the command to resume."
