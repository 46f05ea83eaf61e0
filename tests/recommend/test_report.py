"""Report rendering (markdown, CSV, JSON, single-file HTML with SVG) and the versioned results schema."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from typer.testing import CliRunner

from advisor.errors import ResultsError
from advisor.recommend.results import (
    CANDIDATE_REQUIRED_KEYS,
    REQUIRED_KEYS,
    SCHEMA_VERSION,
    CandidateResult,
    RecommendResults,
    load_results,
)
from advisor.report.render import render, write_run_dir


def _results() -> RecommendResults:
    a = CandidateResult(
        model_id="timm:a",
        status="ranked",
        rank=1,
        stage="probe",
        n_params=5_000_000,
        license="Apache-2.0",
        scores={
            "logme": {"value": 1.5, "higher_is_better": True, "applicable": True, "reason": None, "ci": None}
        },
        predicted={"score": 0.8, "rank": 1, "uncertainty": 0.1, "signals": {"logme": 1.0}},
        probe={
            "accuracy": 0.91,
            "accuracy_ci": [0.89, 0.93],
            "macro_f1": 0.9,
            "macro_f1_ci": [0.88, 0.92],
            "per_class_accuracy": [0.95, 0.87],
        },
        bench={"batch_size": 1, "latency_ms_p50": 3.1, "peak_memory_mb": 40.0},
        pareto=True,
        tie_group=1,
        reasons=["best probe accuracy 91.0 ± 2.0 %, 3.1 ms p50 at batch 1, Apache-2.0"],
    )
    b = CandidateResult(
        model_id="timm:b<&>",
        status="ranked",
        rank=2,
        stage="probe",
        n_params=25_000_000,
        license="MIT",
        scores={
            "logme": {"value": 1.1, "higher_is_better": True, "applicable": True, "reason": None, "ci": None}
        },
        predicted={"score": -0.8, "rank": 2, "uncertainty": 0.2, "signals": {"logme": -1.0}},
        probe={
            "accuracy": 0.80,
            "accuracy_ci": [0.77, 0.83],
            "macro_f1": 0.79,
            "macro_f1_ci": [0.76, 0.82],
            "per_class_accuracy": [0.8, 0.8],
        },
        bench={"batch_size": 1, "latency_ms_p50": 9.0, "peak_memory_mb": 120.0},
        pareto=False,
        tie_group=2,
        reasons=["probe accuracy 80.0 ± 3.0 %"],
    )
    c = CandidateResult(model_id="timm:broken", status="failed", error="weights not available offline")
    return RecommendResults(
        dataset={
            "name": "toy",
            "root": "/tmp/toy",
            "modality": "image",
            "fingerprint": "abc",
            "n_samples": 40,
            "n_classes": 2,
            "classes": ["cat", "dog"],
            "class_counts": {"cat": 20, "dog": 20},
            "subsample": {"n": 40},
            "profile": None,
        },
        config={"data": "/tmp/toy", "device": "cpu", "latency_batch_size": 1},
        candidates=[a, b, c],
        hardware={"cpu": "test cpu", "cores": 2},
        versions={"advisor": "0.1.0"},
        weights={"weights": {"logme": 1.0}, "note": "provisional"},
        advice={
            "strategy": "linear-probe",
            "summary": "linear-probe: because few samples",
            "evidence": {"n": 20},
            "thresholds": {"few_per_class": 20},
        },
        timings={"total": 1.0},
        notes=["timm:broken skipped"],
        created_utc="2026-01-01T00:00:00Z",
        advisor_version="0.1.0",
    )


def test_json_schema_keys_and_roundtrip(tmp_path):
    r = _results()
    d = json.loads(render(r, "json"))
    assert d["schema"] == "advisor.recommend" and d["schema_version"] == SCHEMA_VERSION
    assert all(k in d for k in REQUIRED_KEYS)
    assert all(k in cand for cand in d["candidates"] for k in CANDIDATE_REQUIRED_KEYS)
    assert d["winner"] == "timm:a"
    write_run_dir(r, tmp_path / "run")
    back = load_results(tmp_path / "run")
    assert back.to_dict() == r.to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ResultsError, match="version"):
        load_results(tmp_path / "bad.json")
    with pytest.raises(ResultsError):
        load_results(tmp_path / "missing")


def test_html_single_file_with_svg_and_no_external_refs():
    html = render(_results(), "html")
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 4
    assert "<script" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?://", html)
    assert "<link" not in html
    assert "timm:b&lt;&amp;&gt;" in html  # escaped
    assert "Pareto" in html and "91.0 ± 2.0" in html


def test_markdown_and_csv_content():
    r = _results()
    md = render(r, "md")
    assert "# advisor recommend: toy" in md
    assert "| 1 | timm:a | 91.0 ± 2.0 |" in md
    assert "timm:broken" in md and "failed" in md
    assert "linear-probe" in md and "provisional" in md
    rows = list(csv.DictReader(io.StringIO(render(r, "csv"))))
    assert [x["model_id"] for x in rows] == ["timm:a", "timm:b<&>", "timm:broken"]
    assert float(rows[0]["probe_accuracy"]) == pytest.approx(0.91)
    assert rows[0]["score_logme"] == "1.5" and rows[2]["error"].startswith("weights")


def test_report_cli_rerenders_without_recompute(tmp_path):
    from advisor.cli.main import app

    write_run_dir(_results(), tmp_path / "run")
    (tmp_path / "run" / "report.html").unlink()
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["winner"] == "timm:a"
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--format", "md"])
    assert res.exit_code == 0 and "timm:a" in res.stdout
    res = runner.invoke(app, ["report", str(tmp_path / "run"), "--rewrite", "--format", "csv"])
    assert res.exit_code == 0 and (tmp_path / "run" / "report.html").is_file()
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "results.json" in res.output


def test_finetune_rows_say_not_fine_tuned_for_a_skipped_candidate_and_failed_for_a_failure():
    """An untrainable candidate (ONNX) that --finetune-top skipped is not shown as a failure."""
    from advisor.report.render import finetune_rows

    r = _results()
    r.advice = dict(r.advice or {})
    r.advice["finetune_check"] = [
        {"model_id": "local:m.onnx", "unfreeze": "last-1", "status": "skipped", "error": "an ONNX graph"},
        {"model_id": "timm:x", "unfreeze": "last-1", "status": "failed", "error": "out of memory"},
    ]
    _, rows = finetune_rows(r)
    assert rows[0][-1] == "not fine-tuned: an ONNX graph"
    assert rows[1][-1] == "failed: out of memory"


def test_the_published_figure_stands_beside_the_measured_ones():
    from advisor.recommend.results import CandidateResult
    from advisor.report.render import published_cell

    assert published_cell(CandidateResult("timm:x", imagenet_top1=80.37)) == "80.4 IN-1k top-1"
    assert (
        published_cell(CandidateResult("pkg:all-MiniLM-L6-v2", mteb_classification=62.07)) == "62.1 MTEB cls"
    )
    assert published_cell(CandidateResult("local:/m.onnx")) == "-"
