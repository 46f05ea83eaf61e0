"""Label sets of dense models (COCO-80, VOC-20, face, person, text) and the matching of a dataset's class names.

A pretrained detector or segmenter can be scored zero-shot on the user's data only for the classes both label sets
share. `match_classes` maps dataset class names onto a model's names through normalisation (case, ``_``/``-``) and a
small synonym table (VOC ↔ COCO spellings, plurals, common alternatives); what it cannot map is reported, never
guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.dense.types import normalise_class_name

COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip

VOC20: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "coco-80": COCO80,
    "voc-20": VOC20,
    "face": ("face",),
    "person": ("person",),
    "text": ("text",),
}

# normalised alternative name -> normalised canonical name (the COCO spelling where there is one)
SYNONYMS: dict[str, str] = {
    "aeroplane": "airplane",
    "plane": "airplane",
    "motorbike": "motorcycle",
    "bike": "bicycle",
    "diningtable": "dining table",
    "table": "dining table",
    "pottedplant": "potted plant",
    "plant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "monitor": "tv",
    "television": "tv",
    "people": "person",
    "pedestrian": "person",
    "human": "person",
    "man": "person",
    "woman": "person",
    "faces": "face",
    "head": "face",
    "mobile phone": "cell phone",
    "phone": "cell phone",
    "cellphone": "cell phone",
    "fridge": "refrigerator",
    "doughnut": "donut",
    "hairdryer": "hair drier",
    "hair dryer": "hair drier",
    "ball": "sports ball",
    "text line": "text",
    "word": "text",
    "words": "text",
}


def canonical(name: str) -> str:
    """The canonical spelling of a class name: normalised, synonyms resolved, a plural ``s`` dropped if that helps."""
    n = normalise_class_name(name)
    if n in SYNONYMS:
        return SYNONYMS[n]
    if n.endswith("s") and len(n) > 3:
        singular = n[:-1]
        return SYNONYMS.get(singular, singular)
    return n


BACKGROUND_NAMES = frozenset({"background", "bg", "void", "unlabeled", "unlabelled"})  # canonical spellings


def is_background(name: str) -> bool:
    """Whether a class name means background/void (``_background_``, ``Background``, ``bg``, ...)."""
    return canonical(name) in BACKGROUND_NAMES


def foreground(classes: Sequence[str]) -> list[str]:
    """The classes that are not background."""
    return [c for c in classes if not is_background(c)]


def match_classes(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> dict[int, int]:
    """Dataset class index → model class index, for the classes the two share (by `canonical` name).

    Background-like dataset classes (``background``, ``_background_``, ``bg``) never match.
    """
    by_name: dict[str, int] = {}
    for j, m in enumerate(model_classes):
        by_name.setdefault(canonical(m), j)
    out: dict[int, int] = {}
    for i, d in enumerate(dataset_classes):
        if is_background(d):
            continue
        c = canonical(d)
        if c in by_name:
            out[i] = by_name[c]
    return out


def unmatched(dataset_classes: Sequence[str], mapping: dict[int, int]) -> list[str]:
    """The dataset classes (background excluded) the mapping leaves out."""
    return [c for i, c in enumerate(dataset_classes) if i not in mapping and not is_background(c)]
