"""Readers of media datasets: class subfolders (optionally per split), flat folders, and manifests of paths."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from advisor.data.request import (
    ReadRequest,
    _group_column,
    _split_of,
    register_reader,
    row_id_prefix,
    row_split,
    split_column,
)
from advisor.data.scan import FoundFile, check_headers, is_doc_file, kind_from_ext, sniff_kind
from advisor.data.tables import (
    LABEL_COLUMNS,
    PATH_COLUMNS,
    Table,
    find_column,
    is_utf8,
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
        if e.name.startswith(".") or e.name.lower() in ("__macosx", "__pycache__") or not is_utf8(e.name):
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
        group_col = _group_column(table, req)
        split_col = split_column(table, req, (path_col, label_col, group_col))
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
            split = row_split(row, split_col, file_split)
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
            sid = f"{row_id_prefix(table, req.tables) if multi else ''}row:{n}"
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
