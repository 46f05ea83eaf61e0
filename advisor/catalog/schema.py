"""The catalog record: one frozen, validated entry per set of pretrained weights."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from advisor.errors import CatalogError
from advisor.io import check_fields
from advisor.models.ids import ModelId

Modality = Literal["image", "text", "audio", "multimodal", "video"]
Source = Literal["timm", "torchvision", "hf", "pkg", "smp", "local"]
LicenseClass = Literal["permissive", "copyleft", "non-commercial", "unknown"]

MODALITIES: tuple[str, ...] = ("image", "text", "audio", "multimodal", "video")
# The input modalities a source can list for one set of weights (CatalogEntry.modalities).
INPUT_MODALITIES: tuple[str, ...] = tuple(m for m in MODALITIES if m != "multimodal")
# smp: segmentation_models_pytorch architectures under the ids advisor.dense takes (``smp:<Arch>-<encoder>``)
SOURCES: tuple[str, ...] = ("timm", "torchvision", "hf", "pkg", "smp", "local")
LICENSE_CLASSES: tuple[str, ...] = ("permissive", "copyleft", "non-commercial", "unknown")
TASKS: tuple[str, ...] = (
    "image-classification",  # a classifier whose pooled features serve as a backbone
    "image-feature-extraction",  # a backbone with no classifier head (self-supervised, CLIP towers, ...)
    "object-detection",
    "instance-segmentation",
    "semantic-segmentation",
    "keypoint-detection",
    "video-classification",
    "optical-flow",
    "text-encoder",  # masked-LM / sentence encoders
    "text-generation",
    "speech-encoder",
    "speech-recognition",
    "audio-classification",
    "audio-feature-extraction",
    "zero-shot-image-classification",
)
# Tasks whose entries can serve as a frozen feature extractor for classification-style transfer.
PROBEABLE_TASKS = frozenset(
    {
        "image-classification",
        "image-feature-extraction",
        "text-encoder",
        "speech-encoder",
        "audio-classification",
        "audio-feature-extraction",
        "zero-shot-image-classification",
        "text-generation",
    }
)

# The fields that describe a detector's or segmenter's outputs (`CatalogEntry.label_set` ...), in schema order.
DENSE_FIELDS: tuple[str, ...] = ("label_set", "n_labels", "working_size", "postprocess", "dense_source")
# Tasks whose entries carry the dense fields.
DENSE_TASKS = frozenset({"object-detection", "instance-segmentation", "semantic-segmentation"})

_ID_RE = re.compile(r"^(timm|torchvision|hf|pkg|smp|local):\S+$")


@dataclass(frozen=True)
class Metric:
    """A published figure with its provenance.

    Attributes:
        dataset: evaluation dataset, e.g. ``imagenet-1k``.
        name: metric name, e.g. ``top1`` (percent) or ``box_map``.
        value: the number as published (percent where the source uses percent).
        source: where the number comes from (file or URL), so it can be checked.
        resolution: evaluation input size where it matters.
        split: the evaluation split where the source names one (e.g. ``test``).
        protocol: how the figure was made where it is not the usual top-1 (e.g. ``few-shot logistic-regression
            probe``, ``zero-shot``, ``A100 RTFx``).
    """

    dataset: str
    name: str
    value: float
    source: str
    resolution: int | None = None
    split: str | None = None
    protocol: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The on-disk form; `split` and `protocol` only when set (older records have neither)."""
        d = dataclasses.asdict(self)
        for k in ("split", "protocol"):
            if d[k] is None:
                del d[k]
        return d


@dataclass(frozen=True)
class CatalogEntry:
    """One set of pretrained weights. Every field is documented; ``None`` means *unknown*, never a guess.

    Units are in the names: ``n_params`` (count), ``gmacs`` (billions of multiply-accumulates per sample at
    ``input_size``), ``file_mb`` (MB = 10^6 bytes of the weights file), ``sample_rate_hz``.
    """

    id: str  # `source:name`, unique and never reused
    source: str  # one of SOURCES
    source_id: (
        str  # the name that source knows it by (timm name with tag, torchvision Weights enum, hub repo id)
    )
    family: str  # architecture family, e.g. "resnet", "vit", "bert"
    architecture: str  # the architecture builder name, e.g. "resnet50", "vit_base_patch16_224"
    modality: str  # one of MODALITIES
    task: str  # one of TASKS
    n_params: int | None = None
    n_params_source: str | None = None  # how n_params was obtained
    gmacs: float | None = None  # multiply-accumulates (not FLOPs), billions per sample
    gmacs_source: str | None = None
    input_size: tuple[int, int, int] | None = None  # (C, H, W) for images at the native size
    max_seq_len: int | None = None  # text: max positions
    sample_rate_hz: int | None = None  # audio
    feature_dim: int | None = None  # width of the pooled features a probe sees
    num_classes: int | None = None  # size of the pretrained head (0 = no head)
    pretrain_data: str | None = None  # e.g. "imagenet-1k", "imagenet-22k", "laion-2b"
    license: str | None = None  # SPDX id where one exists (or a LicenseRef-*), as normalised
    license_raw: str | None = None  # the license string as the source gave it
    license_class: str = "unknown"  # one of LICENSE_CLASSES
    metrics: tuple[Metric, ...] = ()
    file_mb: float | None = None
    file_mb_source: str | None = None
    paper: str | None = None
    year: int | None = None
    preprocess: dict[str, Any] | None = (
        None  # mean/std/interpolation/crop_pct for images, as the weights need
    )
    probeable: bool = False  # can the advisor extract features from it in this install
    probe_note: str | None = None  # why not probeable (or how it loads)
    tags: tuple[str, ...] = field(default_factory=tuple)
    revision: str | None = None  # the upstream revision (commit) the published figures were made with
    release_date: str | None = None  # ISO date as the source gives it
    languages: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("eng-Latn",), as the source gives them
    # Every modality the weights take where the source lists several (MTEB ModelMeta.modalities), in MODALITIES
    # order; empty = `modality` alone. `modality` stays the one advisor probes and picks candidates by.
    modalities: tuple[str, ...] = field(default_factory=tuple)
    loader: dict[str, Any] | None = None  # loader settings a source records (framework, similarity, prompts)
    # The catalog id of the same weights in another form (a packaged ONNX export of a hub model): its published
    # figures are this entry's too, each saying where it comes from (`advisor.catalog.sources_merge`).
    same_weights_as: str | None = None
    provenance: tuple[str, ...] = field(default_factory=tuple)  # the sources merged into this entry
    # Dense (detection / segmentation) entries; None = unknown or not stated by the source (`dense_source` says).
    # label_set: the classes the pretrained head predicts, by a short name ("COCO-91 (80 used)", "VOC-21 (20 +
    # background)", "ADE-150", "face", "none" for an architecture whose head the user trains); n_labels: the real
    # classes it names (placeholders and background not counted; `num_classes` is the head's size).
    label_set: str | None = None
    n_labels: int | None = None
    # working_size: the input size the weights run at, as the source's resize states it; postprocess: what turns
    # the network's output into boxes / masks (decode, thresholds, NMS); dense_source: where these come from (and
    # why one is None).
    working_size: str | None = None
    postprocess: str | None = None
    dense_source: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not _ID_RE.match(self.id):
            problems.append(f"id {self.id!r} is not `source:name`")
        elif ModelId.parse(self.id).source != self.source:
            problems.append(f"id prefix does not match source {self.source!r}")
        if self.source not in SOURCES:
            problems.append(f"source {self.source!r} not in {SOURCES}")
        if self.modality not in MODALITIES:
            problems.append(f"modality {self.modality!r} not in {MODALITIES}")
        if self.task not in TASKS:
            problems.append(f"task {self.task!r} not in {TASKS}")
        if self.license_class not in LICENSE_CLASSES:
            problems.append(f"license_class {self.license_class!r} not in {LICENSE_CLASSES}")
        odd = [m for m in self.modalities if m not in INPUT_MODALITIES]
        if odd:
            problems.append(f"modalities {odd!r} not in {INPUT_MODALITIES}")
        for name in ("n_params", "gmacs", "file_mb", "feature_dim", "max_seq_len", "sample_rate_hz"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                problems.append(f"{name} must be a non-negative number or None, got {v!r}")
        if self.n_params is not None and not isinstance(self.n_params, int):
            problems.append("n_params must be an int")
        if self.input_size is not None and (
            len(self.input_size) != 3 or not all(isinstance(x, int) for x in self.input_size)
        ):
            problems.append(f"input_size must be (C, H, W) ints, got {self.input_size!r}")
        if self.year is not None and not (1980 <= self.year <= 2100):
            problems.append(f"year {self.year!r} out of range")
        if not self.probeable and not self.probe_note:
            problems.append("an entry that is not probeable must say why (probe_note)")
        problems += self._dense_problems()
        if problems:
            raise CatalogError(f"invalid catalog entry {self.id!r}: " + "; ".join(problems))

    def _dense_problems(self) -> list[str]:
        """What is wrong with the dense fields: non-empty strings, a non-negative int, a source when any is set."""
        problems = []
        for name in DENSE_FIELDS:
            v = getattr(self, name)
            if name == "n_labels":
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                    problems.append(f"n_labels must be a non-negative int or None, got {v!r}")
            elif v is not None and (not isinstance(v, str) or not v.strip()):
                problems.append(f"{name} must be a non-empty string or None, got {v!r}")
        described = any(getattr(self, n) is not None for n in DENSE_FIELDS if n != "dense_source")
        if described and not self.dense_source:
            problems.append("label_set / working_size / postprocess need their source (dense_source)")
        return problems

    def takes(self, modality: str) -> bool:
        """True when the weights take `modality` input: it is the entry's `modality` or one of its `modalities`."""
        return modality == self.modality or modality in self.modalities

    def probeable_for(self, modality: str | None) -> bool:
        """True when advisor can extract features from it for data of `modality` (None: of its own modality).

        A CLIP-like entry (`modality` image, `modalities` image and text) is probed as an image model only:
        advisor's text loader does not take its text tower.
        """
        return self.probeable and (modality is None or modality == self.modality)

    @property
    def name(self) -> str:
        """The id without its source prefix."""
        return ModelId.parse(self.id).ref

    def metric(self, dataset: str, name: str) -> float | None:
        """The published value of `name` on `dataset`, or None."""
        for m in self.metrics:
            if m.dataset == dataset and m.name == name:
                return m.value
        return None

    @property
    def imagenet_top1(self) -> float | None:
        return self.metric("imagenet-1k", "top1")

    @property
    def mteb_classification(self) -> float | None:
        """Mean MTEB classification score (percent) over the tasks the source has for this entry's modality."""
        return self.metric("mteb-classification", "mean")

    @property
    def wer(self) -> float | None:
        """Average English short-form WER (percent) on the Open ASR Leaderboard."""
        return self.metric("open-asr-en-shortform", "wer")

    def first_metric(self, name: str) -> float | None:
        """The first published value named `name`, on whichever dataset the source reports it, or None."""
        return next((m.value for m in self.metrics if m.name == name), None)

    @property
    def box_map(self) -> float | None:
        """Published box mAP (COCO AP@[.5:.95], percent) of a detector or instance segmenter."""
        return self.first_metric("box_map")

    @property
    def mask_map(self) -> float | None:
        """Published mask mAP (COCO AP@[.5:.95], percent) of an instance segmenter."""
        return self.first_metric("mask_map")

    @property
    def miou(self) -> float | None:
        """Published mean IoU (percent) of a semantic segmenter (its dataset in `metrics`)."""
        return self.first_metric("miou")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the on-disk form)."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["tags"] = list(self.tags)
        d["metrics"] = [m.to_dict() for m in self.metrics]
        d["languages"] = list(self.languages)
        d["provenance"] = list(self.provenance)
        if self.modalities:
            d["modalities"] = list(self.modalities)
        else:  # entries of one modality keep their on-disk form (no empty key on every line)
            del d["modalities"]
        if self.same_weights_as is None:
            del d["same_weights_as"]
        if all(d[n] is None for n in DENSE_FIELDS):  # non-dense entries keep their on-disk form
            for n in DENSE_FIELDS:
                del d[n]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CatalogEntry:
        """Build and validate an entry from its on-disk dict; unknown keys are an error."""
        check_fields(
            cls, d, lambda extra: CatalogError(f"catalog entry {d.get('id')!r} has unknown fields: {extra}")
        )
        d = dict(d)
        d["metrics"] = tuple(Metric(**m) for m in d.get("metrics") or ())
        if d.get("input_size") is not None:
            d["input_size"] = tuple(int(x) for x in d["input_size"])
        d["tags"] = tuple(d.get("tags") or ())
        d["languages"] = tuple(d.get("languages") or ())
        d["modalities"] = tuple(d.get("modalities") or ())
        d["provenance"] = tuple(d.get("provenance") or ())
        return cls(**d)
