"""Bad input: every broken file is skipped with a reason (or rejected with one line), never a traceback or hang."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from data_synth import write_png, write_wav
from PIL import Image

from advisor.data import SkipItem, load_audio, load_dataset, load_image, profile_dataset
from advisor.errors import DatasetError


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (no pixel data): opening reads only this header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def broken_folder(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        write_png(root / "good" / f"{i}.png")
    write_png(root / "single" / "only.png")
    (root / "good" / "zero.png").write_bytes(b"")
    (root / "good" / "garbage.jpg").write_bytes(os.urandom(200))
    (root / "good" / "notes.docx").write_bytes(b"PK\x03\x04 not an image")
    _png_header_only(root / "good" / "bomb.png", 100_000, 100_000)
    (root / "empty_class").mkdir()
    (root / "broken_class").mkdir()
    (root / "broken_class" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    os.symlink(root, root / "good" / "loop")  # a symlink loop back to the root
    os.symlink(root / "missing.png", root / "good" / "dangling.png")
    os.mkfifo(root / "good" / "pipe.png")  # opening a FIFO would block forever
    (root / "README.md").write_text("about this dataset")
    (root / "stray.png").write_bytes((root / "good" / "0.png").read_bytes())
    return root


def test_broken_files_are_skipped_with_reasons(broken_folder):
    ds = load_dataset(broken_folder)
    assert ds.classes == ["good", "single"]
    assert sorted(s.id for s in ds.samples) == ["good/0.png", "good/1.png", "good/2.png", "single/only.png"]
    by_name = {os.path.basename(s.path): s for s in ds.skipped}
    assert by_name["zero.png"].code == "zero-byte"
    assert by_name["garbage.jpg"].code == "corrupt"
    assert by_name["notes.docx"].code == "not-media"
    assert by_name["bomb.png"].code == "too-large" and "decompression-bomb" in by_name["bomb.png"].reason
    assert by_name["bad.png"].code == "corrupt"
    assert by_name["loop"].code == "symlink-loop"
    assert by_name["dangling.png"].code == "unreadable"
    assert by_name["pipe.png"].code == "not-regular-file"
    assert by_name["stray.png"].code == "misplaced"
    assert by_name["empty_class"].code == "empty-class"
    assert by_name["broken_class"].code == "empty-class"
    assert "README.md" not in by_name  # documentation next to the data is not reported

    prof = profile_dataset(ds)
    assert prof.empty_classes == ["broken_class", "empty_class"]
    assert prof.singleton_classes == ["single"]
    assert prof.n_skipped == len(ds.skipped)
    assert prof.skipped_by_code["empty-class"] == 2
    assert any("single sample" in w for w in prof.warnings)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    for i in range(2):
        write_png(tmp_path / "c" / f"{i}.png", size=(20, 20))
    write_png(tmp_path / "c" / "big.png", size=(40, 40))
    monkeypatch.setenv("ADVISOR_MAX_IMAGE_PIXELS", "1000")
    ds = load_dataset(tmp_path)
    assert len(ds) == 2 and ds.skipped[0].code == "too-large"
    with pytest.raises(SkipItem, match="too large") as e:
        load_image(tmp_path / "c" / "big.png")
    assert e.value.code == "too-large"


def test_load_image_truncated_raises_skipitem(tmp_path):
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(SkipItem) as e:
        load_image(path)
    assert e.value.path == str(path) and e.value.code == "corrupt"
    with pytest.raises(SkipItem, match="not found"):
        load_image(tmp_path / "gone.png")


def test_image_modes_convert_to_rgb(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> white
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "rgba.png")
    im = load_image(tmp_path / "rgba.png")
    assert im.mode == "RGB" and im.getpixel((1, 1)) == (255, 255, 255) and im.getpixel((0, 0)) == (255, 0, 0)

    la = Image.new("LA", (2, 2), (0, 128))  # half-transparent black on white -> mid grey
    la.save(tmp_path / "la.png")
    assert abs(load_image(tmp_path / "la.png").getpixel((0, 0))[0] - 127) <= 1

    arr16 = np.full((3, 3), 65535, dtype=np.uint16)
    arr16[0, 0] = 0
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    im16 = load_image(tmp_path / "g16.png")
    assert im16.getpixel((1, 1)) == (255, 255, 255) and im16.getpixel((0, 0)) == (0, 0, 0)

    pal = Image.new("P", (2, 2), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png").getpixel((0, 0)) == (10, 200, 30)

    pal_t = Image.new("P", (2, 2), 0)
    pal_t.putpalette([1, 2, 3] * 256)
    pal_t.info["transparency"] = 0
    pal_t.save(tmp_path / "pal_t.png", transparency=0)
    assert load_image(tmp_path / "pal_t.png").getpixel((0, 0)) == (255, 255, 255)

    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    r, g, b = load_image(tmp_path / "cmyk.jpg").getpixel((0, 0))
    assert r > 200 and g < 40 and b < 40

    Image.new("1", (2, 2), 1).save(tmp_path / "bw.png")
    assert load_image(tmp_path / "bw.png").getpixel((0, 0)) == (255, 255, 255)

    fl = Image.fromarray(np.array([[0.0, 0.5], [1.0, 1.0]], dtype=np.float32), mode="F")
    fl.save(tmp_path / "f.tiff")
    assert load_image(tmp_path / "f.tiff").getpixel((1, 0))[0] in (127, 128)


def test_scan_records_modes_for_profile(tmp_path):
    write_png(tmp_path / "a" / "1.png", mode="L", color=3)
    write_png(tmp_path / "a" / "2.png", size=(10, 10))
    Image.new("CMYK", (5, 5)).save(tmp_path / "b" / "1.jpg") if (tmp_path / "b").mkdir() is None else None
    prof = profile_dataset(load_dataset(tmp_path))
    assert prof.image["modes"] == {"L": 1, "RGB": 1, "CMYK": 1}
    assert prof.image["width_px"]["max"] == 10


def test_permission_denied_is_skipped(tmp_path, monkeypatch):
    for i in range(2):
        write_png(tmp_path / "c" / f"{i}.png")
    real_open = Image.open

    def fake_open(fp, *a, **k):  # root can read any file, so simulate EACCES
        if str(fp).endswith("1.png"):
            raise PermissionError(13, "Permission denied")
        return real_open(fp, *a, **k)

    monkeypatch.setattr(Image, "open", fake_open)
    ds = load_dataset(tmp_path)
    assert [s.id for s in ds.samples] == ["c/0.png"]
    assert ds.skipped[0].code == "unreadable" and "permission denied" in ds.skipped[0].reason
    with pytest.raises(SkipItem, match="permission denied"):
        load_image(tmp_path / "c" / "1.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_real_permissions(tmp_path):
    write_png(tmp_path / "c" / "0.png")
    p = write_png(tmp_path / "c" / "1.png")
    p.chmod(0)
    ds = load_dataset(tmp_path)
    assert [s.id for s in ds.samples] == ["c/0.png"] and ds.skipped[0].code == "unreadable"


def test_bad_audio(tmp_path):
    for i in range(2):
        write_wav(tmp_path / "yes" / f"{i}.wav")
    write_wav(tmp_path / "yes" / "silent.wav", amplitude=0.0)
    write_wav(tmp_path / "yes" / "empty.wav", seconds=0.0)
    (tmp_path / "yes" / "broken.flac").write_bytes(b"fLaC" + os.urandom(100))
    (tmp_path / "yes" / "zero.ogg").write_bytes(b"")
    ds = load_dataset(tmp_path)
    assert ds.modality == "audio"
    codes = {os.path.basename(s.path): s.code for s in ds.skipped}
    assert codes == {"empty.wav": "zero-length-audio", "broken.flac": "corrupt", "zero.ogg": "zero-byte"}
    silent = next(s for s in ds.samples if s.id.endswith("silent.wav"))
    with pytest.raises(SkipItem) as e:
        load_audio(silent, 16000)
    assert e.value.code == "silent-audio"
    with pytest.raises(SkipItem, match="cannot decode audio"):
        load_audio(tmp_path / "yes" / "broken.flac", 16000)


def test_text_encodings(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("text,label\nnaïve café,a\nb,b\n".encode("utf-8-sig"))
    ds = load_dataset(bom)
    assert ds.samples[0].text == "naïve café" and ds.classes == ["a", "b"]

    u16 = tmp_path / "u16.csv"
    u16.write_bytes("text,label\nüber,x\n".encode("utf-16"))
    assert load_dataset(u16).samples[0].text == "über"

    # a Latin-1 row pasted into a UTF-8 file: decoded as Windows-1252, the UTF-8 rows untouched, nothing dropped
    mixed = tmp_path / "mixed.csv"
    rows = ["text,label", "naïve,a"] + [f"row {i},a" for i in range(8)]
    mixed.write_bytes(("\n".join(rows) + "\n").encode() + "caf\xe9 latin1,b\n".encode("latin-1"))
    ds = load_dataset(mixed)
    assert len(ds) == 10 and ds.skipped == []
    assert ds.samples[0].text == "naïve" and ds.samples[-1].text == "café latin1"

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,a\nthé €,b\n".encode("cp1252"))
    assert [s.text for s in load_dataset(latin).samples] == ["café", "thé €"]


def test_text_bad_rows(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,label\nok,a\n,a\n"missing label",\ntoo,many,fields\nfine,b\n')
    ds = load_dataset(p)
    assert [s.text for s in ds.samples] == ["ok", "fine"]
    assert sorted(s.code for s in ds.skipped) == ["bad-row", "empty-text", "missing-label"]
    j = tmp_path / "t.jsonl"
    j.write_text('{"text": "a", "label": "x"}\nnot json\n[1, 2]\n{"text": "b", "label": "y"}\n')
    ds = load_dataset(j)
    assert len(ds) == 2 and [s.code for s in ds.skipped] == ["bad-row", "bad-row"]


def test_manifest_missing_files(tmp_path):
    write_png(tmp_path / "1.png")
    (tmp_path / "m.csv").write_text("path,label\n1.png,a\nnope.png,b\n,c\n1.png,\n")
    ds = load_dataset(tmp_path / "m.csv")
    assert [s.id for s in ds.samples] == ["row:0"]
    assert sorted(s.code for s in ds.skipped) == ["bad-row", "missing-file", "missing-label"]


def _put(path, data, ret=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path if ret is None else ret


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "nope", "does not exist"),
        (lambda p: p, "is empty"),
        (lambda p: _put(p / "a.bin", b"\x00\x01", p), "no images, audio or tables"),
        (lambda p: write_png(p / "x.png"), "single image file"),
        (lambda p: _put(p / "t.csv", b""), "is empty"),
        (lambda p: _put(p / "t.csv", b"text,label\n"), "no usable samples"),
        (lambda p: _put(p / "t.csv", b"a,b\n1,2\n"), "no text column and no path column"),
        (lambda p: _put(p / "c" / "x.png", b"junk", p), "no usable samples"),
        (lambda p: _put(p / "t.bin", b"\x00" * 10), "not a dataset file"),
    ],
)
def test_unusable_paths_raise_dataset_error_with_hint(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=match) as e:
        load_dataset(path)
    assert e.value.hint


def test_no_follow_into_loop_of_dirs(tmp_path):
    write_png(tmp_path / "a" / "1.png")
    write_png(tmp_path / "b" / "1.png")
    os.symlink(tmp_path / "b", tmp_path / "a" / "to_b")
    os.symlink(tmp_path / "a", tmp_path / "b" / "to_a")
    ds = load_dataset(tmp_path)  # must terminate
    assert {s.label for s in ds.samples} == {"a", "b"}
    assert len(ds.samples) <= 4


def test_non_utf8_file_name_is_skipped(tmp_path):
    write_png(tmp_path / "a" / "ok.png")
    bad = os.path.join(os.fsencode(tmp_path / "a"), b"caf\xe9.png")
    with open(bad, "wb") as fh:
        fh.write((tmp_path / "a" / "ok.png").read_bytes())
    ds = load_dataset(tmp_path)
    assert [s.id for s in ds.samples] == ["a/ok.png"]
    assert ds.skipped[0].code == "bad-filename" and ds.skipped[0].path.endswith("caf\ufffd.png")
    json.dumps(profile_dataset(ds).to_dict(), ensure_ascii=False).encode()


def test_broken_split_table_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,x\nb,y\n")
    (tmp_path / "test.csv").write_bytes(b"text,label\n\x00\x01\x02binary\n")
    with pytest.raises(DatasetError, match="test.csv"):
        load_dataset(tmp_path)


def test_raised_pixel_limit_beats_pillow_guard(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", PILImage.MAX_IMAGE_PIXELS)  # restored afterwards
    _png_header_only(tmp_path / "c" / "huge.png", 20_000, 20_000) if (
        tmp_path / "c"
    ).mkdir() is None else None
    write_png(tmp_path / "c" / "small.png")
    assert load_dataset(tmp_path).skipped[0].code == "too-large"  # 400 Mpx > default limit
    monkeypatch.setenv("ADVISOR_MAX_IMAGE_PIXELS", str(500_000_000))
    ds = load_dataset(tmp_path)
    assert len(ds) == 2 and ds.media_info["c/huge.png"]["width"] == 20_000
