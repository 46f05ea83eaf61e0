"""`advisor data profile` on dense data: the Rich tables, one counted line per warning, JSON, and the fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import dense_synth as syn
from typer.testing import CliRunner

from advisor.cli.main import app

runner = CliRunner()


def test_profile_voc_human_lists_counted_warnings(tmp_path: Path) -> None:
    root = syn.write_voc(tmp_path / "voc")
    r = runner.invoke(app, ["data", "profile", str(root)])
    assert r.exit_code == 0, r.output
    assert "detection" in r.output and "voc" in r.output and "Platelets" in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert sorted(ln.split(":")[1].strip() for ln in lines) == [
        "bad-annotation ×1", "crowd ×1", "degenerate-box ×1", "missing-image ×1",
    ]  # fmt: skip


def test_profile_masks_json(tmp_path: Path) -> None:
    root = syn.write_masks(tmp_path / "seg", binary=True)
    r = runner.invoke(app, ["data", "profile", str(root), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["task"], d["format"], d["class_names"]) == (
        "segmentation",
        "mask-folder",
        ["background", "foreground"],
    )
    assert d["pixel_share"] == {"background": 0.5, "foreground": 0.5}
    assert [(w["code"], w["count"]) for w in d["warnings"]] == [("binary-mask-255", 3)]


def test_profile_task_mismatch_is_one_line_error(tmp_path: Path) -> None:
    root = syn.write_coco(tmp_path / "coco")
    r = runner.invoke(app, ["data", "profile", str(root), "--task", "segmentation"])
    assert r.exit_code == 1
    assert "not segmentation data" in r.output and "Traceback" not in r.output


def test_classification_folder_keeps_the_classic_profile(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        syn.write_image(tmp_path / "cls" / cls / "0.png")
    r = runner.invoke(app, ["data", "profile", str(tmp_path / "cls"), "-f", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["class_counts"] == {"cat": 1, "dog": 1} and "task" not in d
