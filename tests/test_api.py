"""The public Python API: one function per command, each giving what the command prints with `--format json`
(tiny random models, data made in tmp_path); `import advisor` stays light and the subpackages stay callable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import advisor
from advisor.cli.main import app
from advisor.io import to_jsonable

runner = CliRunner()
MODEL = "timm:test_vit"


def _cli(*args: str) -> Any:
    r = runner.invoke(app, [*args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """2 classes x 6 images of 32x32 px whose colour depends on the class."""
    from PIL import Image

    root = tmp_path_factory.mktemp("api") / "colours"
    rng = np.random.default_rng(0)
    for cls, rgb in {"red": (200, 40, 40), "blue": (40, 40, 200)}.items():
        (root / cls).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def local_model(tmp_path_factory) -> str:
    """A tiny random timm model saved as a local safetensors file (recommend loads weights; none to download)."""
    timm = pytest.importorskip("timm")
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    m = timm.create_model("test_vit", pretrained=False)
    f = tmp_path_factory.mktemp("model") / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return f"local:{f}?arch=timm:test_vit&input_size=64"


# ----------------------------------------------------------------------------------------------- the package
def test_import_is_light_and_names_resolve():
    code = (
        "import sys, advisor\n"
        "fns = [advisor.profile, advisor.score, advisor.features, advisor.bench, advisor.recommend,"
        " advisor.finetune, advisor.report, advisor.catalog]\n"
        "assert all(callable(f) for f in fns)\n"
        "print(','.join(m for m in ('torch', 'timm', 'transformers') if m in sys.modules) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_subpackages_stay_modules_and_become_callable():
    import advisor.bench.runner  # imported the usual way first: advisor.bench is then the subpackage

    assert advisor.bench is sys.modules["advisor.bench"] and callable(advisor.bench)
    assert advisor.bench.runner.BenchConfig is not None  # still a package with its submodules
    from advisor import catalog, features

    assert callable(catalog) and callable(features) and hasattr(features, "extract_features")
    with pytest.raises(AttributeError):
        advisor.no_such_function  # noqa: B018


def test_callable_subpackages_are_the_api_functions(images, local_model):
    """Each callable subpackage has its `advisor.api` function's signature and takes what that function takes:
    ``advisor.recommend`` forwarded to `advisor.recommend.run.recommend` once, which refused ``config=`` and
    ``executor=``, and ``dir(advisor)`` listed none of the API."""
    import inspect

    import advisor.recommend.run  # noqa: F401  (imported the usual way first, as a user's code may)

    for name in sorted(advisor._MODULE_NAMES | advisor._FUNCTION_NAMES - {"DatasetSpec"}):
        assert inspect.signature(getattr(advisor, name)) == inspect.signature(getattr(advisor.api, name)), (
            name
        )
    assert set(advisor.__all__) <= set(dir(advisor))
    cfg = advisor.api.run_config(images, models=[local_model], dry_run=True, bench=False)
    plan = advisor.recommend(config=cfg)
    assert plan == advisor.recommend(
        images, models=[local_model], dry_run=True, bench=False, executor="serial"
    )
    assert [c["model_id"] for c in plan.candidates] == [local_model]


# ----------------------------------------------------------------------------------------------- each command
def test_profile_and_sample(images):
    assert to_jsonable(advisor.profile(images)) == _cli("data", "profile", str(images))
    api = advisor.api.sample(images, max_per_class=2, seed=3)
    assert api == _cli("data", "sample", str(images), "--max-per-class", "2", "--seed", "3")
    assert api["n_selected"] == 4


def test_score(tmp_path):
    from advisor.cli.score import score_row

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    f = tmp_path / "f.npz"
    np.savez(f, features=(rng.normal(size=(30, 4)) + y[:, None]).astype(np.float32), labels=y)
    api = {n: {**score_row(r), "seconds": None} for n, r in advisor.score(f, scores="logme,hscore").items()}
    cli = {n: {**r, "seconds": None} for n, r in _cli("score", str(f), "--scores", "logme,hscore").items()}
    assert api == cli and list(api) == ["logme", "hscore"]


def test_features(images, tmp_path):
    cli = _cli("features", "-d", str(images), "-m", MODEL, "--random-init", "-o", str(tmp_path / "c.npz"))
    api = advisor.features(images, MODEL, pretrained=False, out=tmp_path / "a.npz")
    assert api["cache_hit"] and not cli["cache_hit"]  # the same key: the API call is served by the CLI's run
    same = ("model_id", "n", "dim", "classes", "cache_key", "samples")
    assert {k: api[k] for k in same} == {k: cli[k] for k in same}
    a, c = np.load(tmp_path / "a.npz"), np.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(a["features"], c["features"])


def test_features_of_a_floor(images, tmp_path):
    """The floors recommend probes (and its headline points to when one wins) are features too; an unknown
    floor or one of another modality is a one-line error."""
    from advisor.data import load_dataset
    from advisor.recommend.baselines import baseline_features

    api = advisor.features(images, "baseline:raw-pixels", out=tmp_path / "f.npz")
    x, kept = baseline_features("baseline:raw-pixels", load_dataset(images).samples)
    assert api["shape"] == list(x.shape) == [12, 768] and api["classes"] == 2 and not api["cache_hit"]
    np.testing.assert_array_equal(np.load(tmp_path / "f.npz")["features"], x)
    for bad, why in (
        ("baseline:bag-of-words", "is a floor for text data"),
        ("baseline:nope", "unknown floor"),
    ):
        r = runner.invoke(app, ["features", "-d", str(images), "-m", bad])
        assert r.exit_code != 0 and why in r.output and "Traceback" not in r.output


def test_bench(monkeypatch):
    # a stored figure is reused only when judged reliable, which a loaded test machine may not give
    monkeypatch.setattr("advisor.bench.reliability.reusable", lambda record: True)
    fast = dict(
        device="cpu", min_time=0.02, max_time=0.5, min_repeats=3, warmup=1, threads=1, batch_sizes=(1,)
    )
    cli = _cli("bench", MODEL, "--batch-sizes", "1", "--device", "cpu", "--min-time", "0.02", "--max-time", "0.5",
               "--min-repeats", "3", "--warmup", "1", "--threads", "1")  # fmt: skip
    (api,) = advisor.bench(MODEL, reuse=True, **fast)  # the CLI's stored result, for the same settings
    assert api.from_cache
    (c,) = cli["results"]
    assert {**to_jsonable(api), "from_cache": False} == {**c, "from_cache": False}


def test_recommend_and_report(images, local_model, tmp_path):
    base = ["recommend", str(images), "-m", local_model, "--no-bench", "--no-baselines", "--folds", "3"]
    plan = _cli(*base, "--dry-run")
    opts: dict[str, Any] = dict(models=[local_model], bench=False, baselines=False, folds=3)
    assert to_jsonable(advisor.recommend(images, dry_run=True, **opts)) == plan

    cli = _cli(*base, "--out", str(tmp_path / "run"))
    res = advisor.recommend(images, out=None, **opts)
    assert res.winner.model_id == cli["winner"] == local_model
    assert res.ranked[0].probe["accuracy"] == cli["candidates"][0]["probe"]["accuracy"]

    import pandas as pd  # results.csv's rows as a DataFrame, values unformatted

    df, csv = res.to_dataframe(), pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(df.columns) == list(csv.columns) and df["model_id"].tolist() == csv["model_id"].tolist()
    assert df["probe_accuracy"].iloc[0] == res.ranked[0].probe["accuracy"]
    stored = advisor.report(tmp_path / "run")
    assert to_jsonable(stored.to_dict()) == _cli("report", str(tmp_path / "run"))
    assert to_jsonable(stored.to_dict())["winner"] == local_model


def test_finetune(tmp_path, images):
    settings = dict(epochs=1, batch_size=4, seed=0, augment=False)
    args = ["finetune", "-d", str(images), "-m", MODEL, "--random-init", "-e", "1", "-b", "4", "--no-augment"]
    cli = _cli(*args, "--no-progress", "-o", str(tmp_path / "c"))
    api = advisor.finetune(images, MODEL, pretrained=False, out=tmp_path / "a", **settings).to_dict()
    for k in ("model_id", "n_train", "n_val", "config", "epochs_run", "unfreeze", "trainable_params"):
        assert to_jsonable(api[k]) == cli[k], k
    assert 0.0 <= api["val_accuracy"] <= 1.0 and (tmp_path / "a" / "result.json").is_file()


def test_catalog():
    listed = _cli("catalog", "list", "--family", "resnet", "--max-params", "30M")
    api = advisor.catalog(family="resnet", max_params=30e6)
    assert [e.id for e in api] == [e["id"] for e in listed["entries"]] and api
    found = _cli("catalog", "search", "convnext", "in22k")
    assert [e.id for e in advisor.catalog("convnext in22k")] == [e["id"] for e in found["entries"]]
    first = api[0].id
    shown = _cli("catalog", "show", first)
    community = advisor.api.catalog_community(first)  # `show` adds the Hub community record (or null)
    assert shown.pop("community") == (community.to_dict() if community else None)
    assert to_jsonable(advisor.api.catalog_entry(first)) == shown
    narrowed = advisor.catalog("resnet", max_params=30e6, source="timm")
    assert narrowed and all(e.source == "timm" and (e.n_params or 0) <= 30e6 for e in narrowed)


def test_api_refuses_a_config_and_its_fields_together(images):
    from advisor.bench.runner import BenchConfig
    from advisor.errors import UsageError

    with pytest.raises(UsageError):
        advisor.bench(MODEL, BenchConfig(), device="cpu")
    cfg = advisor.api.run_config(images)
    with pytest.raises(UsageError):
        advisor.api.recommend(images, config=cfg)
    with pytest.raises(UsageError, match="unknown recommend option"):
        advisor.api.run_config(images, no_such_option=1)


def test_dataset_spec_reaches_the_reader(tmp_path):
    from advisor.data.spec import DatasetSpec

    p = tmp_path / "t.tsv"
    p.write_text("utt\tintent\n" + "".join(f"hello {i}\t{'a' if i % 2 else 'b'}\n" for i in range(6)))
    spec = DatasetSpec(p, text_column="utt", label_column="intent")
    assert DatasetSpec.of(str(p), text_column="utt", label_column="intent") == spec
    prof = advisor.profile(spec)
    assert prof.n_classes == 2 and prof.modality == "text"
    assert advisor.api.run_config(spec).label_column == "intent"
