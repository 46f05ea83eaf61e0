"""Readers of media folders: class subfolders (optionally per split), flat folders, and class folders of text files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from advisor.data.request import ReadRequest, _split_of, register_reader
from advisor.data.scan import FoundFile, _utf8_name, check_headers, is_doc_file
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
