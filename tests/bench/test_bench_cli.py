"""`advisor bench`: JSON output with units, stored record, reuse, and one-line errors."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from advisor.cli.main import app

runner = CliRunner()
FAST = [
    "--device",
    "cpu",
    "--min-time",
    "0.02",
    "--max-time",
    "0.5",
    "--min-repeats",
    "3",
    "--warmup",
    "1",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def vit_json(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cli-cache")
    env = {"ADVISOR_CACHE_DIR": str(cache)}
    out = runner.invoke(
        app, ["bench", "timm:test_vit", "--batch-sizes", "1,2", *FAST, "--format", "json"], env=env
    )
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout), cache, env


def test_json_has_figures_with_units_and_gmacs(vit_json):
    data, cache, _ = vit_json
    (r,) = data["results"]
    assert r["model_id"] == "timm:test_vit" and r["pretrained"] is False
    assert r["units"]["latency"] == "ms per batch" and r["units"]["throughput"] == "items/s"
    assert [x["batch_size"] for x in r["records"]] == [1, 2]
    for x in r["records"]:
        lat = x["latency"]
        assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
        assert x["throughput_items_per_s"] == pytest.approx(x["batch_size"] / lat["p50_ms"] * 1000)
        assert x["dtype"] == "float32" and x["threads"] == 1 and x["channels_last"] is False
        assert x["memory"]["cpu_rss_peak_mb"] > 0
    assert r["gmacs"]["gmacs"] == pytest.approx(0.038, abs=0.002)
    assert r["gmacs_published"][0]["matches_published"] is True  # 0.038 counted, 0.04 published (2 decimals)
    assert r["published_comparison"] and r["published_comparison"][0]["published"]["file"].endswith(".csv")
    assert r["cold_start"]["load_s"] > 0 and r["cold_start"]["first_call_s"] > 0
    assert r["hardware"]["key"] and r["config"]["min_time"] == 0.02
    con = sqlite3.connect(cache / "bench.sqlite")
    assert con.execute("SELECT COUNT(*) FROM figures WHERE model_id='timm:test_vit'").fetchone()[0] == 2


@pytest.fixture
def reliable_store(monkeypatch):
    """Whether a stored figure is reusable depends on this (shared) machine's load and spread when it was measured
    (tests/bench/test_bench_reliability.py covers that); here the point is the key match, so call it reliable."""
    monkeypatch.setattr("advisor.bench.reliability.reusable", lambda record: True)


def test_reuse_returns_the_stored_result(vit_json, reliable_store):
    data, _, env = vit_json
    out = runner.invoke(
        app, ["bench", "timm:test_vit", "--batch-sizes", "1,2", *FAST, "--format", "json", "--reuse"], env=env
    )
    assert out.exit_code == 0, out.output
    (r,) = json.loads(out.stdout)["results"]
    assert r["from_cache"] is True and r["key"] == data["results"][0]["key"]


def test_human_output_is_a_table_with_units(vit_json, reliable_store):
    _, _, env = vit_json
    out = runner.invoke(app, ["bench", "timm:test_vit", "--batch-sizes", "1,2", *FAST, "--reuse"], env=env)
    assert out.exit_code == 0, out.output
    assert "p50 ms" in out.stdout and "items/s" in out.stdout and "GMACs" in out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["timm:test_vit", "--batch-sizes", "1,x"],
        ["timm:test_vit", "--precision", "fp8"],
        ["timm:test_vit", "--device", "tpu"],
    ],
)
def test_bad_options_give_one_line_errors(args):
    out = runner.invoke(app, ["bench", *args, "--format", "json"])
    assert out.exit_code == 2
    assert "Traceback" not in out.output and "Error" in out.output


def test_unknown_model_is_a_domain_error():
    out = runner.invoke(app, ["bench", "timm:no_such_model_xyz", *FAST, "--no-flops"])
    assert out.exit_code != 0
    assert "Traceback" not in out.output and "no_such_model_xyz" in out.output
