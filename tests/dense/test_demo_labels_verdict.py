"""The generated dense demos, class-name matching across label sets, and the dense verdict rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.dense.labels import COCO80, VOC20, canonical, match_classes, unmatched
from advisor.dense.results import DenseCandidate, DenseResults, Role
from advisor.dense.types import DenseDataset, DenseSample


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_detection_demo_is_deterministic_coco_with_boxes_inside_the_canvas(cache):
    from advisor.dense.demo import CANVAS, DEMO_CLASSES, N_IMAGES, dense_demo_path

    root = dense_demo_path("detection")
    doc = json.loads((root / "annotations.json").read_text())
    assert len(doc["images"]) == N_IMAGES == len(list((root / "images").glob("*.png")))
    assert [c["name"] for c in doc["categories"]] == list(DEMO_CLASSES)
    for a in doc["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and w >= 4 and h >= 4 and x + w <= CANVAS and y + h <= CANVAS
    per_class = np.bincount([a["category_id"] for a in doc["annotations"]], minlength=4)[1:]
    assert per_class.min() >= 30  # every class well represented
    first = (root / "images" / "scene-000.png").read_bytes()
    import shutil

    shutil.rmtree(root)
    assert (dense_demo_path("detection") / "images" / "scene-000.png").read_bytes() == first


def test_segmentation_demo_masks_hold_only_declared_class_indices(cache):
    from PIL import Image

    from advisor.dense.demo import DEMO_CLASSES, dense_demo_path

    root = dense_demo_path("segmentation")
    classes = (root / "classes.txt").read_text().split()
    assert classes == ["background", *DEMO_CLASSES]
    seen: set[int] = set()
    for p in sorted((root / "masks").glob("*.png"))[:20]:
        m = np.asarray(Image.open(p))
        assert m.shape == (160, 160)
        seen |= set(np.unique(m).tolist())
    assert seen == {0, 1, 2, 3}


def test_demo_refuses_an_unknown_task(cache):
    from advisor.dense.demo import dense_demo_path
    from advisor.errors import UsageError

    with pytest.raises(UsageError, match="no demo for task 'keypoints'"):
        dense_demo_path("keypoints")


def test_label_matching_across_voc_and_coco_spellings():
    mapping = match_classes(["Aeroplane", "tv_monitor", "sofa", "people", "RBC", "background"], COCO80)
    assert {i: COCO80[j] for i, j in mapping.items()} == {0: "airplane", 1: "tv", 2: "couch", 3: "person"}
    assert unmatched(
        ["Aeroplane", "RBC", "background"], match_classes(["Aeroplane", "RBC", "background"], COCO80)
    ) == ["RBC"]
    assert len(match_classes(list(VOC20), COCO80)) == 20  # every VOC class has a COCO name
    assert canonical("Faces") == "face" and canonical("bus") == "bus"  # plural dropped, short words kept


def _row(mid, role, value=None, ci=None, zs=None, matched=0, oof=None):
    r = DenseCandidate(mid, role, pretrained=role not in (Role.TWIN, Role.FLOOR))
    if value is not None:
        r.proxy = {"value": value, "ci": list(ci) if ci else None}
        if oof is not None:
            r.proxy |= {"oof_ids": [str(i) for i in range(len(oof[0]))], "oof_y": oof[0], "oof_pred": oof[1]}
    if zs is not None:
        r.zero_shot = {"value": zs, "classes_matched": matched, "classes_total": 2}
    return r


def _ds(task="detection", n=1):
    from pathlib import Path

    samples = [DenseSample(f"{i}.png", path=Path(f"{i}.png"), width=10, height=10) for i in range(n)]
    return DenseDataset(Path("/data"), task, "coco", ["cat", "dog"], samples)


def test_verdict_new_head_route_separates_a_clearly_better_backbone_and_reports_floors():
    from advisor.dense.verdict import decide
    from advisor.recommend.config import RunConfig

    y = [i % 2 for i in range(200)]
    good = y  # always right
    bad = [1 - v if i % 3 == 0 else v for i, v in enumerate(y)]  # wrong on a third
    rows = [
        _row("pkg:a", Role.BACKBONE, 1.0, (0.98, 1.0), oof=(y, good)),
        _row("pkg:b", Role.BACKBONE, 0.66, (0.6, 0.72), oof=(y, bad)),
        _row("pkg:a (random init)", Role.TWIN, 0.5, (0.43, 0.57)),
        _row("raw-pixels", Role.FLOOR, 0.55, (0.48, 0.62)),
    ]
    v = decide(rows, _ds(), RunConfig(data="/data"), [])
    assert v["route"] == "new-head" and v["winner"] == "pkg:a" and v["tied_with_best"] == []
    assert rows[0].rank == 1 and rows[1].rank == 2 and rows[1].proxy["tie_test"]["method"] == "mcnemar-holm"
    assert (
        "pkg:a beats the raw-pixel floor raw-pixels: 1.000 vs 0.550 (95% intervals disjoint)" in v["reasons"]
    )
    assert (
        "pkg:a beats the random-init twin pkg:a (random init): 1.000 vs 0.500 (95% intervals disjoint)"
        in v["reasons"]
    )
    assert (
        v["next_command"] is None
    )  # separated from the other backbone and from both floors: nothing to rerun


def _tied_backbones():
    """Two backbones with equal proxy values whose out-of-fold predictions differ on one crop each: tied."""
    y = [i % 2 for i in range(40)]
    a = [v if i != 0 else 1 - v for i, v in enumerate(y)]
    b = [v if i != 1 else 1 - v for i, v in enumerate(y)]
    return [
        _row("pkg:a", Role.BACKBONE, 0.975, (0.87, 0.99), oof=(y, a)),
        _row("pkg:b", Role.BACKBONE, 0.975, (0.87, 0.99), oof=(y, b)),
    ]


def test_verdict_calls_a_tie_when_the_paired_test_cannot_separate_and_says_when_a_floor_wins():
    from advisor.dense.verdict import decide
    from advisor.recommend.config import RunConfig

    rows = [*_tied_backbones(), _row("raw-pixels", Role.FLOOR, 0.99, (0.9, 1.0))]
    v = decide(rows, _ds(n=300), RunConfig(data="/data"), [], n_sampled=50)
    assert (
        v["route"] == "new-head" and v["tied_with_best"] == ["pkg:b"] and "tied by the proxy" in v["headline"]
    )
    assert any("pretraining shows no advantage" in line for line in v["reasons"])
    assert "the raw-pixel floor (0.990) is not significantly below it" in v["headline"]
    assert "--models pkg:a,pkg:b --max-samples 150" in v["next_command"]  # tied: more images would separate
    notes: list[str] = []
    v = decide(rows, _ds(n=300), RunConfig(data="/data"), notes, n_sampled=300)
    assert v["next_command"] is None and "every image was used" in notes[0]  # nothing more to sample


def test_next_command_repeats_the_run_options_that_change_what_is_measured():
    """The rerun on more images must measure the same thing: a run with --no-roi-probe, --no-bench, a split, a
    seed and an ignore index says so in its "Next:" command (it used to drop them), and every flag it writes is
    one `advisor recommend` takes."""
    import shlex

    import typer.main

    from advisor.cli.main import app
    from advisor.dense.verdict import decide
    from advisor.recommend.config import RunConfig

    rows = _tied_backbones()
    cfg = RunConfig(
        data="/my data", roi_probe=False, bench=False, split="train", seed=3, ignore_index=0, offline=True
    )
    cmd = decide(rows, _ds(n=300), cfg, [], n_sampled=50)["next_command"]
    argv = shlex.split(cmd)
    assert argv[:2] == ["advisor", "recommend"] and argv[argv.index("--data") + 1] == "/my data"
    for flag, value in (("--split", "train"), ("--seed", "3"), ("--ignore-index", "0")):
        assert argv[argv.index(flag) + 1] == value, cmd
    assert {"--no-roi-probe", "--no-bench", "--offline"} <= set(argv), cmd
    recommend = typer.main.get_group(app).commands["recommend"]
    known = {o for p in recommend.params for o in (*p.opts, *p.secondary_opts)}
    assert {a for a in argv if a.startswith("--")} <= known, cmd
    # defaults are not repeated; a segmentation run never gets the detection-only flag
    plain = decide(rows, _ds(task="segmentation", n=300), RunConfig(data="/d", roi_probe=False), [], 50)
    assert plain["next_command"].endswith("--max-samples 150"), plain["next_command"]


def test_verdict_prefers_full_label_coverage_zero_shot_then_partial_fine_tune():
    from advisor.dense.verdict import decide
    from advisor.recommend.config import RunConfig

    rows = [
        _row("pkg:face", Role.ZERO_SHOT, zs=0.8, matched=2),
        _row("pkg:x", Role.BACKBONE, 0.9, (0.8, 0.95)),
    ]
    v = decide(rows, _ds(), RunConfig(data="/data"), [])
    assert v["route"] == "zero-shot" and v["winner"] == "pkg:face" and "mAP 0.800" in v["headline"]
    rows = [_row("pkg:face", Role.ZERO_SHOT, zs=0.8, matched=1)]
    v = decide(rows, _ds("segmentation"), RunConfig(data="/data"), [])
    assert (
        v["route"] == "fine-tune-head"
        and "covers 1 of 2 classes" in v["headline"]
        and "mIoU" in v["headline"]
    )
    rows = [_row("pkg:face", Role.ZERO_SHOT, zs=0.004, matched=2)]  # covers every class but fails on the data
    v = decide(rows, _ds(), RunConfig(data="/data"), [])
    assert (
        v["route"] == "fine-tune-head"
        and "too low to use it as is" in v["headline"]
        and "as is:" not in (v["headline"])
    )


def test_dense_results_round_trip_and_reports_escape_user_strings(tmp_path):
    from advisor.report.dense import load_dense_results, render_dense, write_dense_dir

    evil = "<script>x</script>|=cmd"
    r = DenseResults(
        task="detection",
        dataset={"path": f"/d/{evil}", "format": "coco", "classes": [evil], "images": 1, "warnings": []},
        config={},
        candidates=[_row("=HYPERLINK(1)", Role.BACKBONE, 0.5, (0.4, 0.6))],
        verdict={"route": "new-head", "headline": evil, "reasons": [evil], "next_command": None},
    )
    paths = write_dense_dir(r, tmp_path / "run")
    back = load_dense_results(paths["json"])
    assert back.to_dict() == r.to_dict() | {"run_dir": None}
    assert back.candidates[0].proxy_value == 0.5 and r.run_dir == str(tmp_path / "run")
    html = render_dense(r, "html")
    assert "<script>" not in html and "&lt;script&gt;" in html
    md = render_dense(r, "md")
    assert "<script>" not in md
    csv_text = render_dense(r, "csv")
    assert "\n'=HYPERLINK(1)," in csv_text  # a formula-looking cell is neutralised
