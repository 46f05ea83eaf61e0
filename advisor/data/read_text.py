"""Readers of text datasets: class folders of ``.txt`` files, and text tables (one file, or one per split)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from advisor.data.read_media import _empty_class_dirs, _other_file_skip
from advisor.data.request import (
    ReadRequest,
    _group_column,
    _split_of,
    register_reader,
    row_id_prefix,
    row_split,
    split_column,
)
from advisor.data.tables import LABEL_COLUMNS, TEXT_COLUMNS, find_column, read_table
from advisor.data.types import Dataset, Sample, SkippedItem, compute_fingerprint, id_sort_key, sort_classes
from advisor.errors import DatasetError


@register_reader("textfolder")
def read_textfolder(req: ReadRequest) -> Dataset:
    """Class subfolders of ``.txt`` files, one sample per file (optionally under train/ val/ test/, as aclImdb)."""
    from advisor.data.tables import decode_text_file

    txt = [f for f in req.files if f.path.suffix.lower() == ".txt"]
    deep = [f.rel.split("/") for f in txt]
    tops = {p[0] for p in deep if len(p) > 1}
    split_layout = bool(tops) and all(_split_of(t) for t in tops) and any(len(p) > 2 for p in deep)
    samples: list[Sample] = []
    records = []
    populated: dict[str, set[str]] = {}
    legacy: list[Path] = []  # files decoded as Windows-1252: one warning for all of them
    for f in req.files:
        parts = f.rel.split("/")
        if f.path.suffix.lower() != ".txt":
            skip = _other_file_skip(f, "text", len(parts) == 1)
            if skip is not None and f.kind != "table":
                req.skipped.append(skip)
            continue
        split, rest = (
            (_split_of(parts[0]), parts[1:]) if split_layout and _split_of(parts[0]) else (None, parts)
        )
        if len(rest) < 2:
            if len(parts) > 1:  # a notes file directly inside train/ is not a sample
                req.skipped.append(
                    SkippedItem(str(f.path), "not inside a class folder (label unknown)", "misplaced")
                )
            continue
        try:
            text = decode_text_file(f.path, legacy=legacy)
        except DatasetError as e:
            req.skipped.append(SkippedItem(str(f.path), e.message.split(": ", 1)[-1], "bad-encoding"))
            continue
        if not text.strip():
            req.skipped.append(SkippedItem(str(f.path), "empty text file", "empty-text"))
            continue
        samples.append(Sample(f.rel, rest[0], f.path, text, split))
        records.append(
            (f.rel, rest[0], split, hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())
        )
        populated.setdefault(parts[0] if split else "", set()).add(rest[0])
    if legacy:
        req.note(
            f"{len(legacy)} text file(s) under {req.root} are not UTF-8: decoded as Windows-1252 (Latin-1); "
            f"first: {legacy[0]}"
        )
    samples.sort(key=lambda s: id_sort_key(s.id))
    for base in sorted(populated) if split_layout else [""]:
        already = {s.path for s in req.skipped}
        req.skipped.extend(
            _empty_class_dirs(req.root / base if base else req.root, populated.get(base, set()), already)
        )
    return Dataset(
        root=req.root,
        modality="text",
        samples=samples,
        classes=sort_classes(s.label for s in samples if s.label is not None),
        skipped=req.skipped,
        fingerprint=compute_fingerprint("text", "textfolder", records),
        layout="textfolder",
        notes=req.notes,
    )


@register_reader("table")
def read_text_table(req: ReadRequest) -> Dataset:
    """One CSV/TSV/JSONL/JSON table with a text column and an optional label column."""
    return _read_text(req, "table")


@register_reader("split-table")
def read_split_tables(req: ReadRequest) -> Dataset:
    """A folder with train/val/test tables (``train.csv``, ``test.csv``...): text samples with splits."""
    return _read_text(req, "split-table")


def _read_text(req: ReadRequest, layout: str) -> Dataset:
    if not req.tables:
        req.tables = [read_table(req.root)]
    req.note_encodings()
    multi = len(req.tables) > 1 or layout == "split-table"
    req.tables.sort(
        key=lambda t: (id_sort_key(_split_of(t.path.stem) or t.path.stem), t.path.name) if multi else 0
    )
    samples: list[Sample] = []
    records = []
    skipped = req.skipped
    for table in req.tables:
        skipped.extend(table.skipped)
        text_col = find_column(
            table.columns, req.text_column, TEXT_COLUMNS, "text", table.path, "--text-column"
        )
        if text_col is None:
            raise DatasetError(
                f"{table.path}: no text column (columns: {', '.join(table.columns)})",
                hint="pass --text-column with the name of the column holding the text",
            )
        label_col = find_column(
            table.columns, req.label_column, LABEL_COLUMNS, "label", table.path, "--label-column"
        )
        group_col = _group_column(table, req)
        split_col = split_column(table, req, (text_col, label_col, group_col))
        file_split = _split_of(table.path.stem) if multi else None
        prefix = row_id_prefix(table, req.tables) if multi else ""
        for n, row in table.rows:
            text = row.get(text_col)
            if text is None or not text.strip():
                skipped.append(
                    SkippedItem(f"{table.path}:row {n}", f"empty {text_col!r} value", "empty-text")
                )
                continue
            label = None
            if label_col is not None:
                label = (row.get(label_col) or "").strip()
                if not label:
                    skipped.append(
                        SkippedItem(f"{table.path}:row {n}", f"empty {label_col!r} value", "missing-label")
                    )
                    continue
            sid = f"{prefix}row:{n}"
            split = row_split(row, split_col, file_split)
            group = (row.get(group_col) or "").strip() or None if group_col else None
            samples.append(Sample(sid, label, None, text, split, group))
            records.append(
                (sid, label, split, hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())
            )
    # rows are in file order within a table; order the tables like their id prefixes (natural id order)
    labels = [s.label for s in samples if s.label is not None]
    return Dataset(
        root=req.root,
        modality="text",
        samples=samples,
        classes=sort_classes(labels) if labels else [],
        skipped=skipped,
        fingerprint=compute_fingerprint("text", layout, records),
        layout=layout,
        source=[t.path for t in req.tables],
        notes=req.notes,
    )
