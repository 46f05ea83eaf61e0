"""Dataset readers (a registry of layouts) and `load_dataset`, which detects the modality and layout of a path."""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from advisor.data.scan import (
    FoundFile,
    _utf8_name,
    check_headers,
    is_doc_file,
    kind_from_ext,
    sniff_kind,
    sniff_unknown,
    walk_files,
)
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
    MODALITIES,
    SPLIT_ALIASES,
    Dataset,
    Sample,
    SkippedItem,
    compute_fingerprint,
    id_sort_key,
    sort_classes,
)
from advisor.errors import DatasetError

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
    groups: dict[str, str] = field(default_factory=dict)  # sample id -> group (tables with group_column)
    files: list[FoundFile] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # -> Dataset.notes (logged as warnings too)

    def note(self, text: str) -> None:
        """Record a fact the user should know about how the data was read, and log it once as a warning."""
        self.notes.append(text)
        logging.getLogger(__name__).warning("%s", text)

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
        if name in READERS:
            raise ValueError(f"dataset reader {name!r} is already registered")
        READERS[name] = fn
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
    req = ReadRequest(root, modality, text_column, label_column, check_headers, group_column)
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


def _split_of(stem: str) -> str | None:
    return SPLIT_ALIASES.get(stem.lower())


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


# ---------------------------------------------------------------------------------------------------- readers


def _group_column(table: Table, req: ReadRequest) -> str | None:
    """The table's group column when --group-column is given (it must exist)."""
    if req.group_column is None:
        return None
    return find_column(table.columns, req.group_column, (), "group", table.path, "--group-column")


def _media_dataset(
    req: ReadRequest,
    layout: str,
    candidates: Sequence[tuple[str, str | None, str | None, FoundFile]],
    fp_extra: dict[str, str] | None = None,
) -> Dataset:
    """Header-check candidate (id, label, split, FoundFile) media items and build the Dataset."""
    kind = req.modality
    assert kind is not None, "the layout detection sets the modality before a media reader runs"
    skipped = req.skipped
    ok: list[tuple[str, str | None, str | None, FoundFile]] = []
    for sid, label, split, f in candidates:
        if f.size == 0:
            skipped.append(SkippedItem(str(f.path), "zero-byte file", "zero-byte"))
        else:
            ok.append((sid, label, split, f))
    info: dict[str, dict] = {}
    bad: set[str] = set()
    if req.check_headers:
        for sid, meta, skip in check_headers([(c[0], c[3].path) for c in ok], kind):
            if skip is not None:
                skipped.append(skip)
                bad.add(sid)
            elif meta is not None:
                info[sid] = meta
    samples = [
        Sample(sid, label, f.path, None, split, req.groups.get(sid))
        for sid, label, split, f in ok
        if sid not in bad
    ]
    samples.sort(key=lambda s: id_sort_key(s.id))
    fmap = {c[0]: c[3] for c in ok}
    fp_extra = fp_extra or {}
    records = [
        (s.id, s.label, s.split, fmap[s.id].size, fmap[s.id].mtime_ns, fp_extra.get(s.id, ""))
        for s in samples
    ]
    # classes come from the labelled samples (a manifest may also hold unlabelled rows: label index -1)
    classes = sort_classes(s.label for s in samples if s.label is not None)
    return Dataset(
        root=req.root,
        modality=kind,
        samples=samples,
        classes=classes,
        skipped=skipped,
        fingerprint=compute_fingerprint(kind, layout, records),
        layout=layout,
        media_info=info,
        source=[t.path for t in req.tables],
        notes=req.notes,
    )


def _other_file_skip(f: FoundFile, kind: str, toplevel: bool) -> SkippedItem | None:
    if toplevel and (f.kind == "table" or is_doc_file(f.path.name)):
        return None  # README/LICENSE/tables beside the data are not data
    if f.kind == kind:
        return None  # the caller knows why a file of the right kind is out of place
    if f.kind in ("image", "audio"):
        return SkippedItem(str(f.path), f"{f.kind} file in a {kind} dataset", "other-modality")
    if f.size == 0:
        return SkippedItem(str(f.path), "zero-byte file", "zero-byte")
    return SkippedItem(str(f.path), f"not an {kind} file", "not-media")


def _empty_class_dirs(base: Path, populated: set[str], already: set[str]) -> list[SkippedItem]:
    out: list[SkippedItem] = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        if e.name.startswith(".") or e.name.lower() in ("__macosx", "__pycache__") or not _utf8_name(e.name):
            continue  # hidden, or already reported by the walk
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir and e.name not in populated and e.path not in already:
            out.append(SkippedItem(e.path, "empty class folder: no valid files in it", "empty-class"))
    return out


@register_reader("imagefolder")
def read_imagefolder(req: ReadRequest) -> Dataset:
    """Class-per-subfolder layout (torchvision ImageFolder style) of images or audio; label = first folder."""
    return _read_folder(req, split_layout=False)


@register_reader("split-imagefolder")
def read_split_imagefolder(req: ReadRequest) -> Dataset:
    """``train/``, ``val/`` (``valid``, ``validation``, ``dev``), ``test/`` folders, each with class subfolders."""
    return _read_folder(req, split_layout=True)


@register_reader("flat")
def read_flat(req: ReadRequest) -> Dataset:
    """A flat folder of media files (or flat train/ val/ folders): unlabelled samples."""
    kind = req.modality or "image"
    req.modality = kind
    cands = []
    for f in req.files:
        parts = f.rel.split("/")
        if f.kind == kind and (len(parts) == 1 or (len(parts) == 2 and _split_of(parts[0]))):
            split = SPLIT_ALIASES.get(parts[0].lower()) if len(parts) == 2 else None
            cands.append((f.rel, None, split, f))
        else:
            skip = _other_file_skip(f, kind, len(parts) == 1)
            if skip is None and f.kind == kind:
                skip = SkippedItem(str(f.path), "file in a nested folder of a flat dataset", "misplaced")
            if skip:
                req.skipped.append(skip)
    return _media_dataset(req, "flat", cands)


def _read_folder(req: ReadRequest, split_layout: bool) -> Dataset:
    kind = req.modality or "image"
    req.modality = kind
    layout = "split-imagefolder" if split_layout else "imagefolder"
    cands = []
    populated: dict[str, set[str]] = {}  # base folder -> class names with at least one candidate
    for f in req.files:
        parts = f.rel.split("/")
        split = None
        if split_layout and len(parts) > 1 and _split_of(parts[0]):
            split = _split_of(parts[0])
            base, rest = parts[0], parts[1:]
        else:
            base, rest = "", parts
        if f.kind != kind or len(rest) < 2:
            skip = _other_file_skip(f, kind, len(parts) == 1)
            if skip is None and f.kind == kind:
                skip = SkippedItem(str(f.path), "not inside a class folder (label unknown)", "misplaced")
            if skip is not None:
                req.skipped.append(skip)
            continue
        cands.append((f.rel, rest[0], split, f))
    ds = _media_dataset(req, layout, cands)
    for s in ds.samples:
        parts = s.id.split("/")
        base = parts[0] if split_layout and s.split else ""
        populated.setdefault(base, set()).add(parts[1] if base else parts[0])
    bases = [""]
    if split_layout:
        bases = sorted(
            {f.rel.split("/")[0] for f in req.files if "/" in f.rel and _split_of(f.rel.split("/")[0])}
        )
    for base in bases:
        already = {s.path for s in ds.skipped}
        ds.skipped.extend(
            _empty_class_dirs(req.root / base if base else req.root, populated.get(base, set()), already)
        )
    return ds


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
