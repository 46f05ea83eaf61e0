"""Strategy advice that agrees with the evidence (issue 11, must-have 5): no fine-tuning advice for a source that
cannot be fine-tuned, a next command that runs as printed, samples per class counted on the whole dataset, and
measured ``--finetune-top`` results (with their epochs) deciding between frozen features and fine-tuning."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advisor.data.types import Dataset, Sample
from advisor.recommend.finetune_check import finetune_check
from advisor.recommend.results import CandidateResult
from advisor.recommend.strategy import (
    build_advice,
    count_per_class,
    next_command,
    revise_with_finetune_check,
)


@dataclass
class Opts:
    """The recommend options the advice reads (a stand-in for RunConfig)."""

    data: str = "/data/my set"
    modality: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    group_pattern: str | None = None
    split_column: str | None = None
    budget_minutes: float | None = None
    finetune_budget_minutes: float | None = None


def _dataset(per_class: dict[str, int], split: str | None = None, extra_val: int = 0) -> Dataset:
    samples = []
    for c, n in per_class.items():
        samples += [Sample(f"{c}/{i}", c, None, f"text {i}", split) for i in range(n)]
        samples += [Sample(f"val/{c}/{i}", c, None, f"text {i}", "val") for i in range(extra_val)]
    return Dataset(
        root=Path("/data/my set"),
        modality="text",
        samples=samples,
        classes=sorted(per_class),
        skipped=[],
        fingerprint="f",
        layout="table",
    )


def _winner(model_id: str, acc: float = 0.8) -> CandidateResult:
    return CandidateResult(
        model_id=model_id, rank=1, probe={"accuracy": acc, "accuracy_ci": [acc - 0.05, acc + 0.05]}
    )


@pytest.mark.parametrize(
    ("model_id", "runtime"),
    [
        ("local:/models/net.onnx", None),
        ("local:/models/net.tflite?modality=image", None),
        ("pkg:paraphrase-MiniLM-L3-v2", "onnx"),  # a packaged ONNX graph: known from its feature runtime
    ],
)
def test_a_source_that_cannot_be_fine_tuned_gets_frozen_features(model_id, runtime):
    ds = _dataset({"a": 300, "b": 300})  # plenty of data: the rules alone would say fine-tune
    advice = build_advice(ds, [_winner(model_id, 0.7)], Opts(), runtimes={model_id: runtime})
    assert advice["strategy"] == "linear-probe" and advice["unfreeze"] == "head"
    assert "cannot be fine-tuned" in advice["rule"] and advice["evidence"]["finetunable"] is False
    cmd = advice["next_command"]
    assert cmd.startswith("advisor features ") and "finetune" not in cmd
    assert shlex.split(cmd)[shlex.split(cmd).index("--model") + 1] == model_id


def test_a_trainable_winner_with_the_same_data_is_advised_to_fine_tune():
    ds = _dataset({"a": 300, "b": 300})
    advice = build_advice(ds, [_winner("timm:resnet18.a1_in1k", 0.7)], Opts(), runtimes={})
    assert advice["strategy"] == "partial-finetune" and advice["evidence"]["finetunable"] is True
    assert shlex.split(advice["next_command"])[:2] == ["advisor", "finetune"]


def test_next_command_quotes_and_carries_the_data_options():
    opts = Opts(
        data="/data/my set", text_column="utterance", label_column="intent", finetune_budget_minutes=5
    )
    cmd = next_command(opts, "local:/m/x.safetensors?arch=timm:test_vit&input_size=64", "last-2")
    argv = shlex.split(cmd)
    assert argv[:2] == ["advisor", "finetune"]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert pairs == {
        "--data": "/data/my set",
        "--text-column": "utterance",
        "--label-column": "intent",
        "--model": "local:/m/x.safetensors?arch=timm:test_vit&input_size=64",  # & and ? quoted for the shell
        "--unfreeze": "last-2",
        "--budget": "5",
    }


def test_samples_per_class_count_the_train_split_of_a_given_split():
    ds = _dataset({"a": 10, "b": 12}, split="train", extra_val=30)
    counts, on = count_per_class(ds)
    assert counts.tolist() == [10, 12] and on == "train split"
    counts, on = count_per_class(_dataset({"a": 10, "b": 12}))
    assert counts.tolist() == [10, 12] and on == "whole dataset"
    # 11 train samples per class is below few_per_class, whatever the validation split holds
    advice = build_advice(ds, [_winner("timm:resnet18.a1_in1k", 0.7)], Opts())
    assert advice["evidence"]["median_samples_per_class"] == 11
    assert advice["evidence"]["samples_per_class_counted_on"] == "train split"
    assert advice["strategy"] == "linear-probe"


def _check(
    verdict: str, *, model="m", unfreeze="last-2", epochs=1, ft=0.367, probe=0.783, stopped="completed"
):
    return {
        "model_id": model,
        "status": "done",
        "unfreeze": unfreeze,
        "epochs": epochs,
        "epochs_run": epochs,
        "finetune_accuracy": ft,
        "probe_accuracy": probe,
        "verdict": verdict,
        "stopped_reason": stopped,
    }


def _advice():
    return build_advice(_dataset({"a": 60, "b": 60}), [_winner("m", 0.783)], Opts(), runtimes={"m": "torch"})


def test_a_worse_fine_tune_makes_the_advice_frozen_features_and_says_how_many_epochs():
    advice = _advice()
    assert advice["strategy"] == "partial-finetune"  # what the rules say before the check
    revised = revise_with_finetune_check(advice, [_check("worse")], Opts())
    assert revised["strategy"] == "linear-probe" and revised["unfreeze"] == "head"
    assert "(last-2, 1 epoch)" in revised["summary"] and "did worse" in revised["summary"]
    assert "after 1 epoch; more epochs might change this" in revised["summary"]
    assert "--unfreeze head" in revised["next_command"]
    assert (
        revised["revised_by"] == "finetune_check" and revised["rule_advice"]["strategy"] == "partial-finetune"
    )


def test_a_better_fine_tune_makes_the_advice_fine_tune_with_the_checked_setting():
    advice = build_advice(_dataset({"a": 15, "b": 15}), [_winner("m", 0.7)], Opts())
    assert advice["strategy"] == "linear-probe"  # few samples per class
    revised = revise_with_finetune_check(advice, [_check("better", epochs=3, ft=0.95, probe=0.7)], Opts())
    assert revised["strategy"] == "partial-finetune" and revised["unfreeze"] == "last-2"
    assert "--unfreeze last-2" in revised["next_command"] and "3 epochs" in revised["summary"]
    full = revise_with_finetune_check(advice, [_check("better", unfreeze="all", ft=0.95, probe=0.7)], Opts())
    assert full["strategy"] == "full-finetune" and "--unfreeze all" in full["next_command"]


def test_a_tie_keeps_the_cheaper_frozen_features():
    revised = revise_with_finetune_check(_advice(), [_check("no clear difference", ft=0.79)], Opts())
    assert revised["strategy"] == "linear-probe" and "within noise" in revised["summary"]


def test_checks_of_other_models_or_failed_checks_leave_the_advice_alone():
    advice = _advice()
    assert revise_with_finetune_check(advice, [_check("worse", model="other")], Opts()) == advice
    failed = {"model_id": "m", "status": "failed", "error": "boom"}
    assert revise_with_finetune_check(advice, [failed], Opts()) == advice


def test_the_check_skips_an_untrainable_candidate_without_loading_it():
    @dataclass
    class Cfg:
        finetune_unfreeze: str | None = None
        finetune_epochs: int = 1
        finetune_budget_minutes: float | None = None
        device: str = "cpu"
        seed: int = 0
        offline: bool = True

    said: list[str] = []
    out = finetune_check(
        _dataset({"a": 3, "b": 3}),
        [_winner("local:/nowhere/net.onnx"), _winner("pkg:paraphrase-MiniLM-L3-v2")],
        {"unfreeze": "last-1"},
        Cfg(),
        said.append,
        runtimes={"pkg:paraphrase-MiniLM-L3-v2": "onnx"},
    )
    assert [c["status"] for c in out] == ["skipped", "skipped"]
    assert all(
        "cannot be fine-tuned" in c["error"] and c["summary"].startswith("not fine-tuned") for c in out
    )
    assert said == []


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 colour classes x 12 images and one tiny random timm model as a local safetensors file."""
    pytest.importorskip("timm")
    import numpy as np
    import timm
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("toy")
    data = root / "my shapes"  # a space: the printed command must quote it
    rng = np.random.default_rng(0)
    for cls, rgb in {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}.items():
        (data / cls).mkdir(parents=True)
        for i in range(12):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(data / cls / f"{i:02d}.png")
    torch.manual_seed(0)
    m = timm.create_model("test_vit", pretrained=False)
    f = root / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return data, f"local:{f}?arch=timm:test_vit&input_size=64"


def test_recommend_counts_the_whole_dataset_and_its_next_command_runs_as_printed(toy, tmp_path, monkeypatch):
    import json

    import advisor
    from advisor.cli.main import app

    data, model = toy
    res = advisor.recommend(
        data, models=[model], device="cpu", folds=3, max_per_class=6, out=None, bench=False, baselines=False
    )
    assert res.dataset["subsample"]["n"] == 18  # 6 per class were probed ...
    assert res.advice["evidence"]["median_samples_per_class"] == 12  # ... but the advice counts all 12
    assert res.advice["evidence"]["samples_per_class_counted_on"] == "whole dataset"
    argv = shlex.split(res.advice["next_command"])
    assert argv[:2] == ["advisor", "finetune"] and argv[argv.index("--data") + 1] == str(data)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app, [*argv[1:], "--out", str(tmp_path / "ft"), "--no-progress", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model_id"] == model and out["unfreeze"] == res.advice["unfreeze"]


def test_finetune_top_results_revise_the_advice_with_their_epochs(toy, tmp_path):
    import advisor

    data, model = toy
    res = advisor.recommend(
        data,
        models=[model],
        device="cpu",
        folds=3,
        out=None,
        bench=False,
        baselines=False,
        finetune_top=1,
        finetune_epochs=1,
    )
    (check,) = res.advice["finetune_check"]
    assert check["status"] == "done" and check["epochs_run"] == 1
    assert "1 epoch" in check["summary"]
    assert res.advice["revised_by"] == "finetune_check"
    expected = "partial-finetune" if check["verdict"] == "better" else "linear-probe"
    assert res.advice["strategy"] == expected
    assert f"({check['unfreeze']}, 1 epoch)" in res.advice["summary"]
    assert res.advice["rule_advice"]["strategy"] == "linear-probe"  # 12 per class < few_per_class


def test_an_onnx_winner_is_advised_frozen_features_and_the_printed_command_runs(toy, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import json

    import torch

    import advisor
    from advisor.cli.main import app

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

        def forward(self, x):
            return torch.relu(self.conv(x)).mean((2, 3))

    torch.manual_seed(0)
    path = tmp_path / "tiny net.onnx"
    torch.onnx.export(
        Tiny().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
        output_names=["f"], dynamic_axes={"x": {0: "b"}},
    )  # fmt: skip
    model = f"local:{path}?input_size=32&mean=0.5,0.5,0.5&std=0.5,0.5,0.5"
    data, _ = toy
    res = advisor.recommend(
        data, models=[model], device="cpu", folds=3, out=None, bench=False, baselines=False, finetune_top=1
    )
    assert res.winner.model_id == model
    assert res.advice["strategy"] == "linear-probe" and "cannot be fine-tuned" in res.advice["summary"]
    (check,) = res.advice["finetune_check"]
    assert check["status"] == "skipped" and "revised_by" not in res.advice
    argv = shlex.split(res.advice["next_command"])
    assert argv[:2] == ["advisor", "features"]
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, [*argv[1:], "--no-progress", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "features.npz").is_file()
    assert json.loads(r.stdout)["model_id"] == model


def test_features_on_a_derived_runtime_keep_the_torch_source_fine_tunable(toy):
    """Regression: with `--runtime auto` the demo's EfficientNet-Lites ran their features on ONNX Runtime and the
    advice said 'runs on the onnxruntime runtime, which cannot be fine-tuned', though the torch module is there."""
    import advisor
    from advisor.recommend.stages.advise import source_runtime

    data, model = toy
    res = advisor.recommend(
        data, models=[model], device="cpu", folds=3, max_per_class=6, out=None, bench=False, baselines=False,
        runtime="channels-last",
    )  # fmt: skip
    assert res.winner.model_id == model
    assert (
        res.advice["evidence"]["finetunable"] is True and "cannot be fine-tuned" not in res.advice["summary"]
    )
    assert shlex.split(res.advice["next_command"])[:2] == ["advisor", "finetune"]
    # the rule: a runtime chosen over the source's module means a torch source; a file's own runtime stays
    derived = {
        "signature": {"runtime": "onnxruntime"},
        "runtime": {"runtime": "onnxruntime", "requested": "auto"},
    }
    assert source_runtime(derived) == "torch"
    as_loaded = {"signature": {"runtime": "onnx"}, "runtime": {"runtime": "eager", "requested": "auto"}}
    assert source_runtime(as_loaded) == "onnx"
    assert source_runtime({"signature": {"runtime": "torch"}}) == "torch"
