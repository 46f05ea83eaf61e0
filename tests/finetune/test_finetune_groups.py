"""Group-aware fine-tuning: --group-column / --group-pattern hold whole groups out for validation."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from finetune_helpers import FakeLoadedModel, make_backbone
from typer.testing import CliRunner

import advisor.finetune as ft
from advisor.cli.main import app
from advisor.data.types import Dataset, Sample
from advisor.errors import DatasetError, UsageError
from advisor.finetune import FinetuneConfig
from advisor.finetune.run import split_samples
from advisor.recommend.strategy import next_command

SPEAKERS = ("ann", "bob", "cyd", "dee", "eve", "fay")


@pytest.fixture
def fake_model(monkeypatch):
    """Route model ids starting with fake: to a tiny text model (the models layer is tested elsewhere)."""
    real = ft.finetune

    def patched(dataset, model_id, config=None, **kw):
        if isinstance(model_id, str) and model_id.startswith("fake:"):
            model_id = FakeLoadedModel(
                model_id=model_id, modality="text", feature_dim=16, module=make_backbone()
            )
        return real(dataset, model_id, config, **kw)

    monkeypatch.setattr(ft, "finetune", patched)


def _grouped_csv(tmp_path: Path, speakers=SPEAKERS, per: int = 3, split_of=None) -> Path:
    """A text table: every speaker says every class `per` times; with `split_of` (speaker -> split) a folder
    of one table per split instead."""
    rng = np.random.default_rng(0)
    rows: dict[str, list[str]] = {}
    for spk in speakers:
        for label, ch in (("alpha", "a"), ("beta", "b"), ("gamma", "c")):
            for _ in range(per):
                text = f"{ch * int(rng.integers(4, 8))}{''.join(rng.choice(list('defgh'), 3))}"
                rows.setdefault(split_of(spk) if split_of else "data", []).append(f"{text},{label},{spk}")
    root = tmp_path / "data"
    root.mkdir()
    for name, lines in rows.items():
        (root / f"{name}.csv").write_text("\n".join(["text,label,speaker", *lines]) + "\n")
    return root if split_of else root / "data.csv"


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "finetune",
        "--data",
        str(data),
        "--model",
        "fake:tiny",
        "--unfreeze",
        "last-1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--format",
        "json",
        "--no-progress",
        *extra,
    ]


def _speaker_rows(data: Path) -> dict[str, int]:
    lines = data.read_text().splitlines()[1:]
    out: dict[str, int] = {}
    for line in lines:
        spk = line.split(",")[2]
        out[spk] = out.get(spk, 0) + 1
    return out


def test_cli_group_column_holds_whole_speakers_out(tmp_path, fake_model):
    data = _grouped_csv(tmp_path)
    r = CliRunner().invoke(app, _args(data, tmp_path / "run", "--group-column", "speaker"))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["val_split"] == "group-held-out" and res["split_source"] == "group-held-out"
    g = res["groups"]
    assert g["by"] == "--group-column speaker" and g["train"] + g["val"] == len(SPEAKERS)
    assert g["val"] == 1 and len(g["val_groups"]) == 1 and g["val_groups"][0] in SPEAKERS  # 20 % of 6 ~ 1
    rows = _speaker_rows(data)
    # the validation side is exactly the held-out speakers' rows, the training side all the others
    assert res["n_val"] == sum(rows[s] for s in g["val_groups"])
    assert res["n_train"] == sum(n for s, n in rows.items() if s not in g["val_groups"])
    assert res["config"]["group_column"] == "speaker"
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert stored["val_split"] == "group-held-out" and stored["groups"] == g


def test_split_samples_no_group_on_both_sides_and_every_class_in_train():
    # class "rare" is spoken by one speaker only: that speaker can never be held out
    samples = []
    for spk in SPEAKERS:
        for c in ("a", "b"):
            samples += [Sample(f"{c}/{spk}_{i}.txt", c, None, "x", None) for i in range(4)]
    samples += [Sample(f"rare/cyd_{i}.txt", "rare", None, "x", None) for i in range(5)]
    ds = Dataset(
        root=Path("/d"),
        modality="text",
        samples=samples,
        classes=["a", "b", "rare"],
        skipped=[],
        fingerprint="f",
        layout="flat",
    )
    for seed in range(6):
        cfg = FinetuneConfig(group_pattern=r"/([a-z]+)_\d+", val_fraction=0.4, seed=seed)
        train, val, source, _ = split_samples(ds, cfg)
        spk = lambda s: s.id.split("/")[1].split("_")[0]  # noqa: E731
        assert source == "group-held-out"
        assert not {spk(s) for s in train} & {spk(s) for s in val}
        assert {s.label for s in train} == {"a", "b", "rare"} and "cyd" not in {spk(s) for s in val}
        assert len(train) + len(val) == len(samples)
        assert 1 <= len({spk(s) for s in val}) <= 3  # whole speakers, about 40 % of the items


def test_a_given_split_still_wins_over_groups(tmp_path, fake_model):
    data = _grouped_csv(tmp_path, split_of=lambda s: "val" if s in ("ann", "bob") else "train")
    r = CliRunner().invoke(app, _args(data, tmp_path / "run", "--group-column", "speaker"))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["val_split"] == "dataset" and res["groups"] is None
    assert res["n_val"] == 2 * 9 and res["n_train"] == 4 * 9
    assert any("own train/val split is used as given" in n for n in res["notes"])


def test_too_few_groups_is_a_one_line_error(tmp_path, fake_model):
    data = _grouped_csv(tmp_path, speakers=("solo",))
    r = CliRunner().invoke(app, _args(data, tmp_path / "run", "--group-column", "speaker"))
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "gives 1 group(s)" in r.output and "at least 2" in r.output


def test_split_errors_without_usable_groups():
    one_class_per_group = [
        Sample(f"{c}/{c}{i}.txt", c, None, "x", None) for c in ("a", "b") for i in range(3)
    ]
    ds = Dataset(
        root=Path("/d"),
        modality="text",
        samples=one_class_per_group,
        classes=["a", "b"],
        skipped=[],
        fingerprint="f",
        layout="flat",
    )
    with pytest.raises(DatasetError, match="without a class losing all its training items"):
        split_samples(ds, FinetuneConfig(group_pattern=r"^([a-z])/"))
    with pytest.raises(DatasetError, match="gave no group for any sample"):
        split_samples(ds, FinetuneConfig(group_pattern=r"nomatch"))
    with pytest.raises(UsageError, match="not a valid regex"):
        split_samples(ds, FinetuneConfig(group_pattern=r"(unclosed"))
    with pytest.raises(UsageError, match="not both"):
        FinetuneConfig(group_column="speaker", group_pattern="x")


def test_ungrouped_config_records_are_unchanged():
    d = FinetuneConfig().to_dict()
    assert (
        "group_column" not in d and "group_pattern" not in d
    )  # cache keys of ungrouped runs stay as they were
    assert FinetuneConfig(group_column="speaker").training_key()["group_column"] == "speaker"


class _Opts:
    data = "/tmp/unused"
    modality = None
    text_column = None
    label_column = None
    group_column: str | None = "speaker"
    group_pattern: str | None = None
    split_column: str | None = None
    budget_minutes = None
    finetune_budget_minutes = None


def test_recommend_next_command_carries_the_group_option_and_runs(tmp_path, fake_model):
    opts = _Opts()
    opts.data = str(_grouped_csv(tmp_path))
    cmd = next_command(opts, "fake:tiny", "last-1")
    assert "--group-column speaker" in cmd
    argv = shlex.split(cmd)
    assert argv[0] == "advisor"
    extra = ["--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "run"), "--format", "json"]
    r = CliRunner().invoke(app, [*argv[1:], *extra, "--no-progress"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["val_split"] == "group-held-out" and res["groups"]["train"] + res["groups"]["val"] == 6
    opts.group_column, opts.group_pattern = None, r"^(\w+)_"
    assert "--group-pattern '^(\\w+)_'" in next_command(opts, "fake:tiny", "last-1")
    assert "--group" not in next_command(opts, "fake:tiny", None)  # `advisor features` takes no group option
    opts.split_column = "part"  # the split column the run read is read by the command too (both take it)
    assert "--split-column part" in next_command(opts, "fake:tiny", "last-1")
    assert "--split-column part" in next_command(opts, "fake:tiny", None)


def test_grouped_advice_has_no_ignores_groups_caveat():
    from advisor.recommend.results import CandidateResult
    from advisor.recommend.strategy import build_advice

    samples = [
        Sample(f"{c}/{spk}_{i}.txt", c, None, "x", None)
        for c in ("a", "b")
        for spk in SPEAKERS
        for i in range(3)
    ]
    ds = Dataset(
        root=Path("/d"),
        modality="text",
        samples=samples,
        classes=["a", "b"],
        skipped=[],
        fingerprint="f",
        layout="flat",
    )
    winner = CandidateResult(
        model_id="pkg:some-model", rank=1, probe={"accuracy": 0.8, "accuracy_ci": [0.7, 0.9]}
    )
    advice = build_advice(ds, [winner], _Opts())
    assert "notes" not in advice  # finetune now holds whole groups out, so there is no leak to warn about
    assert advice["next_command"].startswith("advisor finetune ")
    assert "--group-column speaker" in advice["next_command"]


def test_api_honours_groups_from_the_config_or_the_spec(tmp_path):
    from advisor.api import finetune
    from advisor.data.spec import DatasetSpec

    data = _grouped_csv(tmp_path)
    cases = ((data, {"group_column": "speaker"}), (DatasetSpec(data, group_column="speaker"), {}))
    for i, (given, settings) in enumerate(cases):
        model = FakeLoadedModel(model_id="fake:tiny", modality="text", feature_dim=16, module=make_backbone())
        res = finetune(
            given, model, out=tmp_path / f"run{i}", epochs=1, batch_size=8, unfreeze="last-1", **settings
        )
        assert res.val_split == "group-held-out" and res.groups is not None
        assert res.groups["train"] + res.groups["val"] == len(SPEAKERS)


def test_cli_human_output_names_the_held_out_groups(tmp_path, fake_model):
    data = _grouped_csv(tmp_path)
    args = [a for a in _args(data, tmp_path / "run", "--group-pattern", "x") if a not in ("--format", "json")]
    bad = CliRunner().invoke(app, [*args, "--group-column", "speaker"])
    assert bad.exit_code == 2 and "not both" in bad.output and "Traceback" not in bad.output
    args = [
        a for a in _args(data, tmp_path / "run", "--group-column", "speaker") if a not in ("--format", "json")
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "group-held-out split" in r.output
    assert "validation holds out 1 of 6 groups (--group-column speaker):" in " ".join(r.output.split())
