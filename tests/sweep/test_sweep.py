"""`advisor sweep`: datasets x models into one folder, the combined report, resuming, changed data, the file."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

timm = pytest.importorskip("timm")

from advisor import api  # noqa: E402
from advisor.cli.main import app  # noqa: E402
from advisor.errors import UsageError  # noqa: E402
from advisor.sweep.config import load_sweep_file, sweep_config  # noqa: E402
from advisor.sweep.run import MANIFEST  # noqa: E402

OPTS = dict(device="cpu", folds=3, bench=False, baselines=False, progress=False)


def _images(root, colours, n=8, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, rgb in colours.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Two small image datasets (one named with HTML in it) and two tiny random local timm models."""
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("sweep")
    a = _images(root / "colours", {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)})
    b = _images(root / "<b>greys", {"dark": (60, 60, 60), "light": (190, 190, 190)}, seed=1)
    models = []
    for arch in ("test_vit", "test_efficientnet"):
        torch.manual_seed(0)
        m = timm.create_model(arch, pretrained=False)
        f = root / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:{arch}&input_size=64")
    return a, b, models


def test_a_sweep_writes_one_folder_whose_rows_are_each_runs_figures_and_a_rerun_runs_nothing(
    toy, tmp_path, monkeypatch
):
    a, b, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "sw"
    res = api.sweep([a, b], models=",".join(models), out=out, **OPTS)
    assert [(c.name, c.status, c.task) for c in res.cells] == [
        ("colours", "done", "classification"),
        ("b_greys", "done", "classification"),
    ]
    for f in ("sweep.json", "sweep.csv", "sweep.md", "sweep.html"):
        assert (out / f).stat().st_size > 0
    manifest = json.loads((out / MANIFEST).read_text())
    rows = manifest["rows"]
    assert len(rows) == 4 and {r["dataset"] for r in rows} == {"colours", "b_greys"}
    for cell in res.cells:  # every row is the figure its own run stored: nothing recomputed or selected
        stored = api.report(cell.run_dir)
        mine = {r["model_id"]: r for r in rows if r["dataset"] == cell.name}
        assert set(mine) == {c.model_id for c in stored.candidates}
        for c in stored.candidates:
            assert mine[c.model_id]["rank"] == c.rank and mine[c.model_id]["value"] == c.probe_accuracy
            assert mine[c.model_id]["ci_low"] == c.probe["accuracy_ci"][0]
    with open(out / "sweep.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    html = (out / "sweep.html").read_text()
    assert "<b>greys" not in html and "&lt;b&gt;greys" in html  # the path is escaped
    assert "Across datasets" in (out / "sweep.md").read_text()

    def no_run(*a, **k):
        raise AssertionError("a finished dataset was run again")

    monkeypatch.setattr(api, "recommend", no_run)
    again = api.sweep([a, b], models=",".join(models), out=out, **OPTS)
    assert [c.status for c in again.cells] == ["reused", "reused"]
    assert json.loads((out / MANIFEST).read_text())["rows"] == rows


def test_changed_data_or_settings_run_again_and_an_interrupted_sweep_resumes(toy, tmp_path, monkeypatch):
    import shutil

    a, b, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    b2 = tmp_path / "greys"
    shutil.copytree(b, b2)
    out = tmp_path / "sw"
    calls: list[str] = []
    real = api.recommend

    def interrupted(*args, **kw):  # the second dataset dies after its first candidate (like a killed driver)
        calls.append(str(kw["config"].data))
        if len(calls) == 2:

            def die_on_second(msg: str) -> None:
                if msg.startswith("[2/2]"):
                    raise KeyboardInterrupt

            kw["progress_fn"] = die_on_second
        return real(*args, **kw)

    monkeypatch.setattr(api, "recommend", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.sweep([a, b2], models=models, out=out, **OPTS)
    manifest = json.loads((out / MANIFEST).read_text())
    assert [c["name"] for c in manifest["cells"]] == ["colours"]  # the first dataset's results were kept

    monkeypatch.setattr(api, "recommend", real)
    resumed = api.sweep([a, b2], models=models, out=out, **OPTS)
    assert [c.status for c in resumed.cells] == ["reused", "done"]
    cached = {c.model_id: c.cached.get("features") for c in resumed.results["greys"].candidates}
    assert sorted(cached.values()) == [False, True]  # the candidate done before the kill came from the cache

    time.sleep(0.01)
    _images(b2 / "mid", {"x": (120, 120, 120)}, n=4, seed=2)  # the data changed: that dataset runs again
    changed = api.sweep([a, b2], models=models, out=out, **OPTS)
    assert [c.status for c in changed.cells] == ["reused", "done"]
    assert changed.cells[1].fingerprint != resumed.cells[1].fingerprint
    other_seed = api.sweep([a, b2], models=models, out=out, **(OPTS | {"seed": 1}))
    assert [c.status for c in other_seed.cells] == ["done", "done"]  # other settings: another cell key


def test_a_failing_dataset_is_a_failed_cell_and_the_others_run(toy, tmp_path, monkeypatch):
    a, _, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    res = api.sweep([tmp_path / "missing", a], models=models[:1], out=tmp_path / "sw", **OPTS)
    assert [c.status for c in res.cells] == ["failed", "done"]
    assert "missing" in res.cells[0].error and "\n" not in res.cells[0].error


def test_sweep_file_relative_paths_options_and_one_line_errors(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        'models = ["pkg:efficientnet_lite0"]\nout = "o"\ndatasets = ["a"]\n'
        "[options]\nmax_samples = 50\n"
        '[[dataset]]\npath = "b.csv"\nname = "intents"\nmodels = ["pkg:all-MiniLM-L6-v2"]\n'
        'options = { text_column = "text" }\n'
    )
    cfg = load_sweep_file(f)
    assert [(d.name, d.path) for d in cfg.datasets] == [
        ("a", str(tmp_path / "a")),
        ("intents", str(tmp_path / "b.csv")),
    ]
    assert cfg.models == ("pkg:efficientnet_lite0",) and cfg.out == str(tmp_path / "o")
    assert dict(cfg.options) == {"max_samples": 50} and dict(cfg.datasets[1].options) == {
        "text_column": "text"
    }
    # [[datasets]] (the short form's key) holding tables: read as [[dataset]] tables (the table's text was the path)
    f.write_text(
        '[[datasets]]\npath = "a"\n[[datasets]]\npath = "c.csv"\noptions = { split_column = "part" }\n'
    )
    cfg = load_sweep_file(f)
    assert [(d.name, d.path) for d in cfg.datasets] == [
        ("a", str(tmp_path / "a")),
        ("c.csv", str(tmp_path / "c.csv")),
    ]
    assert dict(cfg.datasets[1].options) == {"split_column": "part"}
    for text, match in (
        ("datasets = [\n", "not valid TOML"),
        ('dataset_list = ["a"]\n', "unknown key 'dataset_list'"),
        ('datasets = ["a"]\n[options]\nout = "x"\n', "sets 'out' itself"),
        ('[[dataset]]\nname = "x"\n', "has no path"),
    ):
        f.write_text(text)
        with pytest.raises(UsageError, match=match) as e:
            load_sweep_file(f)
        assert str(f) in e.value.message and "\n" not in e.value.message
    with pytest.raises(UsageError, match="cannot read"):
        load_sweep_file(tmp_path / "nope.toml")
    names = [d.name for d in sweep_config(["x/data", "y/data", "z/data"]).datasets]
    assert names == ["data", "data-2", "data-3"]


def test_cli_sweep_json_and_usage_errors(toy, tmp_path, monkeypatch):
    a, _, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    args = ["sweep", "--data", str(a), "--models", models[0], "--no-bench", "--out", str(tmp_path / "sw")]
    r = runner.invoke(app, [*args, "--device", "cpu", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (
        d["schema"] == "advisor.sweep/1" and d["cells"][0]["status"] == "done" and d["rows"][0]["rank"] == 1
    )
    human = runner.invoke(
        app, [*args, "--device", "cpu"], terminal_width=300
    )  # read back: its verdict line shown
    assert (
        human.exit_code == 0 and d["cells"][0]["headline"] and d["cells"][0]["headline"][:30] in human.stdout
    )
    none = runner.invoke(app, ["sweep", "--models", models[0]])
    assert none.exit_code != 0 and "--data" in none.output and "Traceback" not in none.output


def test_cli_options_beside_a_sweep_file_override_it_and_defaults_do_not(tmp_path, monkeypatch):
    # `advisor sweep FILE --out X --no-bench` wrote to advisor-sweep/ and benched: both were silently dropped
    import advisor.sweep.run as run_mod

    seen = []

    def fake_run_sweep(cfg, **_kw):
        seen.append(cfg)
        raise KeyboardInterrupt  # stop here: the config is what is tested

    monkeypatch.setattr(run_mod, "run_sweep", fake_run_sweep)
    f = tmp_path / "s.toml"
    f.write_text('out = "from-file"\ndatasets = ["a"]\n[options]\nseed = 3\nmax_samples = 50\n')
    CliRunner().invoke(
        app, ["sweep", str(f), "--out", str(tmp_path / "x"), "--no-bench", "--max-samples", "9"]
    )
    CliRunner().invoke(app, ["sweep", str(f)])
    given, plain = seen
    assert given.out == str(tmp_path / "x") and plain.out == str(tmp_path / "from-file")
    assert {k: given.options[k] for k in ("seed", "max_samples", "bench")} == {
        "seed": 3,
        "max_samples": 9,
        "bench": False,
    }
    assert {k: v for k, v in plain.options.items() if k != "progress"} == {"seed": 3, "max_samples": 50}


def test_a_run_config_field_added_later_keeps_old_cells_keys_at_its_default():
    """`roi_probe` came after sweep manifests existed: at its default it is not in the cell key (their cells are
    still found); set off, it is (a different run)."""
    import dataclasses

    from advisor.io import stable_hash
    from advisor.recommend.config import RunConfig
    from advisor.sweep.run import _NOT_KEYED, cell_key

    cfg = RunConfig(data="x")
    before = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_KEYED and k != "roi_probe"}
    assert cell_key(cfg) == stable_hash(before, 16)
    assert cell_key(dataclasses.replace(cfg, roi_probe=False)) != cell_key(cfg)
