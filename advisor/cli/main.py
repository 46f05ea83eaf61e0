"""The `advisor` command: the root typer app, the one error boundary, and the registration of each noun's module."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from advisor import __version__
from advisor.cli._output import INTERRUPTED, Output, stderr_console, strip_control
from advisor.cli.options import DEBUG_META_KEY
from advisor.errors import AdvisorError

if TYPE_CHECKING:
    from typer._click.core import Context

SHORT_FLAGS = (
    "Short flags mean the same in every command: -d dataset, -m model id(s), -b batch size(s), "
    "-o output file or folder, -f output format, -u what to unfreeze, -e epochs, -h help; "
    "before the command: -v more log lines, -q fewer."
)


def _debugging(ctx: Context) -> bool:
    return bool(ctx.meta.get(DEBUG_META_KEY) or os.environ.get("ADVISOR_DEBUG"))


class AdvisorGroup(TyperGroup):
    """The root group. Its `invoke` runs every command, so it is the CLI's one error boundary: a domain error
    (`AdvisorError`) becomes ``Error: message`` + ``hint: ...`` on stderr and the error's exit code, Ctrl-C exit 130;
    with ``--debug`` or ``ADVISOR_DEBUG=1`` the exception propagates (full traceback)."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdvisorError as e:
            if _debugging(ctx):
                raise
            Output.error(e.message, hint=e.hint)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            if _debugging(ctx):
                raise
            stderr_console().print(INTERRUPTED)
            ctx.exit(130)


app = typer.Typer(
    name="advisor",
    cls=AdvisorGroup,
    help="Which pretrained model should I use for my data, on my hardware? Catalog, advisor and benchmark harness.",
    epilog=SHORT_FLAGS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per noun. Each has a typer app `app` (a named one: a command group) whose commands join the root in
# this order (the order of `advisor --help`), and must not import torch/timm/transformers at import time:
# `advisor --help` and `advisor catalog ...` stay fast (checked by tests/test_cli_imports.py).
COMMAND_MODULES = (
    "advisor.cli.features",
    "advisor.cli.score",
    "advisor.cli.bench",
    "advisor.cli.recommend",
    "advisor.cli.finetune",
    "advisor.cli.sweep",
    "advisor.cli.catalog",
    "advisor.cli.data",
    "advisor.cli.metrics",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"advisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks on error (or set ADVISOR_DEBUG=1).")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more on stderr: -v info, -vv debug.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")] = False,
) -> None:
    """advisor: pick, measure and explain pretrained models for your data."""
    from advisor.cli.progress import install

    configure_logging(verbose=verbose, quiet=quiet)
    install()  # library progress (advisor.progress) is drawn as a Rich bar on a terminal
    if debug:
        ctx.meta[DEBUG_META_KEY] = True


class _StderrHandler(logging.Handler):
    """Log records as ``level: message`` on whatever `sys.stderr` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {strip_control(self.format(record))}\n")
        except Exception:  # logging must never break a command
            self.handleError(record)


def configure_logging(*, verbose: int = 0, quiet: bool = False) -> None:
    """The library logs with `logging` under ``advisor``; the CLI shows warnings (``-v`` info, ``-vv`` debug,
    ``--quiet`` errors only) on stderr, so stdout stays the result."""
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    log = logging.getLogger("advisor")
    for h in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(h)
    handler = _StderrHandler()
    handler.setLevel(level)
    log.addHandler(handler)
    if verbose or quiet:  # else the logger keeps its level (by default the root's, warning)
        log.setLevel(level)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a noun not built yet in this checkout
            if e.name == name:
                continue
            raise
        app.add_typer(module.app)


_register_all()


def main() -> None:
    """Console-script entry point (errors are turned into one line by `AdvisorGroup.invoke`)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
