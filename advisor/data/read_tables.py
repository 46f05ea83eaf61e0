"""Readers of table files: manifests of media paths, and text tables (one file, or one per split)."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

from advisor.data.read_media import _media_dataset
from advisor.data.request import ReadRequest, _group_column, _split_of, register_reader
from advisor.data.scan import FoundFile, kind_from_ext, sniff_kind
from advisor.data.tables import (
    LABEL_COLUMNS,
    PATH_COLUMNS,
    SPLIT_COLUMNS,
    TEXT_COLUMNS,
    Table,
    find_column,
    looks_like_paths,
    read_table,
)
from advisor.data.types import (
    SPLIT_ALIASES,
    Dataset,
    Sample,
    SkippedItem,
    compute_fingerprint,
    id_sort_key,
    sort_classes,
)
from advisor.errors import DatasetError


def _manifest_path_column(table: Table) -> str:
    lower = {c.lower(): c for c in table.columns}
    for name in PATH_COLUMNS:
        if name in lower and looks_like_paths([r.get(lower[name]) or "" for _, r in table.rows[:50]]):
            return lower[name]
    for name in PATH_COLUMNS:
        if name in lower:
            return lower[name]
    raise DatasetError(
        f"{table.path}: no path column (columns: {', '.join(table.columns)})",
        hint=f"a manifest needs a column named one of: {', '.join(PATH_COLUMNS[:5])}",
    )


@register_reader("manifest")
def read_manifest(req: ReadRequest) -> Dataset:
    """CSV/TSV/JSONL manifest(s) with a path column (relative to the manifest), optional label and split."""
    if not req.tables:
        req.tables = [read_table(req.root)]
    req.note_encodings()
    multi = len(req.tables) > 1
    order = {"train": 0, "val": 1, "test": 2}  # a file listed in two splits is kept in the first of these
    req.tables.sort(key=lambda t: (order.get(_split_of(t.path.stem) or "", 3), t.path.name))
    cands = []
    extra: dict[str, str] = {}
    kinds: Counter = Counter()
    seen: dict[tuple[int, int], tuple[str, int, str | None]] = {}  # file (dev, inode) -> first row listing it
    outside: list[str] = []
    for table in req.tables:
        req.skipped.extend(table.skipped)
        path_col = _manifest_path_column(table)
        label_col = find_column(
            table.columns, req.label_column, LABEL_COLUMNS, "label", table.path, "--label-column"
        )
        split_col = find_column(table.columns, None, SPLIT_COLUMNS, "split", table.path, "")
        group_col = _group_column(table, req)
        file_split = _split_of(table.path.stem) if multi else None
        base_dir = table.path.parent
        for n, row in table.rows:
            where = f"{table.path}:row {n}"
            raw = (row.get(path_col) or "").strip()
            if not raw:
                req.skipped.append(SkippedItem(where, f"empty {path_col!r} value", "bad-row"))
                continue
            p = Path(raw).expanduser()
            p = p if p.is_absolute() else base_dir / p
            if _outside(raw, p, base_dir):
                outside.append(f"{table.path.name} row {n}: {raw!r}")
            try:
                st = p.stat()
            except OSError:
                req.skipped.append(
                    SkippedItem(
                        str(p), f"listed in {table.path.name} (row {n}) but not found", "missing-file"
                    )
                )
                continue
            if not p.is_file():
                req.skipped.append(SkippedItem(str(p), "not a regular file", "not-regular-file"))
                continue
            label = (row.get(label_col) or "").strip() if label_col else None
            if label_col and not label:
                req.skipped.append(SkippedItem(where, f"empty {label_col!r} value", "missing-label"))
                continue
            split = file_split
            split_value = (row.get(split_col) or "").strip().lower() if split_col else ""
            if split_value:
                split = SPLIT_ALIASES.get(split_value, split_value)
            dup = _duplicate_row(seen, (st.st_dev, st.st_ino), table.path.name, n, label)
            if dup is not None:
                req.skipped.append(SkippedItem(where, f"{raw!r} {dup}", "duplicate"))
                continue
            kind = kind_from_ext(p)
            if kind not in ("image", "audio") and st.st_size:
                try:
                    with open(p, "rb") as fh:
                        kind = sniff_kind(fh.read(16))
                except OSError:
                    kind = None
            sid = (
                f"{file_split}:row:{n}"
                if multi and file_split
                else (f"{table.path.stem}:row:{n}" if multi else f"row:{n}")
            )
            f = FoundFile(raw, p, st.st_size, st.st_mtime_ns, kind)
            kinds[kind] += 1
            cands.append((sid, label or None, split, f))
            extra[sid] = raw
            group = (row.get(group_col) or "").strip() if group_col else ""
            if group:
                req.groups[sid] = group
    if outside:
        req.note(
            f"{len(outside)} manifest path(s) point outside the manifest's folder (absolute, ~ or ..): "
            f"{'; '.join(outside[:3])}{'; ...' if len(outside) > 3 else ''}; they are read as listed: "
            "check that the manifest comes from a source you trust"
        )
    if req.modality is None:
        media = Counter({k: v for k, v in kinds.items() if k in ("image", "audio")})
        req.modality = media.most_common(1)[0][0] if media else "image"
    kind = req.modality
    keep = []
    for c in cands:
        f = c[3]
        if f.kind is not None and f.kind != kind and f.size:
            req.skipped.append(
                SkippedItem(str(f.path), f"{f.kind} file in a {kind} dataset", "other-modality")
            )
        else:
            keep.append(c)
    return _media_dataset(req, "manifest", keep, fp_extra=extra)


def _outside(raw: str, path: Path, base_dir: Path) -> bool:
    """True when a manifest entry leaves the manifest's folder: absolute, ``~``, or ``..`` climbing out."""
    if raw.startswith("~") or Path(raw).is_absolute():
        return True
    return not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(base_dir))


def _duplicate_row(
    seen: dict[tuple[int, int], tuple[str, int, str | None]],
    key: tuple[int, int],
    table: str,
    n: int,
    label: str | None,
) -> str | None:
    """Why this row repeats an earlier one (the same file, by device and inode: ``a.png``, ``./a.png`` and a
    link to it are one file), or None for the first row listing the file, which is remembered."""
    if key not in seen:
        seen[key] = (table, n, label)
        return None
    t0, n0, label0 = seen[key]
    first = f"row {n0}" if t0 == table else f"{t0} row {n0}"
    if label0 != label:
        return (
            f"is the file of {first} with another label ({label0!r}, here {label!r}); only the first is kept"
        )
    return f"repeats {first} (the same file); counted once"


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
    req.tables.sort(key=lambda t: id_sort_key(_split_of(t.path.stem) or t.path.stem) if multi else 0)
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
        split = _split_of(table.path.stem) if multi else None
        prefix = f"{split or table.path.stem}:" if multi else ""
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
