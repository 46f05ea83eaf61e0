"""`recommend --runtime`: the features and the latency come from the runtime asked for, and the table says which."""

from __future__ import annotations

import pytest

from tests.data.data_synth import class_colour_images

pytest.importorskip("onnxruntime")


def test_onnxruntime_features_and_latency_are_recorded_and_shown(tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    from advisor import api
    from advisor.paths import cache_dir
    from advisor.report.render import latency_cell

    data = class_colour_images(tmp_path / "imgs")
    torch.manual_seed(0)
    f = tmp_path / "net.safetensors"
    save_file(
        {k: v.contiguous() for k, v in timm.create_model("test_efficientnet").state_dict().items()}, str(f)
    )
    kw = dict(
        models=[f"local:{f}?arch=timm:test_efficientnet&input_size=64"],
        device="cpu",
        folds=3,
        out=None,
        baselines=False,
    )
    kw |= dict(bench_min_time_s=0.01, bench_max_time_s=0.2)
    ort = api.recommend(data, runtime="onnxruntime", **kw)
    (c,) = ort.ranked
    assert c.bench["runtime"] == "onnxruntime"
    # features and latency share one export of the model (a local file has no random-init variant)
    assert len(list(cache_dir("onnx").glob("*.onnx"))) == 1
    assert latency_cell(c).endswith("(onnxruntime)")
    eager = api.recommend(data, runtime="eager", **kw)
    (e,) = eager.ranked
    assert "runtime" not in e.bench  # eager records are as before
    assert (
        abs(c.probe["accuracy"] - e.probe["accuracy"]) <= 1 / 18 + 1e-9
    )  # at most one of 18 samples differs


def test_latency_of_a_derived_runtime_times_the_real_weights():
    """The export and the auto trial are keyed by the weights' digest; timing a random-init copy re-exported every
    model in the latency stage (~10 s each on the demo). Eager timing keeps random init."""
    from advisor.recommend.config import RunConfig
    from advisor.recommend.measure import _bench_config

    assert _bench_config(RunConfig("d", runtime="onnxruntime")).pretrained is True
    assert _bench_config(RunConfig("d", runtime="auto")).pretrained is True
    assert _bench_config(RunConfig("d", runtime="eager")).pretrained is False


def test_recommend_picks_the_runtime_by_default_and_eager_stays_one_option_away():
    from typer.testing import CliRunner

    from advisor.cli.main import app
    from advisor.recommend.config import RunConfig

    assert RunConfig("d").runtime == "auto"
    help_text = CliRunner().invoke(app, ["recommend", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: auto]" in help_text
