"""The offline half of the ``hf:`` dense source: label sets, architecture configs and image processors built
without the hub.

Random-init builds (``pretrained=False``: architecture rows timed offline, and the tests) never read the hub: the
architecture comes from `arch_config` (each published model's hyperparameters, as its ``config.json`` gives them),
or from `tiny_config` (a few layers, small widths: for tests), and the image processor from `build_processor` with
the published resize and normalisation. Pretrained loads read both from the hub or its cache instead
(`advisor.dense.models_hf`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from advisor.dense.labels import COCO80

# COCO's 91 category ids as DETR-style models number their classes (``config.id2label``): id 0 and the ten ids
# COCO 2017 left unused are "N/A", the other 80 are COCO-80 in order.
_COCO_UNUSED = frozenset({0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83})


def _coco91() -> tuple[str, ...]:
    names = iter(COCO80)
    return tuple("N/A" if i in _COCO_UNUSED else next(names) for i in range(91))


COCO91: tuple[str, ...] = _coco91()

# ADE20K's 150 SceneParse classes as the hub's ADE checkpoints number them (huggingface/label-files
# ade20k-id2label.json; "bed " there has a trailing space, dropped here). No background class.
ADE150: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# kind -> (transformers model class, image processor class)
CLASSES: dict[str, tuple[str, str]] = {
    "detr": ("DetrForObjectDetection", "DetrImageProcessor"),
    "conditional-detr": ("ConditionalDetrForObjectDetection", "ConditionalDetrImageProcessor"),
    "deformable-detr": ("DeformableDetrForObjectDetection", "DeformableDetrImageProcessor"),
    "rt-detr": ("RTDetrForObjectDetection", "RTDetrImageProcessor"),
    "yolos": ("YolosForObjectDetection", "YolosImageProcessor"),
    "owlvit": ("OwlViTForObjectDetection", "OwlViTImageProcessor"),
    "segformer": ("SegformerForSemanticSegmentation", "SegformerImageProcessor"),
    "mask2former": ("Mask2FormerForUniversalSegmentation", "Mask2FormerImageProcessor"),
    "upernet": ("UperNetForSemanticSegmentation", "SegformerImageProcessor"),
}
# kinds whose processor keeps the aspect ratio (shortest edge to min(size), longest at most max(size)); the
# others resize to exactly (width, height)
ASPECT_KINDS = frozenset({"detr", "conditional-detr", "deformable-detr", "yolos"})
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _tf() -> Any:
    import transformers

    return transformers


def _detr_like(cls_name: str, num_labels: int, **kw: Any) -> Any:
    return getattr(_tf(), cls_name)(num_labels=num_labels, **kw)


def arch_config(kind: str, num_labels: int) -> Any:
    """The published architecture of `kind`'s checkpoint as a transformers config (random weights, no hub).

    Args:
        kind: a `CLASSES` key.
        num_labels: classes of the head (91 for COCO-91 DETRs, 80 for RT-DETR, 150 for ADE).

    Returns:
        The config; DETR-family backbones are timm ``resnet50`` with ``use_pretrained_backbone=False``.
    """
    tf = _tf()
    if kind in ("detr", "conditional-detr", "deformable-detr"):
        name = {"detr": "DetrConfig", "conditional-detr": "ConditionalDetrConfig"}.get(
            kind, "DeformableDetrConfig"
        )
        return _detr_like(name, num_labels)  # the defaults are the ResNet-50 checkpoints' architecture
    if kind == "rt-detr":  # rtdetr_r18vd: ResNet-18-vd, hidden expansion 0.5, 3 decoder layers
        backbone = tf.RTDetrResNetConfig(
            depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic",
            out_features=["stage2", "stage3", "stage4"],
        )  # fmt: skip
        return tf.RTDetrConfig(
            backbone_config=backbone, encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=3,
            num_labels=num_labels,
        )  # fmt: skip
    if kind == "yolos":  # yolos-tiny (DeiT-tiny)
        return tf.YolosConfig(
            hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
            image_size=[800, 1333], num_detection_tokens=100, use_mid_position_embeddings=False,
            num_labels=num_labels,
        )  # fmt: skip
    if kind == "owlvit":
        return tf.OwlViTConfig()  # the defaults are owlvit-base-patch32
    if kind == "segformer":
        return tf.SegformerConfig(num_labels=num_labels)  # the defaults are MiT-b0
    if kind == "mask2former":  # Swin-T backbone
        swin = tf.SwinConfig(
            embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, image_size=384,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )  # fmt: skip
        return tf.Mask2FormerConfig(backbone_config=swin, num_labels=num_labels)
    if kind == "upernet":  # ConvNeXt-T backbone
        convnext = tf.ConvNextConfig(
            depths=[3, 3, 9, 3],
            hidden_sizes=[96, 192, 384, 768],
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        return tf.UperNetConfig(
            backbone_config=convnext, hidden_size=512, auxiliary_in_channels=384, num_labels=num_labels
        )
    raise KeyError(kind)


def _tiny_resnet(cls_name: str = "ResNetConfig", out: Sequence[str] = ("stage2", "stage3", "stage4")) -> Any:
    return getattr(_tf(), cls_name)(
        embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=list(out),
    )  # fmt: skip


_TINY_DETR = {
    "encoder_layers": 1, "decoder_layers": 1, "d_model": 32, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
    "encoder_attention_heads": 2, "decoder_attention_heads": 2, "num_queries": 10,
}  # fmt: skip


def tiny_config(kind: str, num_labels: int) -> Any:
    """A tiny config of `kind` (one or two layers, widths 8-32, 10 queries): builds in milliseconds, for tests.

    Args:
        kind: a `CLASSES` key.
        num_labels: classes of the head.
    """
    tf = _tf()
    if kind == "detr":
        return tf.DetrConfig(
            backbone_config=_tiny_resnet(out=["stage4"]), num_labels=num_labels, **_TINY_DETR
        )
    if kind == "conditional-detr":
        return tf.ConditionalDetrConfig(
            backbone_config=_tiny_resnet(out=["stage4"]), num_labels=num_labels, **_TINY_DETR
        )
    if kind == "deformable-detr":  # two decoder layers: one would leave the tied box heads nothing to tie
        kw = _TINY_DETR | {"decoder_layers": 2, "encoder_n_points": 2, "decoder_n_points": 2}
        return tf.DeformableDetrConfig(backbone_config=_tiny_resnet(), num_labels=num_labels, **kw)
    if kind == "rt-detr":
        return tf.RTDetrConfig(
            backbone_config=_tiny_resnet("RTDetrResNetConfig"), encoder_in_channels=[16, 16, 16],
            encoder_hidden_dim=32, encoder_ffn_dim=32, d_model=32, decoder_ffn_dim=32, decoder_layers=1,
            decoder_in_channels=[32, 32, 32], num_queries=10, encoder_attention_heads=2, decoder_attention_heads=2,
            num_labels=num_labels,
        )  # fmt: skip
    if kind == "yolos":
        return tf.YolosConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=[64, 96],
            num_detection_tokens=10, use_mid_position_embeddings=False, num_labels=num_labels,
        )  # fmt: skip
    if kind == "owlvit":
        small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
        return tf.OwlViTConfig(
            text_config=small, vision_config=small | {"image_size": 64, "patch_size": 16}, projection_dim=16
        )
    if kind == "segformer":
        return tf.SegformerConfig(
            hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1],
            decoder_hidden_size=16, num_labels=num_labels,
        )  # fmt: skip
    if kind == "mask2former":  # widths stay multiples of 32 (GroupNorm(32) in the pixel decoder)
        swin = tf.SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )  # fmt: skip
        return tf.Mask2FormerConfig(
            backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
            encoder_layers=1, decoder_layers=2, num_attention_heads=2, dim_feedforward=32, num_queries=10,
            num_labels=num_labels,
        )  # fmt: skip
    if kind == "upernet":
        convnext = tf.ConvNextConfig(
            hidden_sizes=[8, 8, 8, 8],
            depths=[1, 1, 1, 1],
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        return tf.UperNetConfig(
            backbone_config=convnext, hidden_size=16, auxiliary_in_channels=8, auxiliary_channels=8,
            num_labels=num_labels,
        )  # fmt: skip
    raise KeyError(kind)


def size_kwargs(kind: str, size: tuple[int, int]) -> dict[str, int]:
    """The processor ``size`` for a working size (width, height): aspect-keeping kinds take the shorter side as the
    shortest edge and the longer as the cap on the longest edge; the others resize to exactly (width, height)."""
    w, h = size
    if kind in ASPECT_KINDS:
        return {"shortest_edge": min(w, h), "longest_edge": max(w, h)}
    return {"height": h, "width": w}


def build_processor(kind: str, size: tuple[int, int]) -> Any:
    """`kind`'s image processor with the published settings at working size `size` (width, height), no hub.

    RT-DETR rescales to [0, 1] without mean/std normalisation; OWL-ViT uses CLIP's mean/std and bicubic resizing;
    the others ImageNet mean/std (the processors' defaults).
    """
    cls = getattr(_tf(), CLASSES[kind][1])
    kw: dict[str, Any] = {"size": size_kwargs(kind, size)}
    if kind == "rt-detr":
        kw |= {"do_normalize": False, "do_pad": False}
    elif kind == "owlvit":
        kw |= {
            "crop_size": kw["size"],
            "do_center_crop": False,
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
        }
    elif kind == "mask2former":
        kw |= {"size_divisor": 32, "ignore_index": 255, "do_reduce_labels": False}
    return cls(**kw)


def processor_size(kind: str, processor: Any) -> tuple[int, int] | None:
    """The working size (width, height) a processor resizes to, read back from its ``size`` (None if unknown)."""
    s = getattr(processor, "size", None)
    keys = ("shortest_edge", "longest_edge", "height", "width")
    v = {k: (s.get(k) if isinstance(s, dict) else getattr(s, k, None)) for k in keys}
    if kind in ASPECT_KINDS and v["shortest_edge"] and v["longest_edge"]:
        return (int(v["longest_edge"]), int(v["shortest_edge"]))
    if v["height"] and v["width"]:
        return (int(v["width"]), int(v["height"]))
    return None


class HashTokenizer:
    """A stand-in for CLIP's tokenizer on random-init OWL-ViT builds (which have no vocabulary to honour): each
    word of a prompt maps to a stable id by CRC32, between CLIP's start and end tokens, padded to `max_length`.

    The end token is the largest id, as in CLIP, so the text model's pooling (the position of the largest id)
    reads the end of each prompt.
    """

    def __init__(self, vocab_size: int, max_length: int) -> None:
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.bos, self.eos = vocab_size - 2, vocab_size - 1

    def __call__(self, texts: Sequence[str]) -> dict[str, Any]:
        """``input_ids`` and ``attention_mask`` (``(len(texts), max_length)`` int64 tensors)."""
        import torch

        ids = torch.zeros((len(texts), self.max_length), dtype=torch.int64)
        mask = torch.zeros_like(ids)
        for r, text in enumerate(texts):
            words = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in text.lower().split()]
            row = [self.bos, *words[: self.max_length - 2], self.eos]
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}
