"""The CLI's shared shapes: one error boundary, one meaning per short flag, deprecated spellings that still work
(hidden from --help), `--pretrained/--random-init`, and commands that build the library config from their options."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from advisor.cli.main import app
from advisor.errors import DatasetError, UsageError

runner = CliRunner()


class _Stop(UsageError):
    """Raised by a stand-in API function once it has recorded its arguments."""


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A 2-class text table."""
    p = tmp_path / "t.csv"
    p.write_text("text,label\n" + "".join(f"{w} {i},{w}\n" for w in ("cat", "dog") for i in range(4)))
    return p


def _capture(monkeypatch: pytest.MonkeyPatch, name: str, result: Any = None) -> dict[str, Any]:
    """Replace `advisor.api.<name>` by a stand-in that records its arguments (and returns `result`, or stops)."""
    import advisor.api

    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs, args=args)
        if result is None:
            raise _Stop("stopped by the test")
        return result

    monkeypatch.setattr(advisor.api, name, fake)
    return seen


# ----------------------------------------------------------------------------------------------- error boundary
def test_domain_error_is_one_line_with_hint_and_exit_code(tmp_path):
    r = runner.invoke(app, ["data", "profile", str(tmp_path / "missing")])
    assert r.exit_code == DatasetError.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "missing" in lines[0]
    assert lines[1].strip().startswith("hint: ") and "Traceback" not in r.output and r.stdout == ""


@pytest.mark.parametrize(
    "args, env",
    [
        (["data", "profile", "MISSING", "--debug"], {}),
        (["--debug", "data", "profile", "MISSING"], {}),
        (["data", "profile", "MISSING"], {"ADVISOR_DEBUG": "1"}),
    ],
)
def test_debug_lets_the_exception_through(tmp_path, args, env):
    args = [str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    r = runner.invoke(app, args, env=env)
    assert isinstance(r.exception, DatasetError) and "Error: " not in r.stderr


def test_usage_error_exits_2_and_interrupt_exits_130(monkeypatch, table):
    r = runner.invoke(app, ["recommend"])
    assert r.exit_code == 2 and "--data" in r.stderr

    import advisor.api

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(advisor.api, "profile", interrupted)
    r = runner.invoke(app, ["data", "profile", str(table)])
    assert r.exit_code == 130 and "Interrupted" in r.stderr


@pytest.mark.parametrize(
    "flags, shown",
    [
        ([], {"warning"}),
        (["-v"], {"warning", "info"}),
        (["-vv"], {"warning", "info", "debug"}),
        (["-q"], set()),
    ],
)
def test_verbose_and_quiet_set_what_the_library_log_shows(monkeypatch, table, flags, shown):
    import logging

    import advisor.api

    def logs(*args: Any, **kwargs: Any) -> Any:
        log = logging.getLogger("advisor.api")
        log.debug("a debug line")
        log.info("an info line")
        log.warning("a warning line")
        raise _Stop("stopped by the test")

    monkeypatch.setattr(advisor.api, "profile", logs)
    try:
        r = runner.invoke(app, [*flags, "data", "profile", str(table)])
    finally:
        logging.getLogger("advisor").setLevel(logging.NOTSET)
    assert r.exit_code == 2 and r.stdout == ""
    assert {lvl for lvl in ("debug", "info", "warning") if f"{lvl}: a" in r.stderr} == shown


# ----------------------------------------------------------------------------------------------- flags
def _visible_options(group: Any, path: str = "") -> list[tuple[str, str, list[str]]]:
    """(command path, parameter name, visible option strings) for every option of every command."""
    rows = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            rows += _visible_options(cmd, f"{path} {name}")
            continue
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                rows.append((f"{path} {name}".strip(), p.name, p.opts + p.secondary_opts))
    return rows


def test_each_short_flag_has_one_meaning_across_commands():
    meanings: dict[str, set[str]] = {}
    for _cmd, pname, opts in _visible_options(typer.main.get_command(app)):
        for o in opts:
            if len(o) == 2:
                meanings.setdefault(o, set()).add(pname)
    assert meanings["-m"] == {"model", "models"}
    assert meanings["-d"] == {"data"} and meanings["-f"] == {"fmt"} and meanings["-o"] == {"out"}
    assert meanings["-b"] == {"batch_size", "batch_sizes"}
    assert all(len(m) == 1 or o in ("-m", "-b") for o, m in meanings.items()), meanings


def test_one_name_per_concept():
    opts = {o for _c, _p, os_ in _visible_options(typer.main.get_command(app)) for o in os_}
    assert {"--workers", "--scores", "--pretrained", "--random-init", "--out"} <= opts
    assert not {"--num-workers", "--metrics", "--output"} & opts  # the old spellings are hidden


def test_deprecated_spellings_are_hidden_from_help():
    assert "--metrics" not in runner.invoke(app, ["score", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--num-workers" not in runner.invoke(app, ["features", "--help"], env={"COLUMNS": "200"}).stdout


def _scores_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.normal(size=(30, 4)) + y[:, None]
    f = tmp_path / "f.npz"
    np.savez(f, features=x.astype(np.float32), labels=y)
    return f


@pytest.mark.parametrize("spelling", ["--metrics", "-m"])
def test_score_old_spellings_still_work(tmp_path, spelling):
    f = _scores_file(tmp_path)
    new = runner.invoke(app, ["score", str(f), "--scores", "logme,hscore", "-f", "json"])
    old = runner.invoke(app, ["score", str(f), spelling, "logme,hscore", "-f", "json"])
    assert new.exit_code == old.exit_code == 0, old.output
    strip = lambda d: {k: {**v, "seconds": None} for k, v in d.items()}  # noqa: E731
    assert strip(json.loads(old.stdout)) == strip(json.loads(new.stdout))
    assert list(json.loads(old.stdout)) == ["logme", "hscore"]
    assert f"{spelling} is deprecated; use --scores" in old.stderr and "deprecated" not in new.stderr


@pytest.mark.parametrize("spelling", ["--workers", "--num-workers", "--num-workers=2"])
def test_features_workers_both_spellings(monkeypatch, table, spelling):
    seen = _capture(monkeypatch, "features")
    args = [spelling] if "=" in spelling else [spelling, "2"]
    r = runner.invoke(app, ["features", "-d", str(table), "-m", "timm:test_vit", *args])
    assert r.exit_code == 2 and seen["workers"] == 2
    assert ("deprecated" in r.stderr) == spelling.startswith("--num-workers")


@pytest.mark.parametrize(
    "command, flags, pretrained",
    [
        ("features", [], True),
        ("features", ["--random-init"], False),
        ("features", ["--pretrained"], True),
        ("bench", [], False),
        ("bench", ["--pretrained"], True),
        ("finetune", ["--random-init"], False),
    ],
)
def test_pretrained_and_random_init(monkeypatch, table, command, flags, pretrained):
    if command == "bench":
        seen = _capture(monkeypatch, "bench")
        r = runner.invoke(app, ["bench", "timm:test_vit", *flags])
        seen["pretrained"] = seen["args"][1].pretrained
    else:
        seen = _capture(monkeypatch, command)
        r = runner.invoke(app, [command, "-d", str(table), "-m", "timm:test_vit", *flags])
    assert r.exit_code == 2, r.output
    assert seen["pretrained"] is pretrained


def test_data_modality_old_short_flag_and_values_that_look_like_flags(monkeypatch, table):
    seen = _capture(monkeypatch, "profile")
    r = runner.invoke(app, ["data", "profile", str(table), "-m", "text", "--label-column", "-m"])
    assert r.exit_code == 2 and "-m is deprecated; use --modality" in r.stderr
    (spec,) = seen["args"]
    assert spec.modality == "text" and spec.label_column == "-m"  # a value is never rewritten


def test_report_output_is_an_alias_of_out(monkeypatch, tmp_path):
    import advisor.report.render

    _capture(monkeypatch, "report", result=object())
    monkeypatch.setattr(advisor.report.render, "render", lambda res, fmt: f"rendered as {fmt}\n")
    for spelling in ("--out", "--output", "-o"):
        target = tmp_path / f"r{spelling.strip('-')}.md"
        r = runner.invoke(app, ["report", str(tmp_path), "--format", "md", spelling, str(target)])
        assert r.exit_code == 0, r.output
        assert target.read_text() == "rendered as md\n"
        assert ("deprecated" in r.stderr) == (spelling == "--output")


@pytest.mark.parametrize("text, value", [("25M", 25e6), ("1.5B", 1.5e9), ("300k", 3e5), ("2.5e7", 2.5e7), ("25_000_000", 25e6)])  # fmt: skip
def test_parse_count(text, value):
    from advisor.cli.options import parse_count

    assert parse_count(text) == value


@pytest.mark.parametrize("command", [["catalog", "list"], ["recommend", "DATA"]])
def test_bad_count_is_a_usage_error_in_every_command(table, command):
    args = [str(table) if a == "DATA" else a for a in command]
    r = runner.invoke(app, [*args, "--max-params", "lots"])
    assert r.exit_code == 2 and "cannot read a parameter count" in r.stderr


# ----------------------------------------------------------------------------------------------- recommend's config
def test_recommend_defaults_are_the_run_config_defaults(monkeypatch, table):
    from advisor.api import run_config

    seen = _capture(monkeypatch, "recommend")
    r = runner.invoke(app, ["recommend", str(table), "--format", "json"])
    assert r.exit_code == 2, r.output
    assert seen["config"] == run_config(table)


def test_recommend_options_reach_the_run_config(monkeypatch, table):
    seen = _capture(monkeypatch, "recommend")
    args = ["recommend", "-d", str(table), "-m", "a, b", "-m", "c", "--scores", "logme", "--max-params", "5M"]
    args += ["--budget", "3", "--threads", "2", "--candidate-timeout", "30", "--task", "classification"]
    args += ["--license", "permissive", "--combine", "rank", "--no-out", "-b", "8", "--group-column", "g"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    cfg = seen["config"]
    want = dict(
        data=str(table), models=("a", "b", "c"), scores=("logme",), max_params=5e6, budget_minutes=3.0,
        bench_threads=2, candidate_timeout_s=30.0, task="classification", license="permissive",
        combine="rank", out=None, batch_size=8, group_column="g", progress=True,
    )  # fmt: skip
    assert {k: getattr(cfg, k) for k in want} == want
    assert dataclasses.replace(cfg, **{k: getattr(cfg, k) for k in want}) == cfg


def test_candidate_timeout_must_be_positive(table):
    r = runner.invoke(app, ["recommend", str(table), "--candidate-timeout", "0"])
    assert r.exit_code == 2 and "--candidate-timeout" in r.stderr


def test_the_error_boundary_is_in_one_place():
    import ast

    import advisor.cli

    catches: dict[str, int] = {}
    for f in sorted(Path(advisor.cli.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ExceptHandler) and "AdvisorError" in ast.unparse(
                node.type or ast.Name("")
            ):
                catches[f.name] = catches.get(f.name, 0) + 1
    assert catches == {"main.py": 1}


def test_every_deprecated_spelling_points_at_an_option_of_its_command():
    from advisor.cli.options import DEPRECATED

    by_command: dict[str, set[str]] = {}
    for cmd, _p, opts in _visible_options(typer.main.get_command(app)):
        by_command.setdefault(cmd.split()[-1], set()).update(opts)
    for name, aliases in DEPRECATED.items():
        for old, new in aliases.items():
            assert new in by_command[name] and old not in by_command[name], (name, old, new)


def test_bench_options_reach_the_bench_config(monkeypatch):
    from advisor.bench.runner import BenchConfig

    seen = _capture(monkeypatch, "bench")
    args = [
        "bench",
        "timm:test_vit",
        "--no-flops",
        "-b",
        "1, 4",
        "--precision",
        "fp32,bf16",
        "--threads",
        "2",
    ]
    r = runner.invoke(app, [*args, "--min-repeats", "5", "--channels-last"])
    assert r.exit_code == 2, r.output
    models, cfg = seen["args"]
    assert models == ["timm:test_vit"] and seen == {"args": seen["args"], "store": True, "reuse": False}
    want = BenchConfig(
        batch_sizes=(1, 4), precision=("fp32", "bf16"), threads=2, min_repeats=5, channels_last=True,
        count_flops=False,
    )  # fmt: skip
    assert cfg == want


@pytest.mark.parametrize("command", ["recommend", "sweep"])
def test_the_executor_help_keeps_the_extra_name(command):
    """Regression: Rich markup swallowed ``[ray]``, so the help said ``pip install 'advisor'``."""
    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    assert "pip install 'advisor[ray]'" in r.output


def test_recommend_help_states_the_shortlist_default() -> None:
    from advisor.recommend.config import DEFAULT_SHORTLIST

    out = runner.invoke(app, ["recommend", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
    assert f"linear probe (default {DEFAULT_SHORTLIST})" in " ".join(out.split())
