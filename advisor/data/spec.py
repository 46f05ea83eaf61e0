"""`DatasetSpec`: the dataset a command or API call works on, as one frozen value (path plus how to read it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.data.types import Dataset


# The keyword arguments of `advisor.data.load_dataset` that say how to read a dataset; a `DatasetSpec`, a run config
# and a candidate's work order all carry them under these names.
READER_OPTIONS = ("modality", "text_column", "label_column", "split", "group_column")


def reader_options(obj: Any) -> dict[str, Any]:
    """The `READER_OPTIONS` attributes of `obj` (a `DatasetSpec`, `RunConfig`, `CandidateSpec`) as keyword arguments."""
    return {k: getattr(obj, k) for k in READER_OPTIONS}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset is and how to read it; ``None`` means *detect from the data*.

    Attributes:
        path: a folder (class subfolders, split folders, masks) or a CSV/TSV/JSONL table or manifest.
        modality: ``image`` | ``text`` | ``audio``.
        task: ``classification`` | ``detection`` | ``segmentation`` (chosen by the run's task registry).
        text_column: text column of a table.
        label_column: label column of a table or manifest.
        group_column: table/manifest column with each sample's group (speaker, patient): group-aware folds.
        split: keep only this split (``train``, ``val``, ``test``).
    """

    path: Path
    modality: str | None = None
    task: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, data: str | Path | DatasetSpec, **options: Any) -> DatasetSpec:
        """`data` as a spec: a path gets `options` (field names above); a spec gets them as replacements.

        Raises:
            TypeError: an option that is not a field of `DatasetSpec`.
        """
        given = {k: v for k, v in options.items() if v is not None}
        if isinstance(data, DatasetSpec):
            return dataclasses.replace(data, **given) if given else data
        return cls(path=Path(data), **given)

    def reader_options(self) -> dict[str, Any]:
        """The keyword arguments of `advisor.data.load_dataset` this spec sets (``task`` is not a reader option)."""
        return reader_options(self)

    def load(self) -> Dataset:
        """Read the dataset (see `advisor.data.load_dataset`).

        Raises:
            DatasetError: the path cannot be read as given.
        """
        from advisor.data import load_dataset

        return load_dataset(self.path, **self.reader_options())
