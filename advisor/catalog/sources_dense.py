"""Label set, working size and post-processing of torchvision's detectors and segmenters, read from the library.

Nothing here is typed by hand: the label set is the weights' ``meta["categories"]`` (its ``"__background__"`` and
``"N/A"`` placeholders counted), the working size and the thresholds are the attributes of the model its builder
makes (``weights=None, weights_backbone=None`` on the meta device: no download, no memory), and a segmenter's
working size is its weights' ``transforms()`` resize. The figures are the builders' defaults, which the published
weights were evaluated with; `advisor.dense` may time a model at another size.
"""

from __future__ import annotations

from typing import Any

from advisor.catalog.sources_common import _build_module

# placeholders in torchvision's category lists: the background class and the ids a dataset left unused
BACKGROUND = "__background__"
UNUSED = "N/A"

# weights-name prefix -> the dataset whose label set the head predicts; the first match wins
_LABEL_DATASETS = (("COCO_WITH_VOC_LABELS", "VOC"), ("COCO", "COCO"))


def label_set_name(dataset: str, categories: list[str] | tuple[str, ...]) -> tuple[str, int]:
    """A short label-set name and the number of real classes it names (placeholders not counted).

    ``("COCO", 91 names, 1 background + 10 "N/A")`` -> ``("COCO-91 (80 used)", 80)``;
    ``("VOC", 21 names, 1 background)`` -> ``("VOC-21 (20 + background)", 20)``.
    """
    n_bg = sum(c == BACKGROUND for c in categories)
    n_unused = sum(c == UNUSED for c in categories)
    real = len(categories) - n_bg - n_unused
    name = f"{dataset}-{len(categories)}"
    if n_unused:
        return f"{name} ({real} used)", real
    if n_bg:
        return f"{name} ({real} + background)", real
    return name, real


def _dataset_of(weights: str) -> str:
    w = weights.upper()
    return next((data for prefix, data in _LABEL_DATASETS if w.startswith(prefix)), w.split("_")[0])


def _fmt(x: float) -> str:
    return format(x, "g")


def transform_size(transform: Any) -> str:
    """The working size of a `GeneralizedRCNNTransform`, as its attributes state it."""
    cls = type(transform).__name__
    fixed = getattr(transform, "fixed_size", None)
    if fixed:
        h, w = fixed
        return f"{w}x{h}, aspect ratio not kept ({cls} fixed_size)"
    sides = "/".join(str(s) for s in transform.min_size)
    return (
        f"shorter side {sides}, longer <= {transform.max_size} ({cls}: aspect ratio kept, "
        f"batch padded to a multiple of {transform.size_divisible})"
    )


def _rpn_note(rpn: Any) -> str:
    return (
        f"RPN: top {rpn._pre_nms_top_n['testing']} proposals per level, NMS IoU {_fmt(rpn.nms_thresh)}, "
        f"{rpn._post_nms_top_n['testing']} kept"
    )


def detector_postprocess(model: Any) -> tuple[str, str]:
    """(post-processing, the attributes it was read from) of a torchvision detector."""
    heads = getattr(model, "roi_heads", None)
    if heads is not None:  # Faster / Mask R-CNN
        text = (
            f"softmax over classes; score > {_fmt(heads.score_thresh)}, boxes under 0.01 px dropped; "
            f"per-class NMS IoU {_fmt(heads.nms_thresh)}; top {heads.detections_per_img} per image "
            f"({_rpn_note(model.rpn)})"
        )
        if heads.has_mask():
            text += "; masks: per-box probabilities pasted into the image at its size (the caller thresholds)"
        return text, "roi_heads.score_thresh/nms_thresh/detections_per_img, rpn pre/post_nms_top_n (testing)"
    kind = type(model).__name__
    scores = {"FCOS": "sqrt(sigmoid(class) x sigmoid(centerness))", "SSD": "softmax"}.get(kind, "sigmoid")
    where = "per class" if kind == "SSD" else "per level"
    text = (
        f"{scores} scores; {where}: score > {_fmt(model.score_thresh)}, top {model.topk_candidates} candidates; "
        f"per-class NMS IoU {_fmt(model.nms_thresh)}; top {model.detections_per_img} per image"
    )
    return text, "score_thresh/topk_candidates/nms_thresh/detections_per_img"


def segmenter_size(weights: Any) -> str:
    """The working size of segmentation weights, from their eval ``transforms()``."""
    tf = weights.transforms()
    size = getattr(tf, "resize_size", None)
    if not size:
        raise ValueError(f"{weights}: transforms() states no resize size")
    what = f"shorter side {size[0]}, aspect ratio kept" if len(size) == 1 else f"{size[1]}x{size[0]}"
    return f"{what} ({type(tf).__name__}(resize_size={list(size)}))"


def torchvision_dense_fields(builder: str, weights_name: str) -> dict[str, Any]:
    """The dense fields (`advisor.catalog.schema.DENSE_FIELDS`) of torchvision weights `builder.weights_name`.

    Raises:
        KeyError: the weights enum has no such member.
        ValueError: segmentation weights whose transforms state no size.
    """
    import torchvision
    from torchvision import models as tvm

    enum = tvm.get_model_weights(builder)
    weights = enum[weights_name]
    cats = list(weights.meta["categories"])
    label_set, n_labels = label_set_name(_dataset_of(weights_name), cats)
    placeholders = (
        f"{sum(c == BACKGROUND for c in cats)} {BACKGROUND!r}, {sum(c == UNUSED for c in cats)} {UNUSED!r}"
    )
    version = torchvision.__version__.split("+")[0]
    head = (
        f"torchvision {version}: label set from {enum.__name__}.{weights_name}.meta['categories'] "
        f"({len(cats)} names: {placeholders})"
    )
    model = _build_module(lambda: tvm.get_model(builder, weights=None, weights_backbone=None))
    transform = getattr(model, "transform", None)
    if transform is not None:  # a detector
        post, attrs = detector_postprocess(model)
        size = transform_size(transform)
        how = (
            f"{builder}(weights=None, weights_backbone=None): transform min_size/max_size/fixed_size, {attrs}"
        )
    else:  # a semantic segmenter: the model upsamples its logits to the input itself
        size = segmenter_size(weights)
        post = (
            f"logits upsampled (bilinear) to the input size inside the model ('out'); argmax over the "
            f"{len(cats)} classes (0 = background)"
        )
        how = (
            f"working size from {enum.__name__}.{weights_name}.transforms(); upsampling in "
            f"{type(model).__name__}.forward"
        )
    return {
        "label_set": label_set,
        "n_labels": n_labels,
        "working_size": size,
        "postprocess": post,
        "dense_source": f"{head}; {how}",
    }
