"""A results.json written by an old release (commit 1e8a1bc) keeps loading, rendering and round-tripping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from advisor.recommend.results import RecommendResults, load_results

FIXTURE = Path(__file__).parent / "fixtures" / "results_1e8a1bc.json"


@pytest.fixture()
def old_run(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURE, run / "results.json")
    return run


def test_old_results_load_with_their_ranking():
    r = load_results(FIXTURE)
    assert r.advisor_version == "0.1.0" and r.schema_version == 1
    assert [(c.model_id, c.rank) for c in r.ranked][:1] == [("pkg:efficientnet_lite0", 1)]
    assert len(r.ranked) == 2 and r.winner is not None and r.winner.probe["accuracy"] == 1.0
    assert {c.model_id: c.status for c in r.candidates if c.rank is None} == {
        "baseline:raw-pixels": "baseline",
        "timm:resnet18.a1_in1k": "excluded",
    }


def test_old_results_round_trip_every_stored_field():
    d = json.loads(FIXTURE.read_text(encoding="utf-8"))
    back = RecommendResults.from_dict(d).to_dict()
    for key, value in d.items():
        if key != "candidates":
            assert back[key] == value, key
    for old, new in zip(d["candidates"], back["candidates"], strict=True):
        assert {k: new[k] for k in old} == old


@pytest.mark.parametrize("fmt", ["md", "csv", "html", "json"])
def test_old_results_render(fmt):
    from advisor.report.render import render

    text = render(load_results(FIXTURE), fmt)
    assert "pkg:efficientnet_lite0" in text


def test_advisor_report_on_the_old_run(old_run):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    r = CliRunner().invoke(app, ["report", str(old_run), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["winner"] == "pkg:efficientnet_lite0" and d["advisor_version"] == "0.1.0"
    r = CliRunner().invoke(app, ["report", str(old_run), "--rewrite"])
    assert r.exit_code == 0, r.output
    assert (old_run / "report.md").is_file() and (old_run / "report.html").is_file()
