"""The dataset-reader registry: `ReadRequest` (what a reader gets), `register_reader` and `get_reader`."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from advisor.data.scan import FoundFile
from advisor.data.tables import SPLIT_COLUMNS, Table, find_column
from advisor.data.types import SPLIT_ALIASES, Dataset, SkippedItem
from advisor.errors import DatasetError
from advisor.registry import add_unique

_SHARD_SUFFIX = re.compile(r"-\d+-of-\d+$")
EXPECTED_HINT = (
    "expected class subfolders of images or audio (cat/001.jpg), train/ and val/ folders of those, "
    "a flat folder of images, a CSV/JSONL with text,label columns (or a folder with train.csv/test.csv), "
    "or a CSV/JSONL manifest with path,label columns"
)


@dataclass
class ReadRequest:
    """Everything a reader needs: the root, what the scan found, and the user's options."""

    root: Path
    modality: str | None
    text_column: str | None
    label_column: str | None
    check_headers: bool
    group_column: str | None = None
    split_column: str | None = None  # --split-column: the table's split column, by name
    groups: dict[str, str] = field(default_factory=dict)  # sample id -> group (tables with group_column)
    files: list[FoundFile] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # -> Dataset.notes (logged as warnings too)

    def note(self, text: str) -> None:
        """Record a fact the user should know about how the data was read, and log it once as a warning."""
        self.notes.append(text)
        logging.getLogger("advisor.data.readers").warning("%s", text)

    def note_encodings(self) -> None:
        """A note for each table that was not UTF-8 and was decoded as Windows-1252."""
        for t in self.tables:
            if "1252" in t.encoding:
                self.note(f"{t.path}: not UTF-8; decoded as Windows-1252/Latin-1 ({t.encoding})")


Reader = Callable[[ReadRequest], Dataset]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: add a dataset reader (a layout) under `name`. A duplicate name raises ValueError."""

    def deco(fn: Reader) -> Reader:
        add_unique(READERS, name, fn, "dataset reader")
        return fn

    return deco


def get_reader(name: str) -> Reader:
    """The reader registered as `name`.

    Raises:
        DatasetError: no such reader (the message lists close names).
    """
    if name not in READERS:
        close = difflib.get_close_matches(name, list(READERS), n=3)
        hint = (
            f"did you mean {', '.join(close)}?" if close else f"known layouts: {', '.join(sorted(READERS))}"
        )
        raise DatasetError(f"unknown dataset layout {name!r}", hint=hint)
    return READERS[name]


def _split_of(stem: str) -> str | None:
    s = stem.lower()
    # a Hugging Face shard (train-00000-of-00002) is part of its split
    return SPLIT_ALIASES.get(s) or SPLIT_ALIASES.get(_SHARD_SUFFIX.sub("", s))


def row_id_prefix(table: Table, tables: list[Table]) -> str:
    """The id prefix of a table's rows when several tables are read: its split (``train:``), or its file stem
    where several files hold that split (Hugging Face shards ``train-00000-of-00002``), or its file name where
    stems repeat (``train.csv`` beside ``train.jsonl``), so ids stay unique."""
    split = _split_of(table.path.stem)
    if split and sum(_split_of(t.path.stem) == split for t in tables) == 1:
        return f"{split}:"
    stem = table.path.stem
    return f"{stem}:" if sum(t.path.stem == stem for t in tables) == 1 else f"{table.path.name}:"


def _group_column(table: Table, req: ReadRequest) -> str | None:
    """The table's group column when --group-column is given (it must exist)."""
    if req.group_column is None:
        return None
    return find_column(table.columns, req.group_column, (), "group", table.path, "--group-column")


def split_column(table: Table, req: ReadRequest, taken: tuple[str | None, ...]) -> str | None:
    """The table's split column: ``--split-column`` (which must exist), else ``split``, ``subset`` or
    ``fold_name``, else None.

    Without one, a column (other than those in `taken`: text, label, path, group) whose values are all split names
    (train / val / test and their aliases, at least two of them) gets a note saying it is not read as the split and
    how to have it honoured, so a split the user gave is never dropped without a word."""
    if req.split_column is not None:
        return find_column(table.columns, req.split_column, (), "split", table.path, "--split-column")
    col = find_column(table.columns, None, SPLIT_COLUMNS, "split", table.path, "")
    if col is not None:
        return col
    for c in table.columns:
        if c in taken:
            continue
        values = {(row.get(c) or "").strip().lower() for _, row in table.rows} - {""}
        if len(values) >= 2 and values <= set(SPLIT_ALIASES):
            req.note(
                f"{table.path}: column {c!r} holds only split names ({', '.join(sorted(values))}) but is not read "
                f"as the split; pass --split-column {c} (or rename it to 'split') to have train/val/test honoured"
            )
    return None


def row_split(row: Mapping[str, str | None], col: str | None, default: str | None) -> str | None:
    """A row's split from the split column (aliases normalised: ``validation`` -> ``val``), else `default`."""
    value = (row.get(col) or "").strip().lower() if col else ""
    return SPLIT_ALIASES.get(value, value) if value else default
