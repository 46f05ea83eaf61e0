"""The typed results of a dense recommend run (`DenseResults`), with one (de)serialisation point.

Every figure sits on the rung of the ranking ladder that measured it (``latency``: measured here at the working
size, pre/post-processing included; ``zero-shot``: the real metric on the labelled sample for the classes the
label sets share; ``proxy``: a frozen-feature probe, labelled as a proxy), so a report never mixes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from advisor.io import known_fields

DENSE_SCHEMA = "advisor.dense-results/1"


class Role:
    """The role of a row: what it is in the ladder (the strings stored in results)."""

    ZERO_SHOT = "zero-shot"  # a pretrained detector/segmenter whose label set overlaps the data's classes
    BACKBONE = "backbone"  # a pretrained image backbone ranked by the frozen-feature proxy
    TWIN = "random-init twin"  # the same backbone with random weights (a floor)
    FLOOR = "raw-pixel floor"  # no model at all (a floor)
    ARCH = "architecture"  # a detector/segmenter architecture timed at the working size (weights not used)
    NOT_RUN = "not run"  # named or found but refused (licence, other task, not loadable): its error says why


RUNGS: dict[str, str] = {
    "latency": "latency and memory measured on this machine at the data's working size, per image, "
    "pre/post-processing and NMS included",
    "zero-shot": "the real metric (COCO box mAP; COCO mask mAP, box mAP beside it; confusion-matrix mIoU) of a "
    "pretrained model on the labelled sample, for the classes both label sets share",
    "proxy": "a frozen-feature proxy: a linear probe on ground-truth box crops (detection) or on sampled "
    "pixels of multi-stride features (segmentation), cross-validated with images kept whole; a proxy, not "
    "the task metric",
}
# the rung ``--finetune-top`` adds (reports list it when a row carries a fine-tune)
FINETUNE_RUNG = (
    "a short fine-tune (a new head on the frozen backbone, or the model's own class layers with its backbone "
    "frozen) on the sample's training images: the real metric on its held-out images, with a 95% image-bootstrap "
    "interval; the confirmation of the rungs above"
)


def _figure(rung: dict[str, Any] | None, key: str = "value") -> float | None:
    """The figure `key` of a rung's record, None when the rung did not run or has no figure."""
    v = (rung or {}).get(key)
    return None if v is None else float(v)


@dataclass
class DenseCandidate:
    """One row of a dense run: a model (or floor), its role, and the figures each rung measured for it."""

    model_id: str
    role: str
    label_set: str | None = None
    license: str | None = None
    pretrained: bool = True
    input_size: list[int] | None = None
    n_params: int | None = None
    latency: dict[str, Any] | None = None
    zero_shot: dict[str, Any] | None = None
    proxy: dict[str, Any] | None = None
    finetune: dict[str, Any] | None = None  # --finetune-top: the held-out metric of a short fine-tune
    rank: int | None = None
    tied_with_best: bool = False
    error: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def proxy_value(self) -> float | None:
        """The proxy's headline value (probe accuracy or pixel-probe mIoU), None when not measured."""
        return _figure(self.proxy)

    @property
    def zero_shot_value(self) -> float | None:
        """The zero-shot headline (mAP, or mIoU), None when not measured."""
        return _figure(self.zero_shot)

    @property
    def finetune_value(self) -> float | None:
        """The held-out metric of the ``--finetune-top`` fine-tune, None when not run or without a figure."""
        return _figure(self.finetune)

    @property
    def latency_ms(self) -> float | None:
        """Median latency per image (ms), None when not measured."""
        return _figure(self.latency, "p50_ms")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenseCandidate:
        """Inverse of `to_dict` (unknown keys ignored, so newer files still load)."""
        return cls(**known_fields(cls, d))


@dataclass
class DenseResults:
    """A dense recommend run: the data, the candidates by rung, the verdict, and how it was obtained."""

    task: str
    dataset: dict[str, Any]
    config: dict[str, Any]
    candidates: list[DenseCandidate]
    verdict: dict[str, Any]
    rungs: dict[str, str] = field(default_factory=lambda: dict(RUNGS))
    notes: list[str] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    schema: str = DENSE_SCHEMA
    run_dir: str | None = None

    def by_role(self, *roles: str) -> list[DenseCandidate]:
        """The rows of the given roles, in stored order."""
        return [c for c in self.candidates if c.role in roles]

    @property
    def proxy_ranked(self) -> list[DenseCandidate]:
        """Backbones, twins and floors with a proxy figure, best first."""
        rows = [c for c in self.candidates if c.proxy_value is not None]
        return sorted(rows, key=lambda c: -(c.proxy_value or 0.0))

    @property
    def zero_shot_ranked(self) -> list[DenseCandidate]:
        """Zero-shot models with a metric, best first."""
        rows = [c for c in self.candidates if c.zero_shot_value is not None]
        return sorted(rows, key=lambda c: -(c.zero_shot_value or 0.0))

    def to_dataframe(self) -> Any:
        """One row per candidate as a pandas DataFrame: the columns of results.csv, values unformatted."""
        from advisor.report.rows import dense_rows, to_dataframe

        return to_dataframe(*dense_rows(self))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what results.json holds)."""
        d = asdict(self)
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenseResults:
        """Inverse of `to_dict`."""
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known and k != "candidates"}
        return cls(candidates=[DenseCandidate.from_dict(c) for c in d.get("candidates", [])], **kw)
