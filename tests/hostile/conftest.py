"""Helpers for the hostile suite: run the CLI in-process and check that an error is one line, no traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


class Ran:
    """One CLI run: exit code, combined output, and the parsed JSON document when ``--format json`` printed one."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.code: int = result.exit_code
        self.output: str = result.output
        self.stdout: str = result.stdout
        self.stderr: str = result.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def assert_ok(self) -> Ran:
        assert self.code == 0, self.output
        assert self.result.exception is None or isinstance(self.result.exception, SystemExit), repr(
            self.result.exception
        )
        assert "Traceback" not in self.output
        return self

    def assert_error(self, *needles: str, code: int | None = None) -> str:
        """Non-zero exit through the error boundary: a SystemExit (not an escaped exception), no traceback, and
        one error line (plus at most its hint line) that holds every needle. Returns the error line."""
        assert self.code != 0, self.output
        if code is not None:
            assert self.code == code, (self.code, self.output)
        assert isinstance(self.result.exception, SystemExit), repr(self.result.exception)
        assert "Traceback" not in self.output
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        assert 1 <= len(lines) <= 2, self.stderr
        if len(lines) == 2:
            assert lines[1].strip().startswith("hint:"), self.stderr
        for n in needles:
            assert n in lines[0], (n, lines[0])
        return lines[0]


@pytest.fixture
def cli() -> Callable[..., Ran]:
    """``cli("data", "profile", path, "--format", "json")`` -> `Ran` (wide terminal, so lines never wrap)."""
    from typer.testing import CliRunner

    from advisor.cli.main import app

    def run(*args: Any, env: dict[str, str] | None = None) -> Ran:
        return Ran(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "500", **(env or {})}))

    return run
