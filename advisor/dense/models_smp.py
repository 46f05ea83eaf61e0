"""segmentation_models_pytorch architectures (``smp:<Arch>-<encoder>``) as random-init `DenseModel`s.

smp ships no whole-model pretrained weights; its encoders' ImageNet weights are a download. The advisor uses these
as architecture rows (timed at the working size, the decoder trained by the user), so they are built with
``encoder_weights=None``: offline and reproducible (seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.models import InfoAttributes
from advisor.errors import ModelLoadError

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

SMP_PIP = "pip install segmentation-models-pytorch==0.6.0"
DEFAULT_NUM_CLASSES = 2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmpDense(InfoAttributes):
    """An smp segmenter with its pre/post-processing: resize to the working size (multiples of 32), ImageNet
    normalisation, argmax, nearest resize back to the image's size."""

    def __init__(self, info: DenseModelInfo, net: Any, *, size: tuple[int, int], num_classes: int) -> None:
        super().__init__(info, pretrained=False)
        self.classes = [f"class {i}" for i in range(num_classes)]
        self.input_size: tuple[int, int] = size
        self._take_net(net)

    def predict(self, images: Sequence[Any]) -> list[np.ndarray]:
        """An ``(H, W)`` int64 class map per image, at the image's own size."""
        import torch

        with torch.inference_mode():
            return [self._one(im) for im in images]

    def _one(self, im: Any) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        w, h = self.input_size
        arr = (
            np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        )
        x = torch.from_numpy((arr - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)[None].float()
        logits = self.net(x.to(self.device))
        labels = logits.argmax(1, keepdim=True).float()
        big = F.interpolate(labels, size=(im.height, im.width), mode="nearest")
        return big[0, 0].cpu().numpy().astype(np.int64)


def _round32(size: tuple[int, int]) -> tuple[int, int]:
    return (max(32, round(size[0] / 32) * 32), max(32, round(size[1] / 32) * 32))


def load(
    info: DenseModelInfo,
    *,
    pretrained: bool,
    device: str,
    input_size: tuple[int, int] | None,
    num_classes: int = DEFAULT_NUM_CLASSES,
) -> SmpDense:
    """Build ``info``'s smp architecture with random weights (``encoder_weights=None``).

    Raises:
        ModelLoadError: `pretrained` asked for (smp has no offline segmentation weights), or smp not installed
            (with the pip line).
    """
    if pretrained:
        raise ModelLoadError(
            f"{info.model_id}: smp ships no pretrained segmentation weights (only encoder weights, downloaded)",
            hint="load it with pretrained=False (random init, decoder to be trained) or use a packaged model",
        )
    try:
        import segmentation_models_pytorch as smp
    except ImportError as e:
        raise ModelLoadError(f"{info.model_id}: needs segmentation-models-pytorch", hint=SMP_PIP) from e
    import torch

    from advisor.runtime import resolve_device

    arch, encoder = info.model_id.split(":", 1)[1].split("-", 1)
    torch.manual_seed(0)
    net = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=num_classes)
    size = _round32(input_size or info.input_size or (320, 320))
    return SmpDense(info, net.to(resolve_device(device)), size=size, num_classes=num_classes)


_SMP = ("Unet-resnet34", "DeepLabV3Plus-resnet34")


def _info(name: str) -> DenseModelInfo:
    from advisor.dense.models import DenseModelInfo

    return DenseModelInfo(
        f"smp:{name}", "segmentation", "none", (), "MIT (segmentation_models_pytorch)", (320, 320),
        "resize to the working size (multiples of 32), argmax, nearest resize back", False, SMP_PIP,
    )  # fmt: skip


def infos() -> list[DenseModelInfo]:
    """The smp architectures advisor lists as candidates (random init only)."""
    return [_info(name) for name in _SMP]


def resolve(model_id: str) -> DenseModelInfo | None:
    """Any other ``smp:<Arch>-<encoder>`` smp can build: an smp architecture class and an smp encoder (its own
    names, or ``tu-<timm model>``); None when smp is not installed or does not have them."""
    arch, sep, encoder = model_id.removeprefix("smp:").partition("-")
    if not model_id.startswith("smp:") or not sep or not encoder:
        return None
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return None
    cls = getattr(smp, arch, None)
    if not (isinstance(cls, type) and issubclass(cls, smp.base.SegmentationModel)):
        return None
    if encoder.startswith("tu-"):
        import timm

        known = bool(timm.list_models(encoder[3:]))
    else:
        known = encoder in smp.encoders.get_encoder_names()
    return _info(f"{arch}-{encoder}") if known else None
