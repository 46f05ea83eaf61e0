"""Hostile dataset inputs (issue 12 item 8 and the cases that already hold): odd audio channels, text encodings,
manifests that point outside their folder or repeat rows; each asserts what is kept, what is reported and why."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.data import SkipItem, load_audio, load_dataset


def _stereo(path, left: np.ndarray, right: np.ndarray, sr: int = 8000) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([left, right], axis=1), sr, subtype="FLOAT")


def _tone(seconds: float = 0.25, sr: int = 8000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------------- audio
def test_phase_inverted_stereo_is_not_silent(tmp_path):
    """L = -R averages to silence; the clip is not silent, so the loudest channel is used (not skipped)."""
    tone = _tone()
    _stereo(tmp_path / "inv.wav", tone, -tone)
    wave = load_audio(tmp_path / "inv.wav", 8000)
    np.testing.assert_allclose(np.abs(wave), np.abs(tone), atol=1e-6)


def test_partly_cancelling_stereo_is_still_averaged(tmp_path):
    """Channels that differ but do not cancel keep the ordinary mono average."""
    tone = _tone()
    _stereo(tmp_path / "st.wav", tone, 0.5 * tone)
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav", 8000), 0.75 * tone, atol=1e-6)


def test_truly_silent_stereo_is_skipped_as_silent(tmp_path):
    z = np.zeros(2000, np.float32)
    _stereo(tmp_path / "z.wav", z, z)
    with pytest.raises(SkipItem) as e:
        load_audio(tmp_path / "z.wav", 8000)
    assert e.value.code == "silent-audio" and "every sample is zero" in e.value.reason


def test_phase_inverted_clip_in_a_dataset_is_kept(tmp_path):
    tone = _tone()
    for c in ("a", "b"):
        _stereo(tmp_path / c / "ok.wav", tone, tone)
        _stereo(tmp_path / c / "inv.wav", tone, -tone)
    ds = load_dataset(tmp_path)
    assert len(ds) == 4 and ds.skipped == []
    assert all(np.any(load_audio(s, 8000)) for s in ds.samples)
