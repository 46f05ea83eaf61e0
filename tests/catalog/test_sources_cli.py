"""`advisor catalog list/show` on the published figures the new sources bring: sort, bounds, columns, ids."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from advisor.cli.main import app

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _mteb(e: dict) -> float | None:
    return next((m["value"] for m in e["metrics"] if m["dataset"] == "mteb-classification"), None)


def test_sort_mteb_with_min_bound() -> None:
    data = _json(
        [
            "catalog",
            "list",
            "--modality",
            "text",
            "--sort",
            "mteb",
            "--desc",
            "--min",
            "mteb=60",
            "--format",
            "json",
        ]
    )
    vals = [_mteb(e) for e in data["entries"]]
    assert len(vals) >= 50 and all(v is not None and v >= 60 for v in vals)
    assert vals == sorted(vals, reverse=True)


def test_sort_wer_with_max_bound() -> None:
    data = _json(
        ["catalog", "list", "--modality", "audio", "--sort", "wer", "--max", "wer=8", "--format", "json"]
    )
    wers = [
        next(
            m["value"] for m in e["metrics"] if m["dataset"] == "open-asr-en-shortform" and m["name"] == "wer"
        )
        for e in data["entries"]
    ]
    assert wers and all(w <= 8 for w in wers) and wers == sorted(wers)


def test_bad_bound_is_one_line_error() -> None:
    for bad in ("mteb", "speed=3"):
        r = runner.invoke(app, ["catalog", "list", "--min", bad])
        assert r.exit_code != 0 and "Traceback" not in r.output and "--min" in r.output


def test_columns_follow_the_modality() -> None:
    text = runner.invoke(app, ["catalog", "list", "--modality", "text", "--limit", "3"], terminal_width=160)
    assert "MTEB cls %" in text.stdout and "top-1" not in text.stdout
    asr = runner.invoke(
        app, ["catalog", "list", "--task", "speech-recognition", "--limit", "3"], terminal_width=160
    )
    assert "WER %" in asr.stdout


def test_show_untagged_id_and_protocols() -> None:
    assert _json(["catalog", "show", "timm:resnet50", "--format", "json"])["id"].startswith("timm:resnet50.")
    e = _json(["catalog", "show", "hf:sentence-transformers/all-MiniLM-L6-v2", "--format", "json"])
    assert any(
        m.get("protocol") == "few-shot logistic-regression probe" and m.get("split") for m in e["metrics"]
    )


def test_commercial_says_copyleft_is_excluded() -> None:
    r = runner.invoke(app, ["catalog", "list", "--license", "commercial", "--limit", "1"])
    assert r.exit_code == 0 and "copyleft" in r.output
