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


def _figure(e: dict, name: str) -> float | None:
    return next((m["value"] for m in e["metrics"] if m["name"] == name), None)


def test_dense_tasks_sort_and_bound_by_their_own_figure_and_take_the_recommend_names() -> None:
    det = _json(["catalog", "list", "--task", "detection", "--sort", "box_map", "--desc", "--format", "json"])
    maps = [_figure(e, "box_map") for e in det["entries"]]
    assert det["total"] == len(maps) >= 20 and {e["task"] for e in det["entries"]} == {"object-detection"}
    known = [m for m in maps if m is not None]
    assert known == sorted(known, reverse=True) and maps[: len(known)] == known  # unknown last
    seg = _json(["catalog", "list", "--task", "segmentation", "--min", "miou=63", "--format", "json"])
    mious = [_figure(e, "miou") for e in seg["entries"]]
    assert mious and all(v is not None and v >= 63 for v in mious)
    assert len(mious) < _json(["catalog", "list", "--task", "segmentation", "--format", "json"])["total"]


def test_dense_columns_replace_imagenet_top1() -> None:
    det = runner.invoke(app, ["catalog", "list", "--task", "detection", "--limit", "3"], terminal_width=160)
    assert "box mAP %" in det.stdout and "top-1" not in det.stdout and "mIoU" not in det.stdout
    seg = runner.invoke(
        app, ["catalog", "list", "--task", "segmentation", "--limit", "3"], terminal_width=160
    )
    assert "mIoU %" in seg.stdout and "top-1" not in seg.stdout
    img = runner.invoke(
        app, ["catalog", "list", "--task", "image-classification", "--limit", "3"], terminal_width=160
    )
    assert "IN-1k top-1 %" in img.stdout and "box mAP" not in img.stdout


def test_show_explains_the_license_class() -> None:
    agpl = runner.invoke(app, ["catalog", "show", "pkg:ultralytics/yolov8n"], terminal_width=200)
    words = " ".join(agpl.stdout.split())  # the table wraps long cells
    assert agpl.exit_code == 0 and "AGPL-3.0-only (copyleft)" in words
    assert "released under the same license; excluded by --license permissive and commercial" in words
    mit = runner.invoke(app, ["catalog", "show", "timm:resnet50"], terminal_width=200)
    assert "kept by every --license policy" in " ".join(mit.stdout.split())
