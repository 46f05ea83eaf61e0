"""Hostile dataset inputs (issue 12 item 8 and the cases that already hold): odd audio channels, text encodings,
manifests that point outside their folder or repeat rows; each asserts what is kept, what is reported and why."""

from __future__ import annotations

import os

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


# ---------------------------------------------------------------------------------------------- text encodings
def _profile(cli, path, *extra):
    r = cli("data", "profile", path, "--format", "json", *extra).assert_ok()
    return r.json()


def test_latin1_csv_is_decoded_and_noted(tmp_path, cli):
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\ncafé crème,a\nthé glacé,b\nnaïve,a\n".encode("latin-1"))
    prof = _profile(cli, p)
    assert prof["n_samples"] == 3 and prof["n_skipped"] == 0  # nothing dropped
    assert any("Windows-1252" in w and str(p) in w for w in prof["warnings"]), prof["warnings"]
    assert [s.text for s in load_dataset(p).samples] == ["café crème", "thé glacé", "naïve"]


def test_cp1252_only_characters_decode(tmp_path):
    p = tmp_path / "win.csv"
    p.write_bytes("text,label\n“quoted” – 5 €,a\nok,b\n".encode("cp1252"))
    assert load_dataset(p).samples[0].text == "“quoted” – 5 €"


def test_latin1_rows_in_a_utf8_jsonl_keep_both_encodings(tmp_path):
    p = tmp_path / "mixed.jsonl"
    good = '{"text": "über straße", "label": "a"}\n'.encode()
    bad = '{"text": "façade", "label": "b"}\n'.encode("latin-1")
    p.write_bytes(good + bad + good)
    ds = load_dataset(p)
    assert [s.text for s in ds.samples] == ["über straße", "façade", "über straße"] and ds.skipped == []
    assert len(ds.notes) == 1 and "1 of 3 lines" in ds.notes[0] and "line 2" in ds.notes[0]


def test_latin1_header_names_columns(tmp_path, cli):
    p = tmp_path / "fr.csv"
    p.write_bytes("texte,catégorie\nbonjour,salut\nadieu,fin\n".encode("latin-1"))
    prof = _profile(cli, p, "--text-column", "texte", "--label-column", "catégorie")
    assert prof["n_samples"] == 2 and prof["class_counts"] == {"fin": 1, "salut": 1}


def test_latin1_text_files_in_a_folder_get_one_note(tmp_path):
    for i, word in enumerate(["café", "thé", "crème"]):
        (tmp_path / "pos").mkdir(exist_ok=True)
        (tmp_path / "neg").mkdir(exist_ok=True)
        (tmp_path / "pos" / f"{i}.txt").write_bytes(f"bon {word}".encode("latin-1"))
        (tmp_path / "neg" / f"{i}.txt").write_text(f"mauvais {i}")
    ds = load_dataset(tmp_path)
    assert len(ds) == 6 and ds.skipped == []
    assert len(ds.notes) == 1 and ds.notes[0].startswith("3 text file(s)")


def test_binary_bytes_in_a_csv_still_refused_with_one_line(tmp_path, cli):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"text,label\n\x00\x01\x02\x03,a\n")
    cli("data", "profile", p).assert_error(str(p), "binary")


# -------------------------------------------------------------------------------------------------- manifests
def _png(path, value: int = 100) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def _manifest(folder, rows: list[tuple[str, str]], name: str = "manifest.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("path,label\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return p


@pytest.mark.parametrize(
    "entry, kept",
    [
        ("../../../../../../../../etc/passwd", False),  # not an image: skipped, and noted as outside
        ("~/home.png", True),
        ("ABSOLUTE", True),
        ("pics/../../elsewhere/out.png", True),
    ],
)
def test_manifest_paths_outside_the_folder_are_noted(tmp_path, cli, entry, kept, monkeypatch):
    data = tmp_path / "data"
    _png(data / "pics" / "a.png")
    _png(data / "pics" / "b.png", 50)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _png(tmp_path / "home" / "home.png", 10)
    _png(tmp_path / "elsewhere" / "out.png", 20)
    if entry == "ABSOLUTE":
        entry = str(tmp_path / "elsewhere" / "out.png")
    m = _manifest(data, [("pics/a.png", "x"), ("pics/b.png", "y"), (entry, "x")])
    prof = _profile(cli, m)
    notes = [w for w in prof["warnings"] if "outside the manifest's folder" in w]
    assert len(notes) == 1 and "1 manifest path(s)" in notes[0] and repr(entry) in notes[0], prof["warnings"]
    assert prof["n_samples"] == (3 if kept else 2)
    if not kept:
        assert prof["n_skipped"] == 1 and os.path.normpath(prof["skipped"][0]["path"]) == "/etc/passwd"


def test_manifest_paths_that_stay_inside_are_not_noted(tmp_path):
    data = tmp_path / "data"
    _png(data / "pics" / "a.png")
    _png(data / "other" / "b.png", 50)
    m = _manifest(data, [("pics/a.png", "x"), ("pics/../other/b.png", "y"), ("./pics/../pics/a.png", "z")])
    ds = load_dataset(m)
    assert ds.notes == []


@pytest.mark.parametrize(
    "second, label, why",
    [
        ("pics/a.png", "x", "repeats row 0 (the same file); counted once"),
        ("./pics/a.png", "x", "repeats row 0"),
        ("pics/link.png", "x", "repeats row 0"),  # a symlink to the same file
        ("pics/a.png", "y", "with another label ('x', here 'y'); only the first is kept"),
    ],
)
def test_duplicate_manifest_rows_are_counted_once_and_reported(tmp_path, cli, second, label, why):
    data = tmp_path / "data"
    _png(data / "pics" / "a.png")
    _png(data / "pics" / "b.png", 50)
    (data / "pics" / "link.png").symlink_to(data / "pics" / "a.png")
    m = _manifest(data, [("pics/a.png", "x"), ("pics/b.png", "y"), (second, label)])
    prof = _profile(cli, m)
    assert prof["n_samples"] == 2 and prof["class_counts"] == {"x": 1, "y": 1}
    assert prof["skipped_by_code"] == {"duplicate": 1}
    s = prof["skipped"][0]
    assert s["path"] == f"{m}:row 2" and why in s["reason"] and repr(second) in s["reason"], s


def test_the_same_file_in_train_and_test_manifests_is_reported(tmp_path):
    data = tmp_path / "data"
    for i in range(2):
        _png(data / "pics" / f"{i}.png", 30 * i)
    _manifest(data, [("pics/0.png", "x"), ("pics/1.png", "y")], "train.csv")
    _manifest(data, [("pics/1.png", "y")], "test.csv")
    ds = load_dataset(data)
    # tables are read train, val, test: the test copy of a training file is the one left out
    assert [(s.id, s.split) for s in ds.samples] == [("train:row:0", "train"), ("train:row:1", "train")]
    assert [s.code for s in ds.skipped] == ["duplicate"]
    assert "repeats train.csv row 1" in ds.skipped[0].reason


@pytest.mark.parametrize("target", ["folder", "missing"])
def test_manifest_rows_that_are_not_files(tmp_path, cli, target):
    data = tmp_path / "data"
    _png(data / "pics" / "a.png")
    _png(data / "pics" / "b.png", 50)
    (data / "adir.png").mkdir()
    entry = "adir.png" if target == "folder" else "gone.png"
    m = _manifest(data, [("pics/a.png", "x"), ("pics/b.png", "y"), (entry, "x")])
    prof = _profile(cli, m)
    assert prof["n_samples"] == 2
    code = "not-regular-file" if target == "folder" else "missing-file"
    assert prof["skipped_by_code"] == {code: 1} and prof["skipped"][0]["path"] == str(data / entry)
