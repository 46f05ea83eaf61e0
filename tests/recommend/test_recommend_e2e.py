"""End to end: `advisor recommend` on a tiny synthetic image folder with tiny random timm models given as local
safetensors files (no download), through the Python API and the CLI; caching and failure isolation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("timm")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 classes x 12 images of 32x32 px whose colour depends on the class; two tiny random models."""
    import timm
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("toy")
    data = root / "shapes"
    rng = np.random.default_rng(0)
    base = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for cls, rgb in base.items():
        (data / cls).mkdir(parents=True)
        for i in range(12):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(data / cls / f"{i:02d}.png")
    models = []
    for arch in ("test_vit", "test_efficientnet"):
        torch.manual_seed(0)
        m = timm.create_model(arch, pretrained=False)
        f = root / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:{arch}&input_size=64")
    return data, models


def test_api_end_to_end_and_rerun_is_cached(toy, tmp_path, monkeypatch):
    import advisor
    from advisor.bench import reliability

    # Stored latency is reused only when reliable; on this shared test machine it may not be, so judge every
    # figure reliable here (tests/bench/test_bench_reliability.py covers the unreliable path).
    real_assess = reliability.assess
    monkeypatch.setattr(
        reliability, "assess", lambda rec: {**real_assess(rec), "reliable": True, "reasons": []}
    )

    data, models = toy
    opts = dict(
        models=models,
        device="cpu",
        folds=3,
        out=str(tmp_path / "run"),
        latency_batch_size=1,
        bench_min_time_s=0.1,
        bench_max_time_s=1.0,
    )
    res = advisor.recommend(data, **opts)
    assert [c.rank for c in res.ranked] == [1, 2]
    w = res.winner
    assert w.probe["accuracy"] > 0.5  # colour classes are easy even for random features (chance 1/3)
    assert w.probe["accuracy_ci"][0] <= w.probe["accuracy"] <= w.probe["accuracy_ci"][1]
    assert w.reasons and "probe accuracy" in w.reasons[0]
    assert w.scores and any(s.get("value") is not None for s in w.scores.values())
    assert w.bench and w.bench["latency_ms_p50"] > 0
    assert res.advice["strategy"] == "linear-probe"  # 12 per class < few_per_class
    floor = res.candidate("baseline:raw-pixels")
    assert floor.status == "baseline" and floor.rank is None
    assert floor.probe["accuracy"] > 0.9  # colour classes: raw pixels separate them
    assert any("floor" in n for n in res.notes)  # random-weight models are not significantly better
    assert res.dataset["fingerprint"] and res.dataset["n_classes"] == 3
    for f in ("results.json", "results.csv", "report.md", "report.html"):
        assert (tmp_path / "run" / f).is_file()
    assert "<svg" in (tmp_path / "run" / "report.html").read_text()
    # the rerun reads features, scores, probes and bench figures from caches
    res2 = advisor.recommend(data, **(opts | {"out": None}))
    assert [c.model_id for c in res2.ranked] == [c.model_id for c in res.ranked]
    assert res2.winner.probe["accuracy"] == w.probe["accuracy"]
    assert all(c.bench["cached"] for c in res2.ranked)
    assert all(
        c.cached == {"features": True, "scores": True, "bench": True, "probe": True} for c in res2.ranked
    )


def test_adding_a_candidate_computes_only_that_one(toy):
    import advisor

    data, models = toy
    opts = dict(device="cpu", folds=3, out=None, bench=False)
    advisor.recommend(data, models=models[:1], **opts)
    res = advisor.recommend(data, models=models, **opts)
    old, new = res.candidate(models[0]), res.candidate(models[1])
    assert old.cached == {"features": True, "scores": True, "probe": True}
    assert new.cached == {"features": False, "scores": False, "probe": False}


def test_failed_candidate_is_reported_and_run_continues(toy):
    import advisor

    data, models = toy
    res = advisor.recommend(
        data,
        models=[models[0], "timm:resnet18.a1_in1k"],
        device="cpu",
        folds=3,
        out=None,
        bench=False,
        offline=True,
    )
    assert [c.model_id for c in res.ranked] == [models[0]]
    bad = res.candidate("timm:resnet18.a1_in1k")
    # offline, with no cached weights: left out before any work, with the reason
    assert bad.status == "excluded" and bad.rank is None and bad.error is None
    assert len(bad.reasons) == 1 and "offline" in bad.reasons[0]


def test_cli_json_and_dry_run(toy, tmp_path):
    from advisor.cli.main import app

    data, models = toy
    runner = CliRunner()
    r = runner.invoke(
        app, ["recommend", str(data), "--models", ",".join(models), "--dry-run", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert [c["model_id"] for c in plan["candidates"]] == models and plan["estimated_seconds"] > 0
    r = runner.invoke(
        app,
        [
            "recommend",
            str(data),
            "-m",
            models[0],
            "--no-bench",
            "--folds",
            "3",
            "--out",
            str(tmp_path / "o"),
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["schema"] == "advisor.recommend" and d["winner"] == models[0]
    assert d["run_dir"] == str(tmp_path / "o")
    r = runner.invoke(app, ["report", str(tmp_path / "o"), "--format", "json"])
    assert json.loads(r.stdout)["winner"] == models[0]
    r = runner.invoke(app, ["recommend", str(data), "--max-params", "lots"])
    assert r.exit_code == 2 and "parameter count" in r.output


def test_finetune_top_compares_with_the_probe_and_reaches_the_report(toy, tmp_path):
    import advisor
    from advisor.report.render import render_markdown

    data, models = toy
    res = advisor.recommend(
        data,
        models=models[:1],
        device="cpu",
        folds=3,
        out=str(tmp_path / "run"),
        bench=False,
        baselines=False,
        finetune_top=1,
        finetune_epochs=1,
        finetune_unfreeze="last-1",
    )
    (check,) = res.advice["finetune_check"]
    assert check["status"] == "done" and check["model_id"] == res.winner.model_id
    assert check["unfreeze"] == "last-1"
    assert 0.0 <= check["finetune_accuracy"] <= 1.0
    assert check["probe_accuracy"] == res.winner.probe["accuracy"]
    assert check["gain_pp"] == pytest.approx(100 * (check["finetune_accuracy"] - check["probe_accuracy"]))
    assert check["probe_ci"] == res.winner.probe["accuracy_ci"]
    (f_lo, f_hi), (p_lo, p_hi) = check["finetune_ci"], check["probe_ci"]
    expected = "better" if f_lo > p_hi else "worse" if f_hi < p_lo else "no clear difference"
    assert check["verdict"] == expected and check["paid_off"] == (expected == "better")
    md = render_markdown(res)
    assert "## Fine-tuning check" in md and check["verdict"] in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Fine-tuning check" in html
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["advice"]["finetune_check"][0]["verdict"] == check["verdict"]
