"""`DatasetSpec`: the dataset a command or API call works on, as one frozen value (path plus how to read it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.data.types import Dataset


@dataclass(frozen=True, kw_only=True)
class ReaderOptions:
    """How to read a dataset: the keyword arguments of `advisor.data.load_dataset` that say so; ``None`` means
    *detect from the data*. A `DatasetSpec` and a candidate's work order (`CandidateSpec`) carry them as these
    fields, a run config under the same names.

    Attributes:
        modality: ``image`` | ``text`` | ``audio``.
        text_column: text column of a table.
        label_column: label column of a table or manifest.
        split: keep only this split (``train``, ``val``, ``test``).
        split_column: table/manifest column holding each row's split (default: split, subset, fold_name).
        group_column: table/manifest column with each sample's group (speaker, patient): group-aware folds.
    """

    modality: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    split: str | None = None
    group_column: str | None = None
    split_column: str | None = None

    def reader_options(self) -> dict[str, Any]:
        """The keyword arguments of `advisor.data.load_dataset` these options set."""
        return reader_options(self)


READER_OPTIONS = tuple(f.name for f in dataclasses.fields(ReaderOptions))


def reader_options(obj: Any) -> dict[str, Any]:
    """The `READER_OPTIONS` attributes of `obj` (a `DatasetSpec`, `RunConfig`, `CandidateSpec`) as keyword arguments."""
    return {k: getattr(obj, k) for k in READER_OPTIONS}


@dataclass(frozen=True)
class DatasetSpec(ReaderOptions):
    """Where a dataset is and how to read it (the `ReaderOptions`, keyword-only); ``None`` means *detect from the
    data*.

    Attributes:
        path: a folder (class subfolders, split folders, masks) or a CSV/TSV/JSONL table or manifest.
        task: ``classification`` | ``detection`` | ``segmentation`` (chosen by the run's task registry).
    """

    path: Path
    task: str | None = None

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

    def load(self) -> Dataset:
        """Read the dataset (see `advisor.data.load_dataset`).

        Raises:
            DatasetError: the path cannot be read as given.
        """
        from advisor.data import load_dataset

        return load_dataset(self.path, **self.reader_options())
