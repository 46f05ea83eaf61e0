"""Contract tests over the registries that are not covered next to their owners: every dataset reader and
every transferability scorer. A new registration without a fixture here fails the first test of its group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from advisor.data.readers import load_dataset
from advisor.data.request import READERS
from advisor.scores import compute_scores, get_scorer, list_scorers


def _png(path: Path, shade: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), shade, dtype=np.uint8)).save(path)


def _imagefolder(root: Path) -> Path:
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(3):
            _png(root / cls / f"{i}.png", 40 * k + 10 * i)
    return root


def _split_imagefolder(root: Path) -> Path:
    for split in ("train", "val"):
        for k, cls in enumerate(["cat", "dog"]):
            for i in range(2):
                _png(root / split / cls / f"{i}.png", 40 * k + 10 * i + (5 if split == "val" else 0))
    return root


def _flat(root: Path) -> Path:
    for i in range(4):
        _png(root / f"{i}.png", 30 * i)
    return root


def _manifest(root: Path) -> Path:
    rows = ["path,label"]
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(3):
            _png(root / "img" / f"{cls}{i}.png", 40 * k + 10 * i)
            rows.append(f"img/{cls}{i}.png,{cls}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def _textfolder(root: Path) -> Path:
    for cls, words in (("pos", "good great fine"), ("neg", "bad awful poor")):
        (root / cls).mkdir(parents=True)
        for i, w in enumerate(words.split()):
            (root / cls / f"{i}.txt").write_text(f"a {w} film number {i}\n")
    return root


def _table(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["text,label"] + [
        f"a {w} film {i},{c}" for i, (w, c) in enumerate([("good", "pos"), ("bad", "neg")] * 3)
    ]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    return root / "t.csv"


def _split_table(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 3), ("test", 2)):
        rows = ["text,label"] + [
            f"{split} {w} {i},{c}" for i in range(n) for w, c in (("good", "pos"), ("bad", "neg"))
        ]
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


FIXTURES: dict[str, Callable[[Path], Path]] = {
    "imagefolder": _imagefolder,
    "split-imagefolder": _split_imagefolder,
    "flat": _flat,
    "manifest": _manifest,
    "textfolder": _textfolder,
    "table": _table,
    "split-table": _split_table,
}


def test_every_registered_reader_has_a_contract_fixture():
    assert sorted(READERS) == sorted(FIXTURES)


@pytest.mark.parametrize("layout", sorted(FIXTURES))
def test_reader_contract(layout, tmp_path):
    """Detected as its own layout; unique ids; labels among the classes; the fingerprint is stable across reads
    and changes when one input file changes (a cache is never served for changed inputs)."""
    path = FIXTURES[layout](tmp_path / "d")
    ds = load_dataset(path)
    assert ds.layout == layout
    assert ds.samples, layout
    ids = [s.id for s in ds.samples]
    assert len(ids) == len(set(ids))
    labelled = [s.label for s in ds.samples if s.label is not None]
    if layout == "flat":
        assert labelled == []
    else:
        assert labelled and set(labelled) <= set(ds.classes)
    forced = load_dataset(path, layout=layout)
    assert forced.fingerprint == ds.fingerprint == load_dataset(path).fingerprint
    victim = next(
        p for p in sorted((tmp_path / "d").rglob("*")) if p.is_file() and p.suffix in (".png", ".txt", ".csv")
    )
    if victim.suffix == ".png":
        _png(victim, 255)
    else:
        victim.write_text(
            victim.read_text() + " changed"
            if victim.suffix == ".txt"
            else victim.read_text().replace("good", "superb", 1)
        )
    assert load_dataset(path).fingerprint != ds.fingerprint


def _separable(n: int = 90, c: int = 3, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    centres = 4.0 * rng.standard_normal((c, d))
    x = centres[y] + rng.standard_normal((n, d))
    logits = 3.0 * np.eye(c)[y] @ rng.standard_normal((c, 5)) + 0.5 * rng.standard_normal((n, 5))
    return x, y, logits


@pytest.mark.parametrize("name", list_scorers())
def test_scorer_contract(name):
    """Every scorer: a direction and declared inputs; deterministic; finite on well-posed data; one that reads
    the labels prefers features that separate them over the same features with the labels shuffled, and one
    that does not (label-free, e.g. an energy score) gives the same value for both."""
    sc = get_scorer(name)
    assert isinstance(sc.higher_is_better, bool)
    assert set(sc.needs) <= {"features", "labels", "probs", "logits"}
    x, y, logits = _separable()
    a = compute_scores(x, y, logits=logits, metrics=name, flag_degenerate=False)[name]
    b = compute_scores(x, y, logits=logits, metrics=name, flag_degenerate=False)[name]
    assert a.applicable and a.value is not None and np.isfinite(a.value)
    assert a.value == b.value
    y_shuf = np.random.default_rng(1).permutation(y)
    s = compute_scores(x, y_shuf, logits=logits, metrics=name, flag_degenerate=False)[name]
    assert s.value is not None
    if "labels" not in sc.needs:
        assert s.value == a.value
    else:
        assert (a.value > s.value) if sc.higher_is_better else (a.value < s.value)
