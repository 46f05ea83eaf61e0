"""`load_dataset`, which detects the modality and layout of a path, over the registry of dataset readers."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

# the reader modules register their layouts on import
from advisor.data import read_media, read_text  # noqa: F401
from advisor.data.read_media import (  # noqa: F401  (re-exported)
    _duplicate_row,
    _empty_class_dirs,
    _manifest_path_column,
    _media_dataset,
    _other_file_skip,
    _outside,
    _read_folder,
    read_flat,
    read_imagefolder,
    read_manifest,
    read_split_imagefolder,
)
from advisor.data.read_text import (  # noqa: F401  (re-exported)
    _read_text,
    read_split_tables,
    read_text_table,
    read_textfolder,
)
from advisor.data.request import (  # noqa: F401  (re-exported)
    EXPECTED_HINT,
    READERS,
    Reader,
    ReadRequest,
    _group_column,
    _split_of,
    get_reader,
    register_reader,
)
from advisor.data.scan import kind_from_ext, sniff_kind, sniff_unknown, walk_files
from advisor.data.tables import PATH_COLUMNS, TEXT_COLUMNS, Table, find_column, looks_like_paths, read_table
from advisor.data.types import MODALITIES, Dataset, SkippedItem
from advisor.errors import DatasetError

# ----------------------------------------------------------------------------------------------- public entry


def load_dataset(
    path: str | os.PathLike,
    *,
    modality: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    split: str | None = None,
    layout: str | None = None,
    check_headers: bool = True,
    group_column: str | None = None,
    split_column: str | None = None,
) -> Dataset:
    """Load a dataset from a folder or table file, detecting its modality and layout from the content.

    Layouts: ``imagefolder`` (class subfolders of images or audio), ``split-imagefolder`` (``train/``, ``val/``,
    ``test/`` each with class subfolders), ``flat`` (media files, unlabelled), ``manifest`` (CSV/JSONL with a
    path column, paths relative to the manifest, optional label/split columns), ``table`` (CSV/TSV/JSONL with a
    text column and optional label column) and ``split-table`` (a folder with ``train.csv``/``test.csv``...).
    Scanning reads file headers only (no pixel/sample decoding); broken, empty, unreadable or non-media files
    are listed in ``Dataset.skipped`` with a reason.

    Args:
        path: a folder, or a table/manifest file.
        modality: force ``"image"``, ``"text"`` or ``"audio"`` (default: detected).
        text_column: text column of a table (default: text, sentence, utterance, content, ...).
        label_column: label column (default: label, category, intent, class, target, ...).
        split: keep only this split (``train``, ``val``, ``test``; aliases like ``validation`` accepted).
        layout: force a layout by name (see above).
        group_column: a table/manifest column holding each row's group (speaker, patient, ...); stored in
            ``Sample.group`` so evaluation never puts one group on both sides of a split.
        split_column: the table/manifest column holding each row's split (default: ``split``, ``subset`` or
            ``fold_name``); it must exist.
        check_headers: open each media file's header (validates it and records sizes/durations). False
            only stats files (faster on slow disks; broken files then surface later as `SkipItem`).

    Returns:
        The Dataset, samples sorted by id.

    Raises:
        DatasetError: the path does not exist, is empty, holds nothing recognisable, or no usable samples.
    """
    if modality is not None and modality not in MODALITIES:
        raise DatasetError(f"unknown modality {modality!r}", hint=f"use one of: {', '.join(MODALITIES)}")
    root = Path(path).expanduser().absolute()
    if not root.exists():
        what = "is a broken symlink" if root.is_symlink() else "does not exist"
        raise DatasetError(f"dataset path {root} {what}", hint=EXPECTED_HINT)
    req = ReadRequest(
        root, modality, text_column, label_column, check_headers, group_column, split_column=split_column
    )
    if root.is_file():
        chosen = _detect_file(req)
    elif root.is_dir():
        chosen = _detect_dir(req)
    else:
        raise DatasetError(f"{root} is not a regular file or folder", hint=EXPECTED_HINT)
    if layout is not None:
        chosen = layout
    ds = get_reader(chosen)(req)
    if not ds.samples:
        raise _no_samples_error(root, ds.skipped)
    if split is not None:
        ds = ds.select_split(split)
    return ds


def _no_samples_error(root: Path, skipped: list[SkippedItem]) -> DatasetError:
    if not skipped:
        return DatasetError(f"{root} holds no usable samples", hint=EXPECTED_HINT)
    counts = Counter(s.code for s in skipped)
    summary = ", ".join(f"{n} {code}" for code, n in counts.most_common())
    first = skipped[0]
    return DatasetError(
        f"{root} holds no usable samples: {len(skipped)} skipped ({summary}); first: {first.path}: {first.reason}",
        hint="fix or remove the broken files; " + EXPECTED_HINT,
    )


# -------------------------------------------------------------------------------------------------- detection


def _classify_table(table: Table, req: ReadRequest) -> str | None:
    """``"manifest"`` (has a path column of media files), ``"text"`` (has a text column) or None."""
    cols = table.columns
    lower = {c.lower(): c for c in cols}
    values = lambda c: [r.get(c) or "" for _, r in table.rows[:50]]  # noqa: E731
    if req.modality != "text":
        for name in PATH_COLUMNS:
            if name in lower and looks_like_paths(values(lower[name])):
                return "manifest"
    if req.modality in (None, "text"):
        if req.text_column is not None:
            return (
                "text"
                if find_column(cols, req.text_column, (), "text", table.path, "--text-column")
                else None
            )
        if find_column(cols, None, TEXT_COLUMNS, "text", table.path, "--text-column"):
            return "text"
    return None


def _detect_file(req: ReadRequest) -> str:
    root = req.root
    kind = kind_from_ext(root)
    if kind is None:
        try:
            with open(root, "rb") as fh:
                kind = sniff_kind(fh.read(16))
        except OSError as e:
            raise DatasetError(
                f"cannot read {root}: {e.strerror or e}", hint="check the file's permissions"
            ) from None
    if kind in ("image", "audio"):
        raise DatasetError(
            f"{root} is a single {kind} file, not a dataset",
            hint="pass the folder that holds the class subfolders",
        )
    if kind != "table":
        raise DatasetError(f"{root} is not a dataset file (.csv, .tsv, .jsonl or .json)", hint=EXPECTED_HINT)
    table = read_table(root)
    req.tables = [table]
    what = _classify_table(table, req)
    if what == "manifest":
        return "manifest"
    if what == "text":
        return "table"
    raise DatasetError(
        f"{root}: no text column and no path column found (columns: {', '.join(table.columns) or 'none'})",
        hint="pass --text-column/--label-column, or add a 'path' column of media files for a manifest",
    )


def _detect_dir(req: ReadRequest) -> str:
    root = req.root
    files, walk_skipped = walk_files(root)
    req.skipped.extend(walk_skipped)
    if not files:
        if walk_skipped:
            raise _no_samples_error(root, walk_skipped)
        raise DatasetError(f"dataset folder {root} is empty", hint=EXPECTED_HINT)
    sniff_unknown(files)
    req.files = files

    top_tables = [f for f in files if f.kind == "table" and "/" not in f.rel]
    classified: dict[str, list[Table]] = {"manifest": [], "text": []}
    errors: list[DatasetError] = []
    for f in top_tables:
        if req.modality in ("image", "audio") and f.path.suffix.lower() == ".json":
            continue
        try:
            table = read_table(f.path)
        except DatasetError as e:
            if _split_of(f.path.stem):
                raise  # train.csv / test.csv are the data: say which one is broken
            errors.append(e)  # e.g. a categories.json list beside the data: not a table of samples
            continue
        what = _classify_table(table, req)
        if what:
            classified[what].append(table)

    media = Counter(f.kind for f in files if f.kind in ("image", "audio"))
    if req.modality != "text" and classified["manifest"]:
        req.tables = _pick_tables(classified["manifest"], root, "manifest")
        return "manifest"
    if req.modality in ("image", "audio"):
        if not media[req.modality]:
            raise DatasetError(f"{root} holds no {req.modality} files", hint=EXPECTED_HINT)
        return _folder_layout(req)
    if req.modality is None and media:
        req.modality = media.most_common(1)[0][0]
        return _folder_layout(req)
    if classified["text"]:
        req.tables = _pick_tables(classified["text"], root, "text")
        req.modality = "text"
        return "split-table" if len(req.tables) > 1 or _split_of(req.tables[0].path.stem) else "table"
    if errors and (req.modality == "text" or not media):
        raise errors[0]
    txt = [f for f in files if f.path.suffix.lower() == ".txt" and "/" in f.rel]
    if txt and req.modality in (None, "text"):
        req.modality = "text"
        return "textfolder"
    if req.modality == "text" and top_tables:
        names = ", ".join(f.rel for f in top_tables[:5])
        raise DatasetError(
            f"{root}: no table with a text column ({names})",
            hint="pass --text-column with the text column's name",
        )
    deep_tables = [f.rel for f in files if f.kind == "table" and "/" in f.rel]
    if deep_tables and not top_tables:  # the Hugging Face layout keeps its tables in data/
        folder = deep_tables[0].rsplit("/", 1)[0]
        raise DatasetError(
            f"{root}: tables only in subfolders ({', '.join(deep_tables[:3])})",
            hint=f"pass the folder that holds them, e.g. {root / folder}",
        )
    kinds = Counter(os.path.splitext(f.rel)[1].lower() or "(none)" for f in files)
    found = ", ".join(f"{n} {ext}" for ext, n in kinds.most_common(5))
    raise DatasetError(
        f"{root}: no images, audio or tables found ({len(files)} files: {found})", hint=EXPECTED_HINT
    )


def _pick_tables(tables: list[Table], root: Path, what: str) -> list[Table]:
    split_tables = [t for t in tables if _split_of(t.path.stem)]
    if split_tables:
        return split_tables
    if len(tables) == 1:
        return tables
    names = ", ".join(t.path.name for t in tables)
    raise DatasetError(
        f"{root}: several {what} tables and none is named train/val/test ({names})",
        hint="pass the path of one table file, or name them train.csv, val.csv, test.csv",
    )


def _folder_layout(req: ReadRequest) -> str:
    kind = req.modality
    deep = [f.rel.split("/") for f in req.files if f.kind == kind]
    tops = {p[0] for p in deep if len(p) > 1}
    if tops and all(_split_of(t) for t in tops):
        if any(len(p) > 2 for p in deep):
            return "split-imagefolder"
        return "flat"
    return "imagefolder" if tops else "flat"
