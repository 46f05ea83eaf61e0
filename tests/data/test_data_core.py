"""Core contract of advisor.data: each layout, modality detection, splits, decoding, fingerprint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_synth import write_png, write_wav

from advisor.data import Dataset, Sample, load_audio, load_dataset, load_image
from advisor.errors import DatasetError


def test_imagefolder(image_folder):
    ds = load_dataset(image_folder)
    assert isinstance(ds, Dataset)
    assert (ds.modality, ds.layout) == ("image", "imagefolder")
    assert ds.classes == ["cat", "dog", "fox"]
    assert len(ds) == 9
    assert ds.samples[0] == Sample("cat/000.png", "cat", image_folder / "cat" / "000.png", None, None)
    assert ds.labels_array().tolist() == [0] * 4 + [1] * 3 + [2] * 2
    assert ds.skipped == []
    assert ds.media_info["cat/000.png"] == {"width": 8, "height": 6, "mode": "RGB", "format": "PNG"}


def test_split_imagefolder(tmp_path):
    for split in ("train", "validation", "test"):
        for cls in ("a", "b"):
            write_png(tmp_path / split / cls / "x.png")
    ds = load_dataset(tmp_path)
    assert ds.layout == "split-imagefolder"
    assert ds.splits == ["train", "val", "test"]
    assert ds.classes == ["a", "b"]
    assert {s.id for s in ds.samples if s.split == "val"} == {"validation/a/x.png", "validation/b/x.png"}
    val = load_dataset(tmp_path, split="val")
    assert len(val) == 2 and {s.split for s in val.samples} == {"val"}
    assert val.fingerprint != ds.fingerprint
    with pytest.raises(DatasetError, match="no 'dev'|no 'val'"):
        load_dataset(tmp_path / "train", split="dev")


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"img{i}.png")
    ds = load_dataset(tmp_path)
    assert ds.layout == "flat" and ds.classes == []
    assert all(s.label is None for s in ds.samples)
    assert ds.labels_array().tolist() == [-1, -1, -1]


def test_image_manifest_csv_and_jsonl(tmp_path):
    write_png(tmp_path / "pics" / "1.png")
    write_png(tmp_path / "pics" / "2.png")
    (tmp_path / "labels.csv").write_text("path,label\npics/1.png,cat\npics/2.png,dog\n")
    ds = load_dataset(tmp_path / "labels.csv")
    assert (ds.modality, ds.layout) == ("image", "manifest")
    assert [(s.id, s.label, s.path.name) for s in ds.samples] == [
        ("row:0", "cat", "1.png"),
        ("row:1", "dog", "2.png"),
    ]
    # the same manifest found inside its folder, in JSONL form
    (tmp_path / "labels.csv").unlink()
    lines = [
        json.dumps({"file": "pics/1.png", "category": "cat"}),
        json.dumps({"file": "pics/2.png", "category": "dog"}),
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    ds2 = load_dataset(tmp_path)
    assert ds2.layout == "manifest" and ds2.classes == ["cat", "dog"]


def test_text_csv_default_and_custom_columns(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,category\n"hello, world",greet\nbye now,leave\nhi,greet\n')
    ds = load_dataset(p)
    assert (ds.modality, ds.layout) == ("text", "table")
    assert ds.samples[0] == Sample("row:0", "greet", None, "hello, world", None)
    assert ds.classes == ["greet", "leave"]
    q = tmp_path / "u.tsv"
    q.write_text("msg\tintent_name\nturn on the light\tlights\nplay music\tmusic\n")
    with pytest.raises(DatasetError, match="no text column"):
        load_dataset(q)
    ds2 = load_dataset(q, text_column="msg", label_column="intent_name")
    assert [s.label for s in ds2.samples] == ["lights", "music"]
    with pytest.raises(DatasetError, match="no label column 'nope'"):
        load_dataset(q, text_column="msg", label_column="nope")


def test_text_jsonl_and_split_tables(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"sentence": "a b", "label": 1}\n{"sentence": "c", "label": 0}\n')
    (tmp_path / "test.jsonl").write_text('{"sentence": "d", "label": 1}\n')
    ds = load_dataset(tmp_path)
    assert ds.layout == "split-table" and ds.splits == ["train", "test"]
    assert ds.classes == ["0", "1"]
    assert {s.id for s in ds.samples} == {"train:row:0", "train:row:1", "test:row:0"}


def test_a_split_column_of_a_text_table_is_honoured(tmp_path):
    """A text CSV with a split column: each row keeps its split (aliases normalised), and the fingerprint differs
    from the same rows without one. The text reader used to ignore the column, so a given test split was mixed
    into the cross-validation."""
    rows = [("a b", "x", "train"), ("c d", "y", "Train"), ("e f", "x", "validation"), ("g h", "y", "test")]
    p = tmp_path / "t.csv"
    p.write_text("text,label,split\n" + "".join(f"{t},{lab},{sp}\n" for t, lab, sp in rows))
    ds = load_dataset(p)
    assert [s.split for s in ds.samples] == ["train", "train", "val", "test"]
    assert ds.splits == ["train", "val", "test"] and ds.notes == []
    q = tmp_path / "u.csv"
    q.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab, _ in rows))
    assert load_dataset(q).fingerprint != ds.fingerprint


def test_a_column_of_split_names_not_read_as_the_split_is_said(tmp_path):
    # a "part" column of train/test values is not a split column by name: it is not used, and a note says so
    p = tmp_path / "t.csv"
    p.write_text("utterance,intent,part\na b,x,train\nc d,y,test\ne f,x,train\n")
    ds = load_dataset(p, text_column="utterance", label_column="intent")
    assert all(s.split is None for s in ds.samples)
    (note,) = ds.notes
    assert "column 'part' holds only split names (test, train)" in note and "--split-column part" in note
    # --split-column names it: honoured, no note; a manifest's too; a column that is not there is an error
    named = load_dataset(p, text_column="utterance", label_column="intent", split_column="part")
    assert [s.split for s in named.samples] == ["train", "test", "train"] and named.notes == []
    assert named.fingerprint != ds.fingerprint  # the split is part of the data: no cache served across
    with pytest.raises(DatasetError, match=r"--split-column"):
        load_dataset(p, text_column="utterance", label_column="intent", split_column="fold")
    for i in range(2):
        write_png(tmp_path / f"{i}.png")
    (tmp_path / "m.csv").write_text("path,label,part\n0.png,x,train\n1.png,y,test\n")
    assert [s.split for s in load_dataset(tmp_path / "m.csv", split_column="part").samples] == [
        "train",
        "test",
    ]
    # a label column of split-like names is the label, not a split: no note
    q = tmp_path / "u.csv"
    q.write_text("text,label\na b,train\nc d,test\n")
    assert load_dataset(q).notes == []


def test_audio_folder_and_load_audio(audio_folder):
    ds = load_dataset(audio_folder)
    assert (ds.modality, ds.layout) == ("audio", "imagefolder")
    assert ds.classes == ["high", "low"]
    assert ds.media_info["low/0.wav"] == {"sample_rate": 8000, "frames": 800, "channels": 1}
    wave = load_audio(ds.samples[0], 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.shape[0] == 1600
    assert 0.4 < float(np.abs(wave).max()) <= 1.0


def test_load_audio_stereo_and_downsample(tmp_path):
    p = write_wav(tmp_path / "s.wav", seconds=0.5, sr=44100, freq=1000.0, channels=2)
    wave = load_audio(p, 16000)
    assert wave.shape == (8000,)
    # a 1 kHz tone survives resampling with its energy: RMS of a 0.5-amplitude sine is ~0.354
    assert abs(float(np.sqrt(np.mean(wave[1000:-1000] ** 2))) - 0.3536) < 0.01


def test_load_image_returns_rgb(image_folder):
    ds = load_dataset(image_folder)
    im = load_image(ds.samples[0])
    assert im.mode == "RGB" and im.size == (8, 6)
    assert im.getpixel((0, 0)) == (0, 50, 100)


def test_fingerprint_stable_and_sensitive(image_folder):
    a = load_dataset(image_folder).fingerprint
    assert load_dataset(image_folder).fingerprint == a
    write_png(image_folder / "fox" / "new.png")
    b = load_dataset(image_folder).fingerprint
    assert b != a
    (image_folder / "fox" / "new.png").rename(image_folder / "cat" / "new.png")  # relabel
    assert load_dataset(image_folder).fingerprint not in (a, b)


def test_modality_override(tmp_path):
    write_png(tmp_path / "a" / "1.png")
    write_wav(tmp_path / "b" / "1.wav")
    write_wav(tmp_path / "b" / "2.wav")
    assert load_dataset(tmp_path).modality == "audio"  # majority
    ds = load_dataset(tmp_path, modality="image")
    assert ds.modality == "image" and [s.id for s in ds.samples] == ["a/1.png"]
    assert {s.code for s in ds.skipped} == {"other-modality", "empty-class"}
    with pytest.raises(DatasetError, match="unknown modality"):
        load_dataset(tmp_path, modality="video")


def test_threaded_header_scan_matches_serial(tmp_path, monkeypatch):
    for i in range(70):
        write_png(tmp_path / f"c{i % 3}" / f"{i}.png", size=(4 + i % 5, 4))
    (tmp_path / "c0" / "bad.png").write_bytes(b"junk")
    serial = load_dataset(tmp_path)
    monkeypatch.setenv("ADVISOR_SCAN_THREADS", "4")
    threaded = load_dataset(tmp_path)
    assert threaded.samples == serial.samples and threaded.media_info == serial.media_info
    assert threaded.skipped == serial.skipped and len(serial) == 70


def test_stat_only_scan_defers_errors(tmp_path):
    from advisor.data import SkipItem

    write_png(tmp_path / "a" / "ok.png")
    (tmp_path / "a" / "bad.png").write_bytes(b"junk")
    ds = load_dataset(tmp_path, check_headers=False)
    assert len(ds) == 2 and ds.media_info == {}
    assert ds.fingerprint == load_dataset(tmp_path, check_headers=False).fingerprint
    with pytest.raises(SkipItem):
        load_image(next(s for s in ds.samples if s.id == "a/bad.png"))


def test_text_folder_of_txt_files(tmp_path):
    for split in ("train", "test"):
        for cls, words in (("pos", "great film"), ("neg", "dull plot")):
            for i in range(2):
                (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
                (tmp_path / split / cls / f"{i}.txt").write_text(f"{words} {i}")
    (tmp_path / "README").write_text("aclImdb-like")
    (tmp_path / "train" / "urls.txt").write_text("http://x")
    (tmp_path / "train" / "neg" / "bad.txt").write_bytes("caf\xe9".encode("latin-1"))
    ds = load_dataset(tmp_path)
    assert (ds.modality, ds.layout, ds.classes, ds.splits) == (
        "text",
        "textfolder",
        ["neg", "pos"],
        ["train", "test"],
    )
    assert len(ds) == 9 and ds.samples[0].text == "dull plot 0"
    assert (
        next(s.text for s in ds.samples if s.id.endswith("bad.txt")) == "café"
    )  # Latin-1: decoded, not dropped
    assert sorted(s.code for s in ds.skipped) == ["misplaced"]


def test_delimiters_and_long_fields(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\nhello, there, friend;a\nyes|no, maybe;b\n")
    ds = load_dataset(semi)
    assert [s.text for s in ds.samples] == ["hello, there, friend", "yes|no, maybe"]
    tab = tmp_path / "tab.csv"  # a TSV saved as .csv
    tab.write_text("sentence\tintent\nturn, it on\tlights\n")
    assert load_dataset(tab).samples[0].label == "lights"
    long = tmp_path / "long.csv"
    long.write_text('text,label\n"' + "word " * 60_000 + '",a\nshort,b\n')
    ds = load_dataset(long)
    assert len(ds) == 2 and len(ds.samples[0].text) == 300_000


def test_magic_bytes_detect_extensionless_media(tmp_path):
    for i in range(2):
        png = write_png(tmp_path / "tmp" / f"{i}.png")
        (tmp_path / "c" / f"scan{i}").parent.mkdir(parents=True, exist_ok=True)
        png.rename(tmp_path / "c" / f"scan{i}")  # no extension
    wav = write_wav(tmp_path / "w.wav")
    wav.rename(tmp_path / "c" / "clip")
    (tmp_path / "tmp").rmdir()
    ds = load_dataset(tmp_path)
    assert ds.modality == "image" and [s.id for s in ds.samples] == ["c/scan0", "c/scan1"]
    assert [(s.code, s.path.endswith("clip")) for s in ds.skipped] == [("other-modality", True)]
    assert load_dataset(tmp_path, modality="audio").samples[0].id == "c/clip"


def test_load_image_min_side_draft(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    full = load_image(tmp_path / "big.jpg")
    small = load_image(tmp_path / "big.jpg", min_side=100)
    assert full.size == (640, 480)
    assert small.mode == "RGB" and min(small.size) >= 100 and small.size[0] < 640
    write_png(tmp_path / "p.png", size=(400, 400))
    assert load_image(tmp_path / "p.png", min_side=250).size == (400, 400)  # under 2 x min_side: untouched
    assert load_image(tmp_path / "p.png", min_side=50).size == (50, 50)  # others: box-reduced after decoding


def test_skipitem_pickles_and_is_a_dataset_error():
    import pickle

    from advisor.data import SkipItem

    e = pickle.loads(pickle.dumps(SkipItem("/x/a.png", "cannot decode image: broken", "corrupt")))
    assert (e.path, e.reason, e.code) == ("/x/a.png", "cannot decode image: broken", "corrupt")
    assert isinstance(e, DatasetError) and e.to_skipped().code == "corrupt"


def test_load_audio_odd_rate_and_upsampling(tmp_path):
    odd = write_wav(tmp_path / "odd.wav", seconds=0.2, sr=44101, freq=300.0)
    wave = load_audio(odd, 16000)
    assert wave.shape == (3200,) and wave.dtype == np.float32
    up = write_wav(tmp_path / "up.wav", seconds=0.25, sr=8000, freq=200.0, subtype="FLOAT")
    w16 = load_audio(up, 16000)
    assert w16.shape == (4000,)
    t = np.arange(4000) / 16000
    ref = 0.5 * np.sin(2 * np.pi * 200.0 * t)
    assert float(np.abs(w16[200:-200] - ref[200:-200]).max()) < 0.01  # band-limited upsampling is near exact


def test_scan_never_decodes_pixels_or_samples(image_folder, audio_folder, monkeypatch):
    import soundfile
    from PIL import ImageFile

    def boom(*a, **k):
        raise AssertionError("the scan decoded media")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    monkeypatch.setattr(soundfile, "read", boom)
    assert len(load_dataset(image_folder)) == 9 and len(load_dataset(audio_folder)) == 6


def test_reader_registry_and_forced_layout(image_folder):
    from advisor.data import READERS, get_reader, register_reader

    assert {
        "imagefolder",
        "split-imagefolder",
        "flat",
        "manifest",
        "table",
        "split-table",
        "textfolder",
    } <= set(READERS)
    with pytest.raises(ValueError, match="already registered"):
        register_reader("flat")(lambda req: None)
    with pytest.raises(DatasetError, match="unknown dataset layout") as e:
        get_reader("imagefoldr")
    assert "imagefolder" in e.value.hint
    with pytest.raises(DatasetError, match="9 misplaced"):  # forced flat: files in class folders do not count
        load_dataset(image_folder, layout="flat")
