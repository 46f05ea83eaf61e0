"""Parquet tables (read by pandas + pyarrow): text tables, per-split files, Hugging Face shards, manifests, and
clear errors for embedded media bytes, damaged files and a missing pandas."""

from __future__ import annotations

import sys

import pytest
from data_synth import write_png

from advisor.data import load_dataset
from advisor.errors import DatasetError

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


def _frame(n: int = 12):
    texts = [f"{'good great fine' if i % 2 else 'bad awful poor'} item {i}" for i in range(n)]
    labels = pd.array([i % 2 for i in range(n)], dtype="Int64")  # nullable ints: a missing label is pd.NA
    df = pd.DataFrame({"text": texts, "label": labels, "when": pd.Timestamp("2026-01-01")})
    df.loc[0, "text"] = None
    df.loc[3, "label"] = pd.NA
    return df


def test_a_parquet_text_table_reads_like_its_csv(tmp_path):
    df = _frame()
    df.to_parquet(tmp_path / "t.parquet")
    df.to_csv(tmp_path / "t.csv", index=False)
    pq, csv = load_dataset(tmp_path / "t.parquet"), load_dataset(tmp_path / "t.csv")
    assert pq.modality == "text" and pq.layout == "table"
    assert [(s.id, s.label, s.text) for s in pq.samples] == [(s.id, s.label, s.text) for s in csv.samples]
    assert len(pq.samples) == 10 and pq.classes == ["0", "1"]  # Int64 labels as "0"/"1", not "0.0"
    assert sorted(s.code for s in pq.skipped) == ["empty-text", "missing-label"]


def test_per_split_files_and_hugging_face_shards(tmp_path):
    df = _frame(20)
    (tmp_path / "plain").mkdir()
    df.iloc[:12].to_parquet(tmp_path / "plain" / "train.parquet")
    df.iloc[12:].to_parquet(tmp_path / "plain" / "test.parquet")
    plain = load_dataset(tmp_path / "plain")
    assert {s.split for s in plain.samples} == {"train", "test"}
    assert plain.samples[0].id.startswith("test:row:")  # the ids of a train.csv/test.csv pair, unchanged

    hf = tmp_path / "hf" / "data"
    hf.mkdir(parents=True)
    df.iloc[:6].to_parquet(hf / "train-00000-of-00002.parquet")
    df.iloc[6:12].to_parquet(hf / "train-00001-of-00002.parquet")
    df.iloc[12:].to_parquet(hf / "test-00000-of-00001.parquet")
    ds = load_dataset(hf)
    ids = [s.id for s in ds.samples]
    # the two train shards both number their rows from 0: ids collided ('train:row:1' twice) before
    assert len(ids) == len(set(ids)) == 18
    assert {s.split for s in ds.samples} == {"train", "test"}
    assert sum(s.split == "train" for s in ds.samples) == 10
    df.iloc[:12].to_csv(hf / "train-00000-of-00002.csv", index=False)  # the same stem twice: file names
    ids = [s.id for s in load_dataset(hf).samples]
    assert len(ids) == len(set(ids)) == 28 and "train-00000-of-00002.csv:row:1" in ids
    with pytest.raises(DatasetError, match=r"tables only in subfolders") as e:
        load_dataset(tmp_path / "hf")
    assert str(hf) in e.value.hint


def test_a_parquet_manifest_of_image_paths(tmp_path):
    rows = []
    for cls in ("cat", "dog"):
        for i in range(3):
            write_png(tmp_path / cls / f"{i}.png", color=(i * 40, 80, 120))
            rows.append({"path": f"{cls}/{i}.png", "label": cls})
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet")
    ds = load_dataset(tmp_path / "manifest.parquet")
    assert ds.modality == "image" and len(ds.samples) == 6 and ds.classes == ["cat", "dog"]


def test_hugging_face_class_names_replace_the_label_integers(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"text": ["good one", "bad one", "secret"], "label": [1, 0, -1]})
    feats = {
        "text": {"dtype": "string", "_type": "Value"},
        "label": {"names": ["neg", "pos"], "_type": "ClassLabel"},
    }
    t = t.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": feats}}).encode()})
    pq.write_table(t, tmp_path / "train.parquet")
    ds = load_dataset(tmp_path / "train.parquet")
    assert [s.label for s in ds.samples] == ["pos", "neg"] and ds.classes == ["neg", "pos"]
    assert [s.code for s in ds.skipped] == ["missing-label"]  # -1: the datasets library's "no label"


def test_embedded_bytes_damaged_files_and_no_pandas_are_clear_errors(tmp_path, monkeypatch):
    img = pd.DataFrame({"image": [{"bytes": b"\x89PNG....", "path": "a.png"}] * 2, "label": [0, 1]})
    img.to_parquet(tmp_path / "img.parquet")
    with pytest.raises(DatasetError, match=r"img.parquet: column 'image' holds embedded file bytes") as e:
        load_dataset(tmp_path / "img.parquet")
    assert "manifest" in e.value.hint
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match=r"bad.parquet: not a readable Parquet file"):
        load_dataset(tmp_path / "bad.parquet")
    _frame().to_parquet(tmp_path / "ok.parquet")
    import pyarrow

    monkeypatch.setattr(pyarrow, "__version__", "14.0.0")  # before the fix for pickled extension types
    with pytest.raises(DatasetError, match=r"ok.parquet: pyarrow 14.0.0 can run code .*CVE-2023-47248"):
        load_dataset(tmp_path / "ok.parquet")
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DatasetError, match=r"ok.parquet: reading Parquet needs pandas"):
        load_dataset(tmp_path / "ok.parquet")
