"""Dataset profile: class counts, imbalance, media size/duration and text length stats, and the skip report."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from advisor.data.types import Dataset

MAX_LISTED_SKIPS = 100


def _stats(values: list[float], digits: int = 3) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    r = lambda x: round(float(x), digits)  # noqa: E731
    return {
        "min": r(a.min()),
        "mean": r(a.mean()),
        "median": r(np.median(a)),
        "p95": r(np.percentile(a, 95)),
        "max": r(a.max()),
    }


@dataclass
class DatasetProfile:
    """A summary of a loaded dataset. ``None`` means not applicable or unknown.

    Attributes:
        root, modality, layout, fingerprint: as in the Dataset.
        n_samples, n_classes: usable samples and classes.
        class_counts: samples per class (sorted like `classes`).
        split_counts: samples per split (empty when the dataset has none).
        split_class_counts: samples per class within each split.
        imbalance_ratio: largest / smallest class count (1.0 = balanced); None when unlabelled.
        singleton_classes: classes with one sample (kept, but a probe cannot cross-validate them).
        empty_classes: class folders with no valid file (not in `classes`).
        missing_in_split: per split, classes that have no sample in it.
        n_unlabelled: samples without a label.
        n_skipped, skipped_by_code: how many items were left out, by category.
        skipped: the first 100 skipped items (path, reason, code).
        image: width/height stats (px), modes and formats (None unless images with header info).
        text: length stats in characters and whitespace-separated words (text only).
        audio: duration stats (s), total hours, sample rates and channel counts (audio with header info).
        warnings: plain-language problems worth fixing.
    """

    root: str
    modality: str
    layout: str
    fingerprint: str
    n_samples: int
    n_classes: int
    class_counts: dict[str, int]
    split_counts: dict[str, int]
    split_class_counts: dict[str, dict[str, int]]
    imbalance_ratio: float | None
    singleton_classes: list[str]
    empty_classes: list[str]
    missing_in_split: dict[str, list[str]]
    n_unlabelled: int
    n_skipped: int
    skipped_by_code: dict[str, int]
    skipped: list[dict[str, str]]
    image: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def profile_dataset(dataset: Dataset) -> DatasetProfile:
    """Summarise a dataset (no decoding: uses the header info gathered at load time).

    Args:
        dataset: a loaded Dataset.

    Returns:
        A DatasetProfile (``to_dict()`` for JSON).
    """
    ds = dataset
    counts = Counter(s.label for s in ds.samples if s.label is not None)
    class_counts = {c: counts.get(c, 0) for c in ds.classes}
    nonzero = [n for n in class_counts.values() if n > 0]
    imbalance = round(max(nonzero) / min(nonzero), 3) if nonzero else None
    singletons = [c for c, n in class_counts.items() if n == 1]
    empty = sorted({s.path.rstrip("/").split("/")[-1] for s in ds.skipped if s.code == "empty-class"})
    split_counts: dict[str, int] = {}
    split_class: dict[str, dict[str, int]] = {}
    for sp in ds.splits:
        members = [s for s in ds.samples if s.split == sp]
        split_counts[sp] = len(members)
        c = Counter(s.label for s in members if s.label is not None)
        split_class[sp] = {k: c.get(k, 0) for k in ds.classes}
    missing = {sp: [k for k, n in cc.items() if n == 0] for sp, cc in split_class.items()}
    missing = {sp: v for sp, v in missing.items() if v}
    by_code = dict(Counter(s.code for s in ds.skipped).most_common())
    prof = DatasetProfile(
        root=str(ds.root),
        modality=ds.modality,
        layout=ds.layout,
        fingerprint=ds.fingerprint,
        n_samples=len(ds.samples),
        n_classes=len(ds.classes),
        class_counts=class_counts,
        split_counts=split_counts,
        split_class_counts=split_class,
        imbalance_ratio=imbalance,
        singleton_classes=singletons,
        empty_classes=empty,
        missing_in_split=missing,
        n_unlabelled=sum(1 for s in ds.samples if s.label is None),
        n_skipped=len(ds.skipped),
        skipped_by_code=by_code,
        skipped=[{"path": s.path, "reason": s.reason, "code": s.code} for s in ds.skipped[:MAX_LISTED_SKIPS]],
    )
    infos = [ds.media_info[s.id] for s in ds.samples if s.id in ds.media_info]
    if ds.modality == "image" and infos:
        prof.image = {
            "n_with_header": len(infos),
            "width_px": _stats([i["width"] for i in infos], 1),
            "height_px": _stats([i["height"] for i in infos], 1),
            "modes": dict(Counter(i["mode"] for i in infos).most_common()),
            "formats": dict(Counter(str(i["format"]) for i in infos).most_common()),
            "distinct_sizes": len({(i["width"], i["height"]) for i in infos}),
        }
    elif ds.modality == "audio" and infos:
        durations = [i["frames"] / i["sample_rate"] for i in infos]
        prof.audio = {
            "n_with_header": len(infos),
            "duration_s": _stats(durations),
            "total_hours": round(sum(durations) / 3600, 4),
            "sample_rates_hz": {str(k): v for k, v in Counter(i["sample_rate"] for i in infos).most_common()},
            "channels": {str(k): v for k, v in Counter(i["channels"] for i in infos).most_common()},
        }
    elif ds.modality == "text":
        texts = [s.text or "" for s in ds.samples]
        prof.text = {
            "chars": _stats([len(t) for t in texts], 1),
            "words": _stats([len(t.split()) for t in texts], 1),
            "n_duplicates": len(texts) - len(set(texts)),
        }
    prof.warnings = list(ds.notes) + _warnings(prof)
    return prof


def _warnings(p: DatasetProfile) -> list[str]:
    w = []
    if p.n_classes == 1:
        w.append("only one class: transferability scores and probes need at least two")
    if p.singleton_classes:
        w.append(
            f"{len(p.singleton_classes)} class(es) with a single sample ({', '.join(p.singleton_classes[:5])}): "
            "kept, but cross-validated probes cannot test them"
        )
    if p.empty_classes:
        w.append(f"{len(p.empty_classes)} empty class folder(s) ignored: {', '.join(p.empty_classes[:5])}")
    if p.imbalance_ratio is not None and p.imbalance_ratio >= 10:
        w.append(f"classes are imbalanced ({p.imbalance_ratio:g}x between largest and smallest)")
    for sp, names in p.missing_in_split.items():
        w.append(f"{len(names)} class(es) have no sample in the {sp!r} split: {', '.join(names[:5])}")
    if p.n_unlabelled and p.n_classes:
        w.append(f"{p.n_unlabelled} sample(s) have no label")
    if p.n_skipped:
        top = ", ".join(f"{n} {c}" for c, n in list(p.skipped_by_code.items())[:4])
        w.append(f"{p.n_skipped} item(s) skipped ({top})")
    if p.text and p.text.get("n_duplicates"):
        w.append(f"{p.text['n_duplicates']} duplicate text(s)")
    return w
