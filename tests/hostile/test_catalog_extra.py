"""A malformed $ADVISOR_CATALOG_EXTRA (the user's own catalog entries) gives one line naming the file, the line and
the record, never a traceback (issue 12 item 8); a valid one still loads."""

from __future__ import annotations

import json

import pytest

from advisor.catalog.schema import CatalogEntry

GOOD = CatalogEntry(
    id="local:my-net",
    source="local",
    source_id="/models/my.onnx",
    family="mine",
    architecture="mine",
    modality="image",
    task="image-feature-extraction",
    probeable=True,
    probe_note="ONNX file",
).to_dict()


def _with(**changes) -> str:
    d = {**GOOD, "id": "local:bad-one", **changes}
    return json.dumps({k: v for k, v in d.items() if v != "DROP"})


@pytest.mark.parametrize(
    "line, needles",
    [
        ('{"id": "local:x", ', ["not valid JSON"]),
        ("[1, 2, 3]", ["must be a JSON object, not list"]),
        ('"just a string"', ["not str"]),
        (_with(family="DROP", task="DROP"), ["'local:bad-one'", "missing", "family"]),
        (_with(colour="blue"), ["'local:bad-one'", "unknown fields", "colour"]),
        (_with(input_size=["three", 224, 224]), ["'local:bad-one'", "ValueError"]),
        (_with(input_size=224), ["'local:bad-one'", "TypeError"]),
        (_with(metrics=[{"dataset": "imagenet-1k"}]), ["'local:bad-one'", "Metric"]),
        (_with(metrics="top1"), ["'local:bad-one'"]),
        (_with(modality="smell"), ["'local:bad-one'", "modality 'smell'"]),
        (_with(id="no-colon"), ["'no-colon'", "source:name"]),
        (_with(n_params=-5), ["n_params must be a non-negative number"]),
        (_with(year="last year"), ["'local:bad-one'"]),
    ],
)
def test_malformed_record_is_one_line(tmp_path, cli, line, needles):
    extra = tmp_path / "mine.jsonl"
    extra.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    r = cli("catalog", "list", env={"ADVISOR_CATALOG_EXTRA": str(extra)})
    r.assert_error(f"{extra}:2:", *needles)


@pytest.mark.parametrize("kind", ["folder", "missing", "not-utf8"])
def test_unusable_extra_file_is_one_line(tmp_path, cli, kind):
    extra = tmp_path / "mine.jsonl"
    if kind == "folder":
        extra.mkdir()
    elif kind == "not-utf8":
        extra.write_bytes(json.dumps(dict(GOOD, family="caf\xe9")).encode("utf-8")[:-3] + b'\xe9"}\n')
    r = cli("catalog", "list", env={"ADVISOR_CATALOG_EXTRA": str(extra)})
    r.assert_error(str(extra))


def test_valid_extra_file_loads_its_entry(tmp_path, cli):
    extra = tmp_path / "mine.jsonl"
    extra.write_text(json.dumps(GOOD) + "\n\n")
    r = cli("catalog", "show", "local:my-net", "--format", "json", env={"ADVISOR_CATALOG_EXTRA": str(extra)})
    assert r.assert_ok().json()["id"] == "local:my-net"
