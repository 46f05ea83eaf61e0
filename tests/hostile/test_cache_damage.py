"""A damaged feature-cache chunk (truncated, not a zip, arrays that do not fit together) is deleted, recomputed and
reported once; it never crashes the run (issue 12, item 4)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("timm")

import advisor.features as F  # noqa: E402
from advisor.data import load_dataset  # noqa: E402
from advisor.features import extract_features  # noqa: E402
from advisor.models import load_model  # noqa: E402

MODEL = "timm:test_vit"


@pytest.fixture
def ds(tmp_path):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(("ant", "bee", "cat")):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            arr = (rng.random((20, 24, 3)) * 60 + ci * 60).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / c / f"{i:03d}.png")
    return load_dataset(tmp_path / "imgs")


def _killed_run(ds, monkeypatch):
    """Run until two of four chunks are written, then die like Ctrl-C; returns (model, cache entry)."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.setattr(F, "CHUNK_SIZE", 4)  # 15 samples -> 4 chunks
    m = load_model(MODEL, pretrained=False)
    calls = {"n": 0}
    real_forward = m.forward

    def dying_forward(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_forward(batch)

    monkeypatch.setattr(m, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, m, device="cpu", batch_size=4, progress=False)
    monkeypatch.setattr(m, "forward", real_forward)
    entry = next(p for p in F.cache_dir("features").iterdir() if p.name != "index")
    assert sorted(p.name for p in entry.glob("chunk-*.npz")) == ["chunk-000000.npz", "chunk-000001.npz"]
    return m, entry


def _damage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "damaged chunk" in r.getMessage()]


def test_truncated_and_garbage_chunks_are_recomputed_and_reported_once(ds, monkeypatch, caplog):
    m, entry = _killed_run(ds, monkeypatch)
    c0, c1 = entry / "chunk-000000.npz", entry / "chunk-000001.npz"
    c0.write_bytes(c0.read_bytes()[: c0.stat().st_size // 2])  # truncated: zipfile.BadZipFile
    c1.write_bytes(b"not a zip file at all")
    with caplog.at_level(logging.WARNING, logger="advisor.features"):
        fs = extract_features(ds, m, device="cpu", batch_size=4, progress=False)
    assert fs.meta["resumed_chunks"] == 0 and fs.meta["computed_chunks"] == 4
    warnings = _damage_warnings(caplog)
    assert len(warnings) == 1 and "chunk-00000" in warnings[0] and "recomputing" in warnings[0]
    fresh = extract_features(ds, m, device="cpu", batch_size=5, progress=False, overwrite_strategy="always")
    np.testing.assert_allclose(fs.features, fresh.features, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(fs.logits, fresh.logits, atol=1e-5, rtol=1e-4)
    assert fs.ids == fresh.ids and fs.labels.tolist() == fresh.labels.tolist()


def test_chunk_whose_arrays_do_not_fit_together_is_recomputed(ds, monkeypatch, caplog):
    m, entry = _killed_run(ds, monkeypatch)
    c0 = entry / "chunk-000000.npz"
    with np.load(c0) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["features"] = arrays["features"][:2]  # a valid zip, but 4 positions and 2 feature rows
    with open(c0, "wb") as fh:
        np.savez(fh, **arrays)
    with caplog.at_level(logging.WARNING, logger="advisor.features"):
        fs = extract_features(ds, m, device="cpu", batch_size=4, progress=False)
    assert fs.meta["resumed_chunks"] == 1 and fs.meta["computed_chunks"] == 3
    assert fs.features.shape[0] == 15 and len(_damage_warnings(caplog)) == 1
    assert not list(entry.glob("chunk-*.npz"))  # assembled; nothing damaged is left behind


def test_truncated_final_features_file_is_a_miss_not_a_crash(tmp_path, monkeypatch, caplog):
    """A damaged finished cache file (features.npz cut short) is deleted and recomputed, with a warning."""
    import logging

    import numpy as np

    from advisor.features import _load_hit

    f = tmp_path / "features.npz"
    np.savez(f, features=np.zeros((3, 2)))
    f.write_bytes(f.read_bytes()[:40])
    with caplog.at_level(logging.WARNING):
        assert _load_hit(f, 0.0) is None
    assert not f.exists()
    assert "damaged file" in caplog.text
