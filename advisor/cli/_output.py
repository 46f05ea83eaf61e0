"""The one output sink: `--format human|json`, Rich tables for people, JSON for programs, one-line errors."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from advisor.errors import AdvisorError


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
DebugOption = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on error.", hidden=True)]


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, enums, paths, numpy/torch scalars and arrays into JSON-ready values (NaN/inf -> None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def dumps(obj: Any) -> str:
    """Serialise `obj` as indented JSON with the conversions of `to_jsonable`."""
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False)


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


def stdout_console():
    """Console for results. When stdout is not a terminal (a pipe, a file) tables get a wide page, not 80 columns."""
    import os

    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(soft_wrap=False, width=width)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def emit(data: Any, fmt: OutputFormat, human: Callable[[Any], None] | None = None) -> None:
    """Print a result: JSON on stdout for `--format json`, else `human(data)` (a Rich renderer)."""
    if fmt == OutputFormat.json or human is None:
        sys.stdout.write(dumps(data) + "\n")
        sys.stdout.flush()
    else:
        human(data)


def fail(message: str, exit_code: int = 1) -> None:
    """Print one error line on stderr and exit non-zero."""
    stderr_console().print(f"[bold red]Error:[/] {safe(message)}", highlight=False, markup=True)
    raise typer.Exit(exit_code)


@contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn domain errors (and interrupts) into one line on stderr and an exit code; tracebacks only with --debug."""
    try:
        yield
    except AdvisorError as e:
        if debug:
            raise
        msg = safe(e.message) + (f"\n  [dim]hint:[/] {safe(e.hint)}" if e.hint else "")
        stderr_console().print(f"[bold red]Error:[/] {msg}", highlight=False)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        stderr_console().print(
            "[yellow]Interrupted.[/] Finished work is cached; rerun the command to resume."
        )
        raise typer.Exit(130) from None
