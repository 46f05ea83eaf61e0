"""Hostile files and folders through the CLI (`data profile`, `features`): empty, zero-byte, mislabelled, looping,
unreadable, oversized-in-header, badly named or special files. Each case asserts the exit code, that an error is one
line without a traceback, and that every good sample is still counted (nothing lost, nothing counted twice)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _png(path: Path, value: int = 120, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def _good(root: Path) -> None:
    """Two classes of three good images each: the samples every case must keep."""
    for c, v in (("cat", 40), ("dog", 200)):
        for i in range(3):
            _png(root / c / f"{i}.png", v + i)


def _profile(cli, path, *extra) -> dict:
    return cli("data", "profile", path, "--format", "json", *extra).assert_ok().json()


def _header_only_png(path: Path, w: int, h: int) -> Path:
    """A PNG whose header claims w x h pixels, with one tiny compressed row: a decompression-bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )
    return path


# ----------------------------------------------------------------------------------------- paths that fail whole
def test_empty_folder_is_one_line(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    cli("data", "profile", tmp_path / "empty").assert_error("is empty", code=1)


def test_missing_path_is_one_line(tmp_path, cli):
    cli("data", "profile", tmp_path / "nope").assert_error("does not exist", code=1)


def test_broken_symlink_as_dataset_is_one_line(tmp_path, cli):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    cli("data", "profile", tmp_path / "link").assert_error("is a broken symlink", code=1)


def test_zero_byte_table_is_one_line(tmp_path, cli):
    (tmp_path / "t.csv").write_bytes(b"")
    cli("data", "profile", tmp_path / "t.csv").assert_error("t.csv", "the file is empty", code=1)


def test_header_only_table_is_one_line(tmp_path, cli):
    (tmp_path / "t.csv").write_text("text,label\n")
    cli("data", "profile", tmp_path / "t.csv").assert_error("no usable samples", code=1)


def test_missing_label_column_names_the_columns(tmp_path, cli):
    (tmp_path / "t.csv").write_text("text,label\nhello,a\nbye,b\n")
    r = cli("data", "profile", tmp_path / "t.csv", "--label-column", "intent")
    r.assert_error("no label column 'intent'", "columns: text, label", code=1)


def test_every_file_broken_is_one_line_with_the_count(tmp_path, cli):
    for i in range(3):
        (tmp_path / "c" / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "c" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cli("data", "profile", tmp_path).assert_error("no usable samples", "3 corrupt", "c/0.png", code=1)


def test_single_image_instead_of_a_folder_says_so(tmp_path, cli):
    p = _png(tmp_path / "one.png")
    cli("data", "profile", p).assert_error("single image file, not a dataset", code=1)


# ------------------------------------------------------------------------------- bad files beside good ones
@pytest.mark.parametrize(
    "make, code",
    [
        (lambda d: (d / "cat" / "empty.png").write_bytes(b""), "zero-byte"),
        (lambda d: (d / "cat" / "notes.png").write_text("not an image at all"), "corrupt"),
        (lambda d: _header_only_png(d / "cat" / "bomb.png", 100_000, 100_000), "too-large"),
        (lambda d: (d / "cat" / "loop.png").symlink_to(d / "cat" / "loop.png"), "unreadable"),
        (lambda d: (d / "cat" / "dangling.png").symlink_to(d / "gone.png"), "unreadable"),
        (lambda d: (d / "cat" / "up").symlink_to(d), "symlink-loop"),
        (lambda d: os.mkfifo(d / "cat" / "pipe.png"), "not-regular-file"),
        (lambda d: (d / "cat" / os.fsdecode(b"caf\xe9.png")).write_bytes(b"x"), "bad-filename"),
        (lambda d: (d / "cat" / "clip.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt "), "other-modality"),
    ],
    ids=["zero-byte", "text-as-png", "bomb-header", "self-link", "dangling-link", "dir-loop", "fifo", "non-utf8-name",
         "audio-among-images"],
)  # fmt: skip
def test_bad_file_is_skipped_with_its_reason_and_good_ones_kept(tmp_path, cli, make, code):
    data = tmp_path / "data"
    _good(data)
    make(data)
    prof = _profile(cli, data)
    assert prof["n_samples"] == 6 and prof["class_counts"] == {"cat": 3, "dog": 3}
    assert prof["skipped_by_code"] == {code: 1}, prof["skipped"]
    json.dumps(prof, ensure_ascii=False).encode("utf-8")  # the report itself stays encodable


def test_unreadable_file_is_skipped(tmp_path, cli):
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of permissions")
    data = tmp_path / "data"
    _good(data)
    _png(data / "cat" / "secret.png").chmod(0)
    prof = _profile(cli, data)
    assert prof["n_samples"] == 6 and prof["skipped_by_code"] == {"unreadable": 1}


def test_png_named_jpg_is_read_by_content(tmp_path, cli):
    data = tmp_path / "data"
    _good(data)
    (data / "cat" / "0.png").rename(data / "cat" / "0.jpg")  # a PNG under a JPEG name
    prof = _profile(cli, data)
    assert prof["n_samples"] == 6 and prof["n_skipped"] == 0 and prof["image"]["formats"] == {"PNG": 6}


def test_image_without_extension_is_sniffed(tmp_path, cli):
    data = tmp_path / "data"
    _good(data)
    (data / "cat" / "0.png").rename(data / "cat" / "scan0")
    prof = _profile(cli, data)
    assert prof["n_samples"] == 6 and prof["n_skipped"] == 0


def test_hidden_files_and_macos_folders_are_ignored(tmp_path, cli):
    data = tmp_path / "data"
    _good(data)
    (data / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _png(data / "__MACOSX" / "cat" / "._0.png")
    prof = _profile(cli, data)
    assert prof["n_samples"] == 6 and prof["n_skipped"] == 0 and prof["class_counts"] == {"cat": 3, "dog": 3}


# --------------------------------------------------------------------------------------------------- tables
def test_nan_literals_in_a_csv_are_labels_but_json_nan_is_missing(tmp_path, cli):
    (tmp_path / "t.csv").write_text("text,label\nhello,NaN\nworld,ok\nagain,ok\nmore,NaN\n")
    prof = _profile(cli, tmp_path / "t.csv")
    assert prof["class_counts"] == {"NaN": 2, "ok": 2}  # text "NaN" in a CSV is a string like any other
    rows = [
        '{"text": "a", "label": NaN}',
        '{"text": "b", "label": "x"}',
        '{"text": "c", "label": Infinity}',
        '{"text": "d", "label": "y"}',
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(rows) + "\n")
    prof = _profile(cli, tmp_path / "t.jsonl")
    assert prof["class_counts"] == {"x": 1, "y": 1}
    assert prof["skipped_by_code"] == {"missing-label": 2}


@pytest.mark.parametrize(
    "body, kept, skipped",
    [
        ('ok,a\ntoo,many,fields\nfine,b\n"quoted, comma",a\n', {"a": 2, "b": 1}, ["row 1: has 3 fields"]),
        # an unterminated quote runs to the end of the file: that one (long) row is reported, not silently merged
        (
            'ok,a\ntoo,many,fields\n"unterminated,b\nfine,b\n',
            {"a": 1},
            ["row 1: has 3 fields", "row 2: has 1 fields"],
        ),
    ],
    ids=["ragged-row", "unterminated-quote"],
)
def test_ragged_and_malformed_rows_are_reported(tmp_path, cli, body, kept, skipped):
    (tmp_path / "t.csv").write_text("text,label\n" + body)
    prof = _profile(cli, tmp_path / "t.csv")
    assert prof["class_counts"] == kept
    got = [f"{s['path'].rsplit(':', 1)[1]}: {s['reason']}" for s in prof["skipped"]]
    assert len(got) == len(skipped) and all(g.startswith(w) for g, w in zip(got, skipped, strict=True)), got
    assert set(prof["skipped_by_code"]) == {"bad-row"}


# ------------------------------------------------------------------------------------------ through features
def test_truncated_image_is_skipped_by_features_not_fatal(tmp_path, cli):
    data = tmp_path / "data"
    _good(data)
    full = _png(data / "cat" / "big.png", size=(64, 64)).read_bytes()
    (data / "cat" / "big.png").write_bytes(full[: len(full) // 2])  # header intact, pixel data cut
    r = cli(
        "features", "-d", data, "-m", "timm:test_vit", "--random-init", "--device", "cpu", "--format", "json"
    )
    out = r.assert_ok().json()
    assert out["n"] == 6 and out["skipped"] == 1
