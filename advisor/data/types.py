"""Dataset records: Sample, SkippedItem, Dataset, the SkipItem exception, and the dataset fingerprint."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from advisor.errors import DatasetError

Modality = Literal["image", "text", "audio"]
MODALITIES: tuple[str, ...] = ("image", "text", "audio")

# Split folder / file names and the canonical split they mean.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "eval": "test",
}


@dataclass(frozen=True)
class Sample:
    """One item of a dataset.

    Attributes:
        id: stable id; the POSIX path relative to the dataset root for files (``"cat/001.jpg"``),
            ``"row:<n>"`` for table/manifest rows (``"<split>:row:<n>"`` when several split files are read).
        label: class name, or None for unlabelled data.
        path: the media file (image/audio), absolute; None for text rows.
        text: the text of a text sample; None for media.
        split: ``"train"``/``"val"``/``"test"`` when the dataset provides splits, else None.
        group: the sample's group from a table's group column (``group_column``), else None.
    """

    id: str
    label: str | None
    path: Path | None
    text: str | None
    split: str | None = None
    group: str | None = None  # e.g. the speaker or patient (from --group-column); folds never split a group


@dataclass(frozen=True)
class SkippedItem:
    """A file, row or folder left out of a dataset, and why.

    Attributes:
        path: the file/folder (or ``"<file>:row <n>"`` for a table row).
        reason: a human-readable reason that says what is wrong.
        code: a short machine-readable category (``zero-byte``, ``corrupt``, ``not-media``, ``too-large``,
            ``unreadable``, ``symlink-loop``, ``empty-class``, ``bad-encoding``, ``empty-text``, ``missing-label``,
            ``missing-file``, ``zero-length-audio``, ``silent-audio``, ``not-regular-file``, ``misplaced``,
            ``other-modality``, ``bad-row``, ``bad-filename``, ``duplicate``).
    """

    path: str
    reason: str
    code: str = "other"


class SkipItem(DatasetError):
    """One item cannot be used (found when it is decoded, e.g. by `load_image`/`load_audio`).

    The feature-extraction engine catches it, counts it and moves on; it never aborts a run. It subclasses
    `DatasetError`, so if it ever escapes to the CLI it still prints as one line.

    Attributes:
        path: the offending file.
        reason: what is wrong with it.
        code: a short category, as in `SkippedItem.code`.
    """

    def __init__(self, path: str | Path, reason: str, code: str = "corrupt") -> None:
        super().__init__(
            f"{path}: {reason}", hint="the item is skipped; fix or remove the file to include it"
        )
        self.path = str(path)
        self.reason = reason
        self.code = code

    def __reduce__(self):  # picklable across worker processes (DataLoader, multiprocessing pools)
        return (type(self), (self.path, self.reason, self.code))

    def to_skipped(self) -> SkippedItem:
        """This error as a `SkippedItem` record (for skip reports)."""
        return SkippedItem(self.path, self.reason, self.code)


def id_sort_key(sample_id: str) -> tuple:
    """Natural sort key for sample ids: ``row:2`` before ``row:10``, ``img9.png`` before ``img10.png``."""
    parts = re.split(r"(\d+)", sample_id)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def sort_classes(labels: Iterable[str]) -> list[str]:
    """Sorted unique class names: numerically when every name is an integer ("2" < "10"), else lexically."""
    uniq = set(labels)
    try:
        return sorted(uniq, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(uniq)


@dataclass
class Dataset:
    """A loaded dataset: its samples (sorted by id), classes, what was skipped and a content fingerprint.

    Attributes:
        root: the path the dataset was loaded from (a folder, or a table/manifest file).
        modality: ``"image"``, ``"text"`` or ``"audio"``.
        samples: the usable samples, sorted by id.
        classes: sorted class names; a label's index is ``classes.index(label)``. Empty when unlabelled.
        skipped: files/rows/folders left out, each with a reason.
        fingerprint: content hash over (id, label, split, size, mtime_ns) of files, or (id, label, split,
            text hash) of rows; stable across runs, cheap (no file contents are read).
        layout: how it was read: ``imagefolder``, ``split-imagefolder``, ``flat``, ``manifest``, ``table``,
            ``split-table``.
        media_info: per sample id, what the header scan found (images: width, height, mode, format;
            audio: sample_rate, frames, channels). Empty when headers were not checked.
        source: the table/manifest files read, if any.
        notes: plain-language facts about how the data was read that a user should know although nothing
            was left out (a table decoded as Windows-1252, manifest paths outside the manifest's folder).
    """

    root: Path
    modality: str
    samples: list[Sample]
    classes: list[str]
    skipped: list[SkippedItem]
    fingerprint: str
    layout: str
    media_info: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    source: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:  # the default would print every sample
        return (
            f"Dataset(root={str(self.root)!r}, modality={self.modality!r}, layout={self.layout!r}, "
            f"samples={len(self.samples)}, classes={len(self.classes)}, skipped={len(self.skipped)}, "
            f"fingerprint={self.fingerprint!r})"
        )

    @property
    def splits(self) -> list[str]:
        """The splits present (``train``, ``val``, ``test`` order), empty when the dataset has none."""
        present = {s.split for s in self.samples if s.split is not None}
        order = ["train", "val", "test"]
        return [s for s in order if s in present] + sorted(present - set(order))

    @property
    def labelled(self) -> bool:
        """True when every sample has a label."""
        return bool(self.samples) and all(s.label is not None for s in self.samples)

    def labels_array(self, samples: Sequence[Sample] | None = None) -> np.ndarray:
        """Label indices (int64) into `classes` for `samples` (default: all); -1 for unlabelled samples.

        Raises:
            DatasetError: a sample's label is not one of `classes`.
        """
        index = {c: i for i, c in enumerate(self.classes)}
        out = np.empty(len(samples if samples is not None else self.samples), dtype=np.int64)
        for i, s in enumerate(samples if samples is not None else self.samples):
            if s.label is None:
                out[i] = -1
            elif s.label in index:
                out[i] = index[s.label]
            else:
                raise DatasetError(
                    f"sample {s.id!r} has label {s.label!r}, which is not a class of {self.root}",
                    hint="pass samples that come from this dataset",
                )
        return out

    def select_split(self, split: str) -> Dataset:
        """A new Dataset holding only the samples of `split` (same classes and skip list).

        Raises:
            DatasetError: the split is not present.
        """
        split = SPLIT_ALIASES.get(split.lower(), split.lower())
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DatasetError(
                f"{self.root} has no {split!r} split (splits found: {have})",
                hint="drop --split, or organise the data as train/ and val/ (or train.csv and test.csv)",
            )
        keep = [s for s in self.samples if s.split == split]
        keep_ids = {s.id for s in keep}
        info = {k: v for k, v in self.media_info.items() if k in keep_ids}
        fp = _hash_json([self.fingerprint, "split", split])
        return Dataset(
            self.root,
            self.modality,
            keep,
            list(self.classes),
            list(self.skipped),
            fp,
            self.layout,
            info,
            self.source,
            list(self.notes),
        )


def _hash_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )
    return hashlib.sha256(blob).hexdigest()[:32]


def compute_fingerprint(modality: str, layout: str, records: Iterable[tuple[Any, ...]]) -> str:
    """Content hash of a dataset from per-sample records ``(id, label, split, ...)``, sorted by id.

    For files the rest is (size in bytes, mtime in ns[, manifest path]); for text rows, the sha1 of the text.
    Reading file contents is deliberately avoided: this must stay cheap on 100k-file folders.
    """
    h = hashlib.sha256()
    h.update(f"advisor-dataset-v1|{modality}|{layout}\n".encode())
    # One line per record, fields joined by control characters that do not occur in file names, labels or
    # hex digests (None -> NUL); cheaper than JSON on 100k-row tables.
    lines = sorted(
        ("\x1f".join("\x00" if v is None else str(v) for v in rec) for rec in records),
        key=lambda line: line.split("\x1f", 1)[0],
    )
    h.update("\x1e".join(lines).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]
