"""`advisor recommend --executor serial|ray --ray-address ADDR`: the executor reaches `advisor.api.recommend`
and never the run config (it is part of no cache key)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from advisor.cli.main import app
from advisor.errors import UsageError
from advisor.executors.ray_executor import RayExecutor
from advisor.recommend.config import RunConfig
from advisor.recommend.work import SerialExecutor

runner = CliRunner()


class _Stop(UsageError):
    """Raised by the stand-in `api.recommend` once it has recorded its arguments."""


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import advisor.api

    got: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> Any:
        got.update(kwargs)
        raise _Stop("stopped by the test")

    monkeypatch.setattr(advisor.api, "recommend", fake)
    return got


@pytest.fixture
def table(tmp_path: Path) -> Path:
    p = tmp_path / "t.csv"
    p.write_text("text,label\n" + "".join(f"{w} {i},{w}\n" for w in ("cat", "dog") for i in range(4)))
    return p


def test_default_is_the_serial_executor(seen, table):
    r = runner.invoke(app, ["recommend", str(table), "--no-out"])
    assert r.exit_code == 2, r.output
    assert isinstance(seen["executor"], SerialExecutor)


def test_ray_executor_with_an_address_and_no_executor_field_in_the_config(seen, table):
    pytest.importorskip("ray")  # builds the executor only; nothing starts
    r = runner.invoke(
        app, ["recommend", str(table), "--no-out", "--executor", "ray", "--ray-address", "auto"]
    )
    assert r.exit_code == 2, r.output
    ex = seen["executor"]
    assert isinstance(ex, RayExecutor) and ex.address == "auto"
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    assert not fields & {"executor", "ray_address"} and isinstance(seen["config"], RunConfig)


def test_ray_address_without_the_ray_executor_is_a_usage_error(seen, table):
    r = runner.invoke(app, ["recommend", str(table), "--no-out", "--ray-address", "auto"])
    assert r.exit_code == 2 and "takes no options" in r.stderr and "--executor ray" in r.stderr
    assert seen == {}  # refused before anything ran
