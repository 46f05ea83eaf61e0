"""Feature extraction engine: batching, cache hits, resume after a kill, overwrite strategies, skips, file formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import advisor.features as F
from advisor.data import load_dataset
from advisor.errors import ResultsError, UsageError
from advisor.features import FeatureSet, extract_features
from advisor.models import load_model

torch.set_num_threads(1)
MODEL = "timm:test_vit"


def _image_folder(root, per_class: int = 5, classes=("ant", "bee", "cat")):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((20, 24, 3)) * 60 + ci * 60).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.png")
    return root


@pytest.fixture
def ds(tmp_path):
    return load_dataset(_image_folder(tmp_path / "imgs"))


def test_extract_then_cache_hit_without_loading_the_model(ds, monkeypatch):
    fs = extract_features(ds, MODEL, pretrained=False, device="cpu", batch_size=4, progress=False)
    assert fs.features.shape == (15, 64) and fs.features.dtype == np.float32
    assert fs.logits.shape == (15, 1000)
    assert fs.ids == [s.id for s in ds.samples]
    assert fs.labels.tolist() == ds.labels_array().tolist()
    assert fs.classes == ["ant", "bee", "cat"]
    assert fs.meta["cache_hit"] is False and fs.meta["computed_chunks"] == 1 and fs.meta["skipped"] == 0

    # the same features as a direct forward pass over the whole set
    m = load_model(MODEL, pretrained=False)
    from advisor.data import load_image

    with torch.inference_mode():
        direct = m.forward(m.preprocess([load_image(s) for s in ds.samples])).features.numpy()
    np.testing.assert_allclose(fs.features, direct, atol=1e-5, rtol=1e-4)

    def boom(*a, **k):
        raise AssertionError("a cache hit must not load the model")

    monkeypatch.setattr("advisor.models.load_model", boom)
    hit = extract_features(ds, MODEL, pretrained=False, device="cpu", progress=False)
    assert hit.meta["cache_hit"] is True
    np.testing.assert_array_equal(hit.features, fs.features)
    np.testing.assert_array_equal(hit.logits, fs.logits)


def test_resume_after_kill_recomputes_only_missing_chunks(ds, monkeypatch):
    monkeypatch.setattr(F, "CHUNK_SIZE", 4)  # 15 samples -> 4 chunks
    m = load_model(MODEL, pretrained=False)
    calls = {"n": 0}
    real_forward = m.forward

    def dying_forward(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user hits Ctrl-C / the job is killed mid-run
        return real_forward(batch)

    monkeypatch.setattr(m, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, m, device="cpu", batch_size=4, progress=False)
    entry = next(p for p in (F.cache_dir("features")).iterdir() if p.name != "index")
    assert sorted(p.name for p in entry.glob("chunk-*.npz")) == ["chunk-000000.npz", "chunk-000001.npz"]
    assert not (entry / "features.npz").exists()

    calls["n"] = -100  # no more deaths; count the batches of the resumed run
    fs = extract_features(ds, m, device="cpu", batch_size=4, progress=False)
    assert fs.meta["resumed_chunks"] == 2 and fs.meta["computed_chunks"] == 2
    assert calls["n"] == -100 + 2  # only the two missing chunks' batches ran
    assert not list(entry.glob("chunk-*.npz"))  # assembled into features.npz
    fresh = extract_features(ds, m, device="cpu", batch_size=5, progress=False, overwrite_strategy="always")
    assert fresh.meta["cache_hit"] is False and fresh.meta["resumed_chunks"] == 0
    np.testing.assert_allclose(fs.features, fresh.features, atol=1e-5, rtol=1e-4)
    assert fs.ids == fresh.ids


def test_overwrite_strategies(ds):
    with pytest.raises(ResultsError, match="only-cache"):
        extract_features(ds, MODEL, pretrained=False, overwrite_strategy="only-cache", progress=False)
    extract_features(ds, MODEL, pretrained=False, overwrite_strategy="never", progress=False)
    with pytest.raises(UsageError, match="never"):
        extract_features(ds, MODEL, pretrained=False, overwrite_strategy="never", progress=False)
    assert extract_features(
        ds, MODEL, pretrained=False, overwrite_strategy="only-cache", progress=False
    ).meta["cache_hit"]
    again = extract_features(ds, MODEL, pretrained=False, overwrite_strategy="always", progress=False)
    assert again.meta["cache_hit"] is False
    with pytest.raises(UsageError):
        extract_features(ds, MODEL, pretrained=False, overwrite_strategy="sometimes", progress=False)


def test_subsample_order_and_key(ds):
    sub = ds.samples[::2]
    fs = extract_features(ds, MODEL, pretrained=False, samples=sub, progress=False)
    assert fs.ids == [s.id for s in sub]
    full = extract_features(ds, MODEL, pretrained=False, progress=False)
    assert full.meta["cache_hit"] is False  # different sample ids, different key
    assert fs.meta["cache_key"] != full.meta["cache_key"]


def test_corrupt_items_are_skipped_and_reported(ds):
    bad = ds.samples[1]
    bad.path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # broken after the scan
    fs = extract_features(ds, MODEL, pretrained=False, batch_size=4, progress=False)
    assert len(fs) == 14 and bad.id not in fs.ids
    assert fs.meta["skipped"] == 1 and fs.meta["skipped_items"][0]["id"] == bad.id
    assert fs.labels.shape == (14,)


def test_workers_give_the_same_features(ds):
    a = extract_features(ds, MODEL, pretrained=False, num_workers=0, progress=False)
    b = extract_features(
        ds, MODEL, pretrained=False, num_workers=1, progress=False, overwrite_strategy="always"
    )
    np.testing.assert_allclose(a.features, b.features, atol=1e-6)


def test_featureset_roundtrip_npz_and_safetensors(ds, tmp_path):
    fs = extract_features(ds, MODEL, pretrained=False, progress=False)
    for name in ("f.npz", "f.safetensors"):
        fs.save(tmp_path / name)
        back = FeatureSet.load(tmp_path / name)
        np.testing.assert_array_equal(back.features, fs.features)
        np.testing.assert_array_equal(back.labels, fs.labels)
        np.testing.assert_array_equal(back.logits, fs.logits)
        assert back.ids == fs.ids and back.classes == fs.classes and back.model_id == MODEL
        assert back.meta["cache_key"] == fs.meta["cache_key"]
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        assert {"features", "labels", "ids", "classes", "logits"} <= set(z.files)
    with pytest.raises(ResultsError):
        FeatureSet.load(tmp_path / "missing.npz")


def test_modality_mismatch(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nhello there,a\ngood bye,b\n")
    text_ds = load_dataset(tmp_path / "t.csv")
    with pytest.raises(UsageError, match="image model"):
        extract_features(text_ds, MODEL, pretrained=False, progress=False)


def test_cli_features_json(ds, tmp_path):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    out = tmp_path / "feats.npz"
    args = ["features", "--data", str(ds.root), "--model", MODEL, "--random-init", "--out", str(out)]
    args += ["--max-per-class", "2", "--no-progress", "--format", "json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["shape"] == [6, 64] and s["cache_hit"] is False and s["skipped"] == 0 and s["out"] == str(out)
    assert FeatureSet.load(out).features.shape == (6, 64)
    r2 = CliRunner().invoke(app, args)
    assert json.loads(r2.stdout)["cache_hit"] is True
    bad = CliRunner().invoke(
        app, ["features", "--data", str(ds.root), "--model", "hf:nobody/nothing", "--offline"]
    )
    assert bad.exit_code != 0 and "hf:nobody/nothing" in bad.output and "Traceback" not in bad.output


def test_cli_features_reads_the_split_column_it_is_given(ds, tmp_path):
    # --split test with --split-column part: only the rows the "part" column puts in test
    from typer.testing import CliRunner

    from advisor.cli.main import app

    rows = [f"{s.path},{s.label},{'test' if i % 3 == 0 else 'train'}" for i, s in enumerate(ds.samples)]
    (tmp_path / "m.csv").write_text("path,label,part\n" + "\n".join(rows) + "\n")
    args = ["features", "--data", str(tmp_path / "m.csv"), "--model", MODEL, "--random-init", "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--split", "test", "--split-column", "part", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["shape"] == [5, 64]  # rows 0, 3, 6, 9, 12 of 15
    r = CliRunner().invoke(app, [*args, "--split", "test", "--format", "json"])
    assert r.exit_code != 0 and "Traceback" not in r.output  # without it the table has no test split


def test_oom_halves_the_batch_and_retries():
    m = load_model(MODEL, pretrained=False)
    real = m.forward
    sizes = []

    def fake_oom_forward(batch):
        sizes.append(int(batch[0].shape[0]))
        if batch[0].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch)

    m.forward = fake_oom_forward
    state: dict = {}
    x = m.example_batch(5)
    feats, logits = F.forward_with_oom_retry(m, x, "fp32", state)
    assert feats.shape == (5, 64) and logits.shape == (5, 1000)
    assert state["max_batch"] == 2 and state["oom_retries"] == 1
    assert sizes == [5, 2, 2, 1]
    with torch.inference_mode():
        np.testing.assert_allclose(feats, real(x).features.numpy(), atol=1e-5, rtol=1e-4)


def test_cache_keys_are_pinned():
    """Existing caches keep being served: the key formulas and their hashing (`advisor.io.to_jsonable` + sorted
    JSON + sha256) give the values main gave before the cache and runtime modules existed."""
    from pathlib import Path

    from advisor.cache import content_key
    from advisor.features import store
    from advisor.io import stable_hash

    sig = {
        "model": "timm:test_vit",
        "input_size": [3, 224, 224],
        "mean": [0.5, 0.5, 0.5],
        "interpolation": "bicubic",
        "crop": 0.875,
    }
    ids = stable_hash(["a/1.png", "b/2.png"], length=32)
    assert ids == "9cbd422737cb4ccbc6b9d7ac28526ee6"
    data_key = {"dataset": "d41d8cd98f00b204", "modality": "image", "ids": ids}
    assert store.entry_key(sig, "fp32", data_key) == "4250538e629ea4a9f3f62ce6"
    payload = {
        "v": 3,
        "sv": 2,
        "f": "abc",
        "scores": ["logme", "nleep"],
        "seed": 0,
        "nan": float("nan"),
        "p": Path("/x"),
        "np": np.float32(0.5),
        "t": (1, 2),
    }
    assert content_key(payload) == stable_hash(payload) == "7bcafaed145004ad"


def test_cache_hit_reports_the_same_key_as_the_computing_run(ds):
    from advisor.features import store

    fs = extract_features(ds, MODEL, pretrained=False, progress=False)
    m = load_model(MODEL, pretrained=False)
    data_key = {"dataset": ds.fingerprint, "modality": "image", "ids": F.stable_hash(fs.ids, length=32)}
    assert fs.meta["cache_key"] == store.entry_key(m.preprocess_signature(), "fp32", data_key)


def _broken_files(root):
    (root / "ant" / "zero.png").write_bytes(b"")
    (root / "bee" / "junk.png").write_bytes(b"not an image at all")
    return root


def test_features_command_reports_dataset_and_decode_skips(ds, monkeypatch):
    from typer.testing import CliRunner

    import advisor.data
    from advisor.cli.main import app
    from advisor.data import SkipItem

    _broken_files(ds.root)
    args = ["features", "--data", str(ds.root), "--model", MODEL, "--random-init", "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["n"] == 15 and s["skipped"] == 2
    paths = {i["path"]: i for i in s["skipped_items"]}
    assert set(paths) == {str(ds.root / "ant" / "zero.png"), str(ds.root / "bee" / "junk.png")}
    assert all(i["reason"] and i["stage"] == "dataset" for i in s["skipped_items"])
    assert s["skipped_by_code"] == {"zero-byte": 1, "corrupt": 1}
    warn = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(warn) == 1 and "2 item(s) skipped (1 zero-byte, 1 corrupt)" in warn[0]
    assert "Traceback" not in r.stderr

    # an item that passes the scan but fails to decode during extraction is reported too
    late = ds.samples[2]
    real = advisor.data.load_image

    def failing_load(sample, *a, **k):
        if sample.id == late.id:
            raise SkipItem(sample.path, "truncated image data")
        return real(sample, *a, **k)

    monkeypatch.setattr(advisor.data, "load_image", failing_load)
    r = CliRunner().invoke(app, [*args, "--format", "json", "--overwrite-strategy", "always"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["n"] == 14 and s["skipped"] == 3
    decode = [i for i in s["skipped_items"] if i["stage"] == "extraction"]
    assert decode == [
        {
            "path": str(late.path),
            "reason": "truncated image data",
            "code": "undecodable",
            "stage": "extraction",
        }
    ]
    assert "3 item(s) skipped" in r.stderr
    # a cache hit reports the same skips
    r = CliRunner().invoke(app, [*args, "--format", "json"])
    hit = json.loads(r.stdout)
    assert hit["cache_hit"] is True and hit["skipped"] == 3 and hit["skipped_items"] == s["skipped_items"]


def test_features_without_skips_prints_no_warning(ds):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    args = ["features", "--data", str(ds.root), "--model", MODEL, "--random-init", "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == 0 and r.stderr.strip() == ""
