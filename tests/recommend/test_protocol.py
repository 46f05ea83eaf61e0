"""The evaluation matches the user's setup: a given train/val split is scored on val only, and with a group
option no group ever lands on both sides of a fold (outer or inner)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advisor.probe import group_folds, linear_probe


def test_group_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = rng.choice([f"spk{i}" for i in range(7)], size=140)
    y = rng.integers(0, 3, size=140)
    splits = group_folds(y, groups, 5, seed=1)
    assert len(splits) == 5
    seen = np.zeros(140, dtype=int)
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
        seen[te] += 1
    assert (seen == 1).all()  # every sample tested exactly once


def test_group_cv_is_honest_where_pooled_cv_is_not():
    """Features that identify the group but not the class: pooled CV reads the label off the group (the
    same group, hence nearly the same features and the same label, is on both sides); group CV is near chance."""
    rng = np.random.default_rng(0)
    n_groups, per = 12, 10
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per)
    y = np.repeat(rng.integers(0, 2, size=n_groups), per)  # each group has one label
    centres = rng.normal(size=(n_groups, 16)) * 3
    x = centres[np.repeat(np.arange(n_groups), per)] + rng.normal(size=(n_groups * per, 16)) * 0.1
    pooled = linear_probe(x, y, folds=4, seed=0)
    grouped = linear_probe(x, y, folds=4, seed=0, groups=groups)
    assert pooled.protocol == "cv" and grouped.protocol == "group-cv"
    assert pooled.accuracy > 0.95
    assert grouped.accuracy < 0.8


def test_given_split_scores_only_the_eval_part():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    y = np.tile([0, 1, 2], 20)
    x[:, 0] += y * 3
    mask = np.zeros(60, dtype=bool)
    mask[40:] = True
    pr = linear_probe(x, y, folds=5, seed=0, test_mask=mask)
    assert pr.protocol == "given-split" and pr.n_eval == 20 and pr.folds == 1
    assert all(p == -1 for p in pr.oof_pred[:40]) and all(p >= 0 for p in pr.oof_pred[40:])
    correct = sum(int(p == t) for p, t in zip(pr.oof_pred[40:], y[40:], strict=True))
    assert pr.accuracy == pytest.approx(correct / 20)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("timm")
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    m = timm.create_model("test_efficientnet", pretrained=False)
    f = tmp_path_factory.mktemp("m") / "te.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
    return f"local:{f}?arch=timm:test_efficientnet&input_size=32"


def _png(path, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.clip(
        value + np.random.default_rng(abs(hash(path.name)) % 2**32).normal(0, 15, (24, 24, 3)), 0, 255
    )
    Image.fromarray(arr.astype(np.uint8)).save(path)


def test_train_val_folder_is_scored_on_val(tmp_path, tiny_model):
    import advisor

    root = tmp_path / "tv"
    for split, n in (("train", 8), ("val", 4)):
        for k, cls in enumerate(("a", "b")):
            for i in range(n):
                _png(root / split / cls / f"{i}.png", 60 + 100 * k)
    res = advisor.recommend(root, models=[tiny_model], device="cpu", folds=3, out=None, bench=False)
    ev = res.dataset["evaluation"]
    assert ev["protocol"] == "given-split" and ev["eval_split"] == "val" and ev["n_eval"] == 8
    w = res.winner
    assert w is not None and w.probe["protocol"] == "given-split" and w.probe["n_eval"] == 8


def test_group_column_on_a_manifest_keeps_speakers_apart(tmp_path, tiny_model):
    """A speaker-grouped manifest: --group-column speaker gives group folds, recorded in the JSON."""
    rows = []
    for s in range(6):
        for k, cls in enumerate(("yes", "no")):
            for i in range(3):
                p = tmp_path / "img" / f"s{s}_{cls}_{i}.png"
                _png(p, 40 + 120 * k + 10 * s)
                rows.append(f"img/{p.name},{cls},spk{s}")
    (tmp_path / "m.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
    from advisor.cli.main import app

    r = CliRunner().invoke(
        app,
        [
            "recommend",
            "--data",
            str(tmp_path / "m.csv"),
            "--models",
            tiny_model,
            "--no-bench",
            "--no-baselines",
        ]
        + ["--group-column", "speaker", "--folds", "3", "--no-out", "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (
        d["dataset"]["evaluation"]["protocol"] == "group-cv" and d["dataset"]["evaluation"]["n_groups"] == 6
    )
    ranked = [c for c in d["candidates"] if c["status"] == "ranked"]
    assert ranked and ranked[0]["probe"]["protocol"] == "group-cv"


def test_group_pattern_on_file_names_and_bad_options(tmp_path, tiny_model):
    import advisor
    from advisor.errors import UsageError

    root = tmp_path / "f"
    for k, cls in enumerate(("a", "b")):
        for s in range(4):
            for i in range(2):
                _png(root / cls / f"{k}_spk{s}_{i}.png", 60 + 100 * k)
    res = advisor.recommend(
        root, models=[tiny_model], device="cpu", folds=3, out=None, bench=False, group_pattern=r"_(spk\d)_"
    )
    assert res.dataset["evaluation"]["protocol"] == "group-cv" and res.dataset["evaluation"]["n_groups"] == 4
    with pytest.raises(UsageError, match="gave no group"):
        advisor.recommend(root, models=[tiny_model], out=None, bench=False, group_column="speaker")
    with pytest.raises(UsageError, match="not a valid regex"):
        advisor.recommend(root, models=[tiny_model], out=None, bench=False, group_pattern="(")


def test_skipped_items_are_counted_in_the_notes(tmp_path, tiny_model):
    # the reader's skips reached only the JSON's n_skipped: the printed verdict never said data was left out
    import advisor

    root = tmp_path / "imgs"
    for k, cls in enumerate(("a", "b")):
        for i in range(6):
            _png(root / cls / f"{i}.png", 60 + 100 * k)
    (root / "a" / "broken.png").write_bytes(b"not a png")
    (root / "b" / "notes.bin").write_bytes(b"\x00\x01")
    res = advisor.recommend(root, models=[tiny_model], device="cpu", folds=3, out=None, bench=False)
    assert res.dataset["n_skipped"] == 2
    (note,) = [n for n in res.notes if "skipped and not evaluated" in n]
    assert (
        note.startswith("2 item(s) of the data skipped and not evaluated (")
        and "advisor data profile" in note
    )
