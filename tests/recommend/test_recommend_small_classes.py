"""Classes too small for the protocol are dropped by name before any model work, and the rest is ranked; when
nothing can be ranked, recommend fails with the reason (non-zero exit), never an empty table with exit 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("timm")


def _images(root, counts: dict[str, int]):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = np.clip(40 + 60 * k + rng.normal(0, 20, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    m = timm.create_model("test_efficientnet", pretrained=False)
    f = tmp_path_factory.mktemp("m") / "te.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return f"local:{f}?arch=timm:test_efficientnet&input_size=32"


def _opts(model, tmp_path):
    return dict(
        models=[model], device="cpu", folds=3, out=str(tmp_path / "run"), bench=False, baselines=False
    )


def test_single_sample_class_is_dropped_by_name_and_the_rest_ranked(tmp_path, tiny_model):
    import advisor

    data = _images(tmp_path / "d", {"a": 9, "b": 9, "lonely": 1})
    res = advisor.recommend(data, **_opts(tiny_model, tmp_path))
    assert [c.rank for c in res.ranked] == [1]
    assert any("dropped 1 class" in n and "'lonely'" in n for n in res.notes), res.notes


def test_nothing_rankable_is_an_error_before_features(tmp_path, tiny_model):
    import advisor
    from advisor.errors import UsageError

    data = _images(tmp_path / "d", {"a": 9, "b": 1, "c": 1})
    with pytest.raises(UsageError, match="nothing can be ranked"):
        advisor.recommend(data, **_opts(tiny_model, tmp_path))


def test_cap_that_leaves_one_per_class_says_how_to_fix_it(tmp_path, tiny_model):
    from advisor.cli.main import app

    data = _images(tmp_path / "d", {f"c{i}": 3 for i in range(6)})
    r = CliRunner().invoke(
        app,
        ["recommend", "--data", str(data), "--models", tiny_model, "--no-bench", "--no-baselines"]
        + ["--max-samples", "6", "--no-out", "--format", "json"],
    )
    assert r.exit_code != 0
    err = " ".join((r.stderr if hasattr(r, "stderr") else r.output).split())  # undo the console wrap
    assert "nothing can be ranked" in err and "--max-samples 6" in err and "at least 12" in err
    assert "Traceback" not in r.output


def test_every_candidate_failing_exits_non_zero_with_the_reason(tmp_path):
    from advisor.cli.main import app

    data = _images(tmp_path / "d", {"a": 6, "b": 6})
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx graph")
    r = CliRunner().invoke(
        app,
        ["recommend", "--data", str(data), "--models", f"local:{broken}", "--no-bench", "--no-baselines"]
        + ["--no-out", "--format", "json"],
    )
    err = " ".join((r.stderr if hasattr(r, "stderr") else r.output).split())
    assert r.exit_code == 1, r.output
    assert "no candidate could be ranked" in err and "broken.onnx" in err


def test_floor_beating_every_candidate_is_the_headline(tmp_path):
    """A model whose features carry nothing (all weights zero) loses to the raw-pixel floor on colour classes:
    the headline says so first, in the CLI output, results and report.md."""
    import timm
    import torch
    from safetensors.torch import save_file

    from advisor.cli.main import app

    m = timm.create_model("test_efficientnet", pretrained=False)
    f = tmp_path / "zero.safetensors"
    save_file({k: torch.zeros_like(v).contiguous() for k, v in m.state_dict().items()}, str(f))
    model = f"local:{f}?arch=timm:test_efficientnet&input_size=32"
    data = _images(tmp_path / "d", {"dark": 9, "mid": 9, "light": 9})
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app,
        [
            "recommend",
            "--data",
            str(data),
            "--models",
            model,
            "--no-bench",
            "--out",
            str(out),
            "--folds",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert text.index("First: no candidate beats the no-pretraining floor baseline:raw-pixels") < text.index(
        "advisor recommend:"
    )
    assert "no candidate beats the no-pretraining floor" in (out / "report.md").read_text()
    # training the losing model is not the next step, nor more samples (the floor is clearly ahead): other models
    advice = json.loads((out / "results.json").read_text())["advice"]
    assert advice["next_command"] is None and advice["train_command"].startswith("advisor finetune")
    assert "next: the no-pretraining floor baseline:raw-pixels is significantly better on this data" in text
    assert "to train a pretrained model anyway: advisor finetune" in text
