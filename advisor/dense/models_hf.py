"""Hugging Face transformers detectors and segmenters (``hf:<org>/<name>``) as `DenseModel`s.

``predict`` runs the checkpoint's own image processor before the network (resize, rescale, normalise) and its
post-processing after it (``post_process_object_detection`` with a score threshold, boxes scaled to each image;
``post_process_semantic_segmentation`` at each image's size), so timing ``predict`` is the latency a user sees.

Weights: ``from_pretrained(..., local_files_only=True)`` when offline (``ADVISOR_OFFLINE``/``HF_HUB_OFFLINE`` or the
hub unreachable, `advisor.models.hub.is_offline`), after a cache check that fails in milliseconds with
`WeightsUnavailableOffline`; never ``trust_remote_code``; ``.bin`` files only through ``weights_only=True``.
``pretrained=False`` builds the published architecture with random weights and the published processor settings
without the hub (`advisor.dense.models_hf_arch`), so architecture rows are timed offline.

OWL-ViT is open-vocabulary: its classes are the user's class names as text prompts (`HfOpenVocab.set_classes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.labels import COCO80
from advisor.dense.models import InfoAttributes
from advisor.dense.models_hf_arch import ADE150, CLASSES, COCO91
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError, UsageError, WeightsUnavailableOffline

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

DEFAULT_THRESHOLD = 0.05  # low, as for COCO mAP: the metric ranks by score, a high cut only loses recall
TINY_SIZE = (64, 64)
OPEN_PROMPT = "a photo of a {}"
LABEL_SET_CLASSES: dict[str, tuple[str, ...]] = {
    "coco-91": COCO91,
    "coco-80": COCO80,
    "ade-150": ADE150,
    "open": (),
}
# open vocabulary matches every dataset, and the weights are ~600 MB: a candidate only when named
OPEN_NOTE = "open vocabulary: prompted with your class names (named with --models: a large download)"
SEGFORMER_LICENSE = "other: NVIDIA Source Code License for SegFormer (non-commercial use only)"


@dataclass(frozen=True)
class HfEntry:
    """One hub checkpoint the ``hf:`` dense source knows.

    Attributes:
        repo: hub repo id.
        revision: pinned commit, or None (the default branch) where none is pinned.
        kind: architecture key of `advisor.dense.models_hf_arch.CLASSES`.
        task: ``detection`` or ``segmentation``.
        label_set: ``coco-91`` (DETR-style ids, "N/A" gaps), ``coco-80``, ``ade-150`` or ``open`` (prompted).
        license: of the weights.
        size: published working size (width, height); for aspect-keeping processors (longest cap, shortest edge).
        postprocess: what ``predict`` does after the network.
        safetensors: True: the repo has ``model.safetensors`` (a ``.bin`` is refused); None: safetensors first,
            else the ``.bin`` through ``weights_only=True``.
    """

    repo: str
    revision: str | None
    kind: str
    task: str
    label_set: str
    license: str
    size: tuple[int, int]
    postprocess: str
    safetensors: bool | None = None

    @property
    def model_id(self) -> str:
        """The dense model id, ``hf:<repo>``."""
        return f"hf:{self.repo}"

    @property
    def num_labels(self) -> int:
        """Classes of the head (0 for open-vocabulary)."""
        return len(LABEL_SET_CLASSES[self.label_set])


_DETR_POST = (
    "the processor's post_process_object_detection: softmax over classes (no-object dropped), score >= {t}, boxes "
    "scaled to the image and clipped; no NMS (one box per query)"
)
_TOPK_POST = (
    "the processor's post_process_object_detection: sigmoid scores, the top {k} (query, class) pairs, score >= {t}, "
    "boxes scaled to the image and clipped; no NMS"
)
_OWL_POST = (
    "the processor's post_process_object_detection: per image patch the best-matching prompt (sigmoid), "
    "score >= {t}, boxes scaled to the image and clipped; no NMS"
)
_SEG_POST = "the processor's post_process_semantic_segmentation: logits resized to the image's size, argmax"
_M2F_POST = (
    "the processor's post_process_semantic_segmentation: class x mask probabilities summed over the queries, "
    "resized to the image's size, argmax"
)
_T = DEFAULT_THRESHOLD
_ENTRIES: tuple[HfEntry, ...] = (
    HfEntry("facebook/detr-resnet-50", None, "detr", "detection", "coco-91", "Apache-2.0", (1333, 800),
            _DETR_POST.format(t=_T)),
    HfEntry("PekingU/rtdetr_r18vd", None, "rt-detr", "detection", "coco-80", "Apache-2.0", (640, 640),
            _TOPK_POST.format(k=300, t=_T), True),
    HfEntry("hustvl/yolos-tiny", "95a90f3c189fbfca3bcfc6d7315b9e84d95dc2de", "yolos", "detection", "coco-91",
            "Apache-2.0", (1333, 512), _DETR_POST.format(t=_T)),
    HfEntry("microsoft/conditional-detr-resnet-50", None, "conditional-detr", "detection", "coco-91", "Apache-2.0",
            (1333, 800), _TOPK_POST.format(k=100, t=_T)),
    HfEntry("SenseTime/deformable-detr", None, "deformable-detr", "detection", "coco-91", "Apache-2.0",
            (1333, 800), _TOPK_POST.format(k=100, t=_T)),
    HfEntry("google/owlvit-base-patch32", None, "owlvit", "detection", "open", "Apache-2.0", (768, 768),
            _OWL_POST.format(t=_T)),
    HfEntry("nvidia/segformer-b0-finetuned-ade-512-512", None, "segformer", "segmentation", "ade-150",
            SEGFORMER_LICENSE, (512, 512), _SEG_POST),
    HfEntry("facebook/mask2former-swin-tiny-ade-semantic", None, "mask2former", "segmentation", "ade-150",
            "other (the hub card states no licence; Mask2Former's code is MIT)", (384, 384), _M2F_POST),
    HfEntry("openmmlab/upernet-convnext-tiny", "876ffc56b819a829448f7e81e9f8606deef6fb65", "upernet",
            "segmentation", "ade-150", "MIT", (512, 512), _SEG_POST, True),
)  # fmt: skip
ENTRIES: dict[str, HfEntry] = {e.model_id: e for e in _ENTRIES}


class HfDense(InfoAttributes):
    """A transformers detector or segmenter with its image processor's pre- and post-processing.

    Attributes:
        threshold: detection score threshold of the post-processing (`DEFAULT_THRESHOLD`).
        revision: the hub revision the weights came from (None: the default branch, or random init).
    """

    def __init__(
        self,
        info: DenseModelInfo,
        entry: HfEntry,
        net: Any,
        processor: Any,
        *,
        pretrained: bool,
        size: tuple[int, int],
    ) -> None:
        from advisor.dense.models_hf_arch import size_kwargs

        super().__init__(info, pretrained=pretrained)
        self.kind = entry.kind
        self.revision = entry.revision if pretrained else None
        self.processor = processor
        self.image_processor = getattr(processor, "image_processor", processor)
        self.input_size: tuple[int, int] = size
        self.threshold = DEFAULT_THRESHOLD
        self._size_kw = size_kwargs(entry.kind, size)
        self._take_net(net)
        id2label = getattr(net.config, "id2label", None) or {}
        if pretrained and entry.label_set != "open" and len(id2label) == entry.num_labels:
            # the checkpoint's own names (ADE's "bed " loses its trailing space)
            self.classes = [str(id2label.get(i, name)).strip() for i, name in enumerate(self.classes)]

    def predict(self, images: Sequence[Any]) -> list[Any]:
        """Per image: `Detections` (absolute pixels of that image, class index into `classes`) or an ``(H, W)``
        int64 class map at the image's size."""
        import torch

        with torch.inference_mode():
            return [self._one(im.convert("RGB")) for im in images]

    def _text_inputs(self) -> dict[str, Any]:
        return {}

    def _one(self, im: Any) -> Any:
        inputs = self.image_processor(images=im, return_tensors="pt", size=self._size_kw)
        out = self.net(pixel_values=inputs["pixel_values"].to(self.device), **self._text_inputs())
        target = [(im.height, im.width)]
        if self.task == "segmentation":
            seg = self.image_processor.post_process_semantic_segmentation(out, target_sizes=target)[0]
            return seg.cpu().numpy().astype(np.int64)
        res = self.image_processor.post_process_object_detection(
            out, threshold=self.threshold, target_sizes=target
        )[0]
        return _detections(res, im.width, im.height)


def _detections(res: dict[str, Any], width: int, height: int) -> Detections:
    """A post-processed result as `Detections`, boxes clipped to the image (DETR boxes may overhang it)."""
    boxes = res["boxes"].float().cpu().numpy().astype(np.float32).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    scores = res["scores"].float().cpu().numpy().astype(np.float32)
    labels = res["labels"].cpu().numpy().astype(np.int64)
    return Detections(boxes, scores, labels)


class HfOpenVocab(HfDense):
    """OWL-ViT: detects the classes it is prompted with (``a photo of a <name>`` per class name).

    Call `set_classes` with the class names before `predict`; a label in its `Detections` indexes those names.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._text: dict[str, Any] = {}

    def set_classes(self, names: Sequence[str]) -> None:
        """Prompt the model with `names` (tokenised once here, not in every `predict`).

        Raises:
            UsageError: no names.
        """
        from advisor.dense.models_hf_arch import HashTokenizer

        names = [str(n) for n in names]
        if not names:
            raise UsageError(f"{self.model_id}: an open-vocabulary detector needs at least one class name")
        texts = [OPEN_PROMPT.format(n) for n in names]
        tok = getattr(self.processor, "tokenizer", None)
        text_cfg = self.net.config.text_config
        if tok is not None:  # the checkpoint's CLIP tokenizer
            enc = tok(
                texts,
                padding="max_length",
                max_length=text_cfg.max_position_embeddings,
                truncation=True,
                return_tensors="pt",
            )
        else:  # random init: no vocabulary to honour
            enc = HashTokenizer(text_cfg.vocab_size, text_cfg.max_position_embeddings)(texts)
        self._text = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}
        self.classes = names

    def _text_inputs(self) -> dict[str, Any]:
        if not self._text:
            raise UsageError(
                f"{self.model_id}: open-vocabulary: no class names to look for",
                hint="call set_classes(names) with the dataset's class names first",
            )
        return self._text


def weights_cached(entry: HfEntry) -> bool:
    """Whether `entry`'s config and weights are in the local Hugging Face cache (file lookups only)."""
    from advisor.models.hub import hf_cached_file

    if hf_cached_file(entry.repo, "config.json", entry.revision) is None:
        return False
    names = ("model.safetensors",) if entry.safetensors else ("model.safetensors", "pytorch_model.bin")
    return any(hf_cached_file(entry.repo, n, entry.revision) is not None for n in names)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _load_pretrained(entry: HfEntry) -> tuple[Any, Any]:
    """The checkpoint and its processor from the hub (or only its cache, offline)."""
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from advisor.models.hub import is_offline, unavailable_hf

    hf_logging.disable_progress_bar()
    offline = is_offline(None)
    if offline and not weights_cached(entry):
        raise unavailable_hf(entry.model_id, entry.repo, "not in the local Hugging Face cache and offline")
    model_cls = getattr(transformers, CLASSES[entry.kind][0])
    proc_cls = transformers.OwlViTProcessor if entry.kind == "owlvit" else transformers.AutoImageProcessor
    kw: dict[str, Any] = {"revision": entry.revision, "local_files_only": offline}
    try:
        net = model_cls.from_pretrained(
            entry.repo, dtype=torch.float32, use_safetensors=entry.safetensors, weights_only=True, **kw
        )
        proc = proc_cls.from_pretrained(entry.repo, trust_remote_code=False, **kw)
    except OSError as e:
        if offline:
            raise unavailable_hf(entry.model_id, entry.repo, "files missing from the local cache") from e
        raise WeightsUnavailableOffline(
            f"{entry.model_id}: could not fetch from the Hugging Face hub ({_first_line(e)})",
            hint="check the network, or run once online so the weights are cached (or set HF_HOME to a cache)",
        ) from e
    except ValueError as e:
        raise ModelLoadError(f"{entry.model_id}: {_first_line(e)}") from e
    return net, proc


def _build_random(entry: HfEntry, *, tiny: bool, size: tuple[int, int] | None) -> tuple[Any, Any]:
    """The published (or, `tiny`, a tiny) architecture with seeded random weights and a hub-free processor."""
    import torch
    import transformers

    from advisor.dense.models_hf_arch import arch_config, build_processor, tiny_config

    cfg = (tiny_config if tiny else arch_config)(entry.kind, entry.num_labels)
    torch.manual_seed(0)
    net = getattr(transformers, CLASSES[entry.kind][0])(cfg)
    proc_size = _fixed_size(entry, cfg) or size or (TINY_SIZE if tiny else entry.size)
    return net, build_processor(entry.kind, proc_size)


def _fixed_size(entry: HfEntry, config: Any) -> tuple[int, int] | None:
    """OWL-ViT's size is its position embeddings' (the config's image size): no override."""
    if entry.kind != "owlvit":
        return None
    s = int(config.vision_config.image_size)
    return (s, s)


def load(
    info: DenseModelInfo,
    *,
    pretrained: bool,
    device: str,
    input_size: tuple[int, int] | None,
    tiny: bool = False,
) -> HfDense:
    """Load `info`'s checkpoint (pretrained) or build its architecture with random weights.

    Args:
        info: an ``hf:`` `DenseModelInfo`.
        pretrained: True: the hub weights (offline: only from the cache); False: random init, no hub.
        device: where the network runs.
        input_size: working size (width, height) override (OWL-ViT keeps its own).
        tiny: random init only: a tiny config of the same architecture (tests).

    Raises:
        WeightsUnavailableOffline: pretrained weights not cached while offline, or the hub unreachable.
        ModelLoadError: the checkpoint cannot be loaded.
    """
    from advisor.dense.models_hf_arch import processor_size
    from advisor.runtime import resolve_device

    entry = ENTRIES[info.model_id]
    if pretrained:
        net, proc = _load_pretrained(entry)
    else:
        net, proc = _build_random(entry, tiny=tiny, size=input_size)
    image_proc = getattr(proc, "image_processor", proc)
    size = (
        _fixed_size(entry, net.config) or input_size or processor_size(entry.kind, image_proc) or entry.size
    )
    cls = HfOpenVocab if entry.label_set == "open" else HfDense
    return cls(info, entry, net.to(resolve_device(device)), proc, pretrained=pretrained, size=size)


def infos() -> list[DenseModelInfo]:
    """The hub detectors and segmenters advisor knows; `pretrained_available_offline` where the local cache has
    the weights."""
    from advisor.dense.models import DenseModelInfo

    return [
        DenseModelInfo(
            e.model_id, e.task, e.label_set, LABEL_SET_CLASSES[e.label_set], e.license, e.size, e.postprocess,
            weights_cached(e), opt_in=e.label_set == "open", note=OPEN_NOTE if e.label_set == "open" else None,
        )
        for e in _ENTRIES
    ]  # fmt: skip
