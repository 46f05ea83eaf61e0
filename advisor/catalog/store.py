"""Loading, filtering and searching the catalog shipped in `advisor.catalog_data` (the top-level catalog/ folder)."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from advisor.catalog.licenses import commercial_ok
from advisor.catalog.schema import CatalogEntry
from advisor.errors import CatalogEntryNotFound, CatalogError, UsageError, check_choice
from advisor.models.ids import ModelId

CATALOG_FILE = "catalog.jsonl"
LOCAL_ENV = "ADVISOR_CATALOG_EXTRA"  # optional path to a JSONL of the user's own entries (local: ids)

SORT_KEYS = (
    "id",
    "n_params",
    "gmacs",
    "top1",
    "mteb",
    "wer",
    "box_map",
    "mask_map",
    "miou",
    "file_mb",
    "year",
    "downloads",
    "likes",
)
# Keys whose larger values are better: by default they sort descending (best first); the rest ascending (ids A-Z,
# fewer parameters / GMACs / MB and a lower WER first).
HIGHER_FIRST = frozenset({"top1", "mteb", "box_map", "mask_map", "miou", "year", "downloads", "likes"})
# Published figures a filter or sort can name, all percent: top1 (ImageNet-1k), mteb (MTEB classification mean),
# wer (Open ASR short-form), box_map / mask_map (COCO AP@[.5:.95]), miou (semantic segmentation mean IoU).
METRIC_KEYS = ("top1", "mteb", "wer", "box_map", "mask_map", "miou")
_METRIC_OF = {"top1": "imagenet_top1", "mteb": "mteb_classification", "wer": "wer"}


def published_metric(e: CatalogEntry, key: str, modality: str | None = None) -> float | None:
    """The entry's published figure for one of METRIC_KEYS, or None.

    Under a listing by `modality`, the MTEB classification mean counts only for entries of that modality: it is
    the mean over the entry's own modality's tasks, so an image-text model's figure is an image one, unknown for
    text.
    """
    if key == "mteb" and modality is not None and e.modality != modality:
        return None
    v = getattr(e, _METRIC_OF.get(key, key))
    return None if v is None else float(v)


def _bare_name(model_id: str) -> str:
    """The name of an id without its source prefix (`ModelId.ref`), or the text itself when it does not parse."""
    try:
        return ModelId.parse(model_id).ref
    except UsageError:
        return model_id.strip()


def catalog_path() -> Path:
    """Path of the shipped catalog JSONL (inside the installed package, or the source checkout's catalog/)."""
    from advisor.catalog.files import data_file

    p = data_file(CATALOG_FILE)
    if p is not None:
        return p
    raise CatalogError(
        f"catalog data file {CATALOG_FILE} not found",
        hint="reinstall advisor, or run `advisor catalog build`",
    )


def read_jsonl(path: Path) -> list[CatalogEntry]:
    """Read and validate entries from a JSONL file (one entry per line).

    Raises:
        CatalogError: the file cannot be read, or a line is not JSON or not a valid entry; the message names the
            file, the line and the record's id.
    """
    entries = []
    hint = "fix or remove that line (one JSON object per line; see catalog/README.md for the fields)"
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CatalogError(f"{path}: cannot read the catalog file ({why})", hint="check the path") from None
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise CatalogError(f"{path}:{lineno}: not valid JSON ({e.msg})", hint=hint) from None
        if not isinstance(d, dict):
            raise CatalogError(
                f"{path}:{lineno}: a catalog record must be a JSON object, not {type(d).__name__}", hint=hint
            )
        try:
            entries.append(CatalogEntry.from_dict(d))
        except (CatalogError, UsageError, TypeError, ValueError, KeyError, AttributeError) as e:
            why = e.message if isinstance(e, (CatalogError, UsageError)) else f"{type(e).__name__}: {e}"
            raise CatalogError(
                f"{path}:{lineno}: invalid catalog record {str(d.get('id'))[:80]!r}: {why}"[:400], hint=hint
            ) from None
    return entries


@dataclass(frozen=True)
class Filters:
    """Catalog filters, as the CLI and the advisor use them. ``None`` means no constraint.

    `modality` keeps the entries that take that input (`CatalogEntry.takes`: their modality, or one of the
    modalities the source lists, so CLIP-like image-text models are listed under text too); `probeable` then means
    "advisor can extract features from it for data of that modality" (`CatalogEntry.probeable_for`), the rule
    candidate selection applies.
    """

    modality: str | None = None
    task: str | None = None
    source: str | None = None
    family: str | None = None
    max_params: float | None = None  # count
    max_gmacs: float | None = None
    license: str = "any"  # any | permissive | commercial
    probeable: bool | None = None
    pretrain: str | None = None
    min_metric: tuple[str, float] | None = None  # (one of METRIC_KEYS, lower bound); unknown values fail
    max_metric: tuple[str, float] | None = None  # (one of METRIC_KEYS, upper bound), e.g. ("wer", 10.0)

    def accepts(self, e: CatalogEntry) -> bool:
        if self.modality and not e.takes(self.modality):
            return False
        if self.task and e.task != self.task:
            return False
        if self.source and e.source != self.source:
            return False
        if self.family and e.family.lower() != self.family.lower():
            return False
        if self.max_params is not None and (e.n_params is None or e.n_params > self.max_params):
            return False
        if self.max_gmacs is not None and (e.gmacs is None or e.gmacs > self.max_gmacs):
            return False
        if self.license == "permissive" and e.license_class != "permissive":
            return False
        if self.license == "commercial" and not commercial_ok(e.license_class):
            return False
        if self.probeable is not None and e.probeable_for(self.modality) != self.probeable:
            return False
        if self.pretrain and (e.pretrain_data or "").lower() != self.pretrain.lower():
            return False
        for bound, sign in ((self.min_metric, 1), (self.max_metric, -1)):
            if bound is not None:
                v = published_metric(e, bound[0], self.modality)
                if v is None or sign * (v - bound[1]) < 0:
                    return False
        return True


class Catalog:
    """An immutable, id-indexed collection of catalog entries."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._by_id: dict[str, CatalogEntry] = {}
        for e in entries:
            if e.id in self._by_id:
                raise CatalogError(f"duplicate catalog id {e.id!r}")
            self._by_id[e.id] = e

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._by_id.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def ids(self) -> list[str]:
        return list(self._by_id)

    def get(self, model_id: str) -> CatalogEntry:
        """The entry for `model_id`; accepts a bare name when it is unambiguous. Raises CatalogEntryNotFound."""
        if model_id in self._by_id:
            return self._by_id[model_id]
        if ":" not in model_id:
            hits = [e for e in self._by_id.values() if e.name == model_id]
            if len(hits) == 1:
                return hits[0]
        src, _, name = model_id.partition(":")
        if src in ("timm", "torchvision") and name and "." not in name:  # an untagged id: its default tag
            tagged = [e for e in self._by_id.values() if e.source == src and e.architecture == name]
            default = [e for e in tagged if "default" in e.tags]
            if len(default) == 1:
                return default[0]
        raise CatalogEntryNotFound(f"no catalog entry {model_id!r}", hint=self._suggest(model_id))

    def _suggest(self, model_id: str) -> str:
        close = self.suggest(model_id)
        if close:
            return "did you mean " + ", ".join(close) + "?"
        return "list ids with `advisor catalog search TEXT`"

    def suggest(self, model_id: str, n: int = 5) -> list[str]:
        """Close ids for a miss (difflib on full ids and on names without the source prefix)."""
        ids = self.ids()
        close = difflib.get_close_matches(model_id, ids, n=n, cutoff=0.6)
        if len(close) < n:
            bare = _bare_name(model_id)
            names = {e.name: e.id for e in self}
            for name in difflib.get_close_matches(bare, list(names), n=n, cutoff=0.6):
                if names[name] not in close:
                    close.append(names[name])
        return close[:n]

    def filter(self, filters: Filters) -> list[CatalogEntry]:
        """Entries accepted by `filters`, in catalog order."""
        return [e for e in self if filters.accepts(e)]

    def search(self, text: str, limit: int | None = None) -> list[CatalogEntry]:
        """Entries whose id, family, architecture, task, pretraining data or tags match every word of `text`,
        best first (normalised, word-boundary ranking: `advisor.catalog.search.rank`)."""
        words = [w.lower() for w in text.split() if w]
        if not words:
            raise UsageError("empty search text", hint="e.g. `advisor catalog search convnext in22k`")
        from advisor.catalog.search import rank

        out = rank(self, text)
        return out[:limit] if limit else out


def sort_entries(
    entries: Sequence[CatalogEntry], key: str, descending: bool | None = None, modality: str | None = None
) -> list[CatalogEntry]:
    """Sort by one of SORT_KEYS; unknown values (None) always sort last (`published_metric` under `modality`;
    ``downloads`` (last 30 days) and ``likes`` from the community file, `advisor.catalog.community`).

    ``descending=None`` sorts best first: descending for the keys in `HIGHER_FIRST`, ascending for the others."""
    check_choice(key, SORT_KEYS, "sort key")
    if descending is None:
        descending = key in HIGHER_FIRST
    from advisor.catalog.community import COMMUNITY_KEYS, community_value, load_community

    records = load_community() if key in COMMUNITY_KEYS else {}

    def value(e: CatalogEntry):
        if key in COMMUNITY_KEYS:
            return community_value(e, key, records)
        return published_metric(e, key, modality) if key in METRIC_KEYS else getattr(e, key)

    known = [e for e in entries if value(e) is not None]
    unknown = [e for e in entries if value(e) is None]
    return sorted(known, key=value, reverse=descending) + unknown


@lru_cache(maxsize=4)
def _load(path: str, extra: str | None) -> Catalog:
    entries = read_jsonl(Path(path))
    if extra:
        p = Path(extra)
        if not p.is_file():
            raise CatalogError(
                f"{LOCAL_ENV}={extra} is not a file", hint="point it at a JSONL of catalog entries"
            )
        entries += read_jsonl(p)
    return Catalog(entries)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load (and cache) the catalog: the shipped file, plus the user's own entries from $ADVISOR_CATALOG_EXTRA."""
    return _load(str(path or catalog_path()), os.environ.get(LOCAL_ENV))
