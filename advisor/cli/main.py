"""The `advisor` command: the root typer app and the registration of each noun's module."""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer

from advisor import __version__

app = typer.Typer(
    name="advisor",
    help="Which pretrained model should I use for my data, on my hardware? Catalog, advisor and benchmark harness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per noun. Each defines `register(app)` and must not import torch/timm/transformers at import time:
# `advisor --help` and `advisor catalog ...` stay fast (checked by tests/test_cli_imports.py).
COMMAND_MODULES = (
    "advisor.cli.catalog",
    "advisor.cli.data",
    "advisor.cli.features",
    "advisor.cli.score",
    "advisor.cli.bench",
    "advisor.cli.recommend",
    "advisor.cli.finetune",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"advisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """advisor: pick, measure and explain pretrained models for your data."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a noun not built yet in this checkout
            if e.name == name:
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
