"""torchvision detectors, instance and semantic segmenters as `DenseModel`s (random-init builds offline; pretrained
via torch.hub). Mask R-CNN's masks come back binarised at 0.5 at the image's size (torchvision pastes them there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.instance_masks import InstanceMasks
from advisor.dense.models import InfoAttributes
from advisor.dense.types import BOX_TASKS, Detections, InstanceDetections
from advisor.errors import WeightsUnavailableOffline

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Mask R-CNN mask probability from which a pixel belongs to the instance (torchvision's own threshold)
MASK_THRESHOLD = 0.5


class TorchvisionDense(InfoAttributes):
    """A torchvision detection/segmentation model with its pre/post-processing."""

    def __init__(self, info: DenseModelInfo, net: Any, *, pretrained: bool, size: tuple[int, int]) -> None:
        super().__init__(info, pretrained=pretrained)
        self.input_size: tuple[int, int] = size
        self._take_net(net)

    def predict(self, images: Sequence[Any]) -> list[Any]:
        """Per image: `Detections` (torchvision's own resize, decoding and NMS), `InstanceDetections` (Mask R-CNN:
        with a binary mask per box at the image's size) or an argmax class map."""
        import torch

        with torch.inference_mode():
            if self.task in BOX_TASKS:
                return self._detect(images)
            return [self._segment(im) for im in images]

    def _detect(self, images: Sequence[Any]) -> list[Detections]:
        import torch

        xs = [
            torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float().div(255).to(self.device)
            for im in images
        ]
        out: list[Detections] = []
        for o in self.net(xs):
            boxes = o["boxes"].cpu().numpy().astype(np.float32)
            scores = o["scores"].cpu().numpy().astype(np.float32)
            labels = o["labels"].cpu().numpy().astype(np.int64)
            if "masks" not in o:
                out.append(Detections(boxes, scores, labels))
                continue
            binary = (o["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy()  # (N, H, W) at the image's size
            out.append(InstanceDetections(boxes, scores, labels, InstanceMasks.from_binary(binary)))
        return out

    def _segment(self, im: Any) -> np.ndarray:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        w, h = self.input_size
        arr = (
            np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        )
        x = (
            torch.from_numpy((arr - IMAGENET_MEAN) / IMAGENET_STD)
            .permute(2, 0, 1)[None]
            .float()
            .to(self.device)
        )
        logits = self.net(x)["out"]
        logits = F.interpolate(logits, size=(im.height, im.width), mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].cpu().numpy().astype(np.int64)


def _build(builder: str, task: str, pretrained: bool, size: tuple[int, int]) -> Any:
    import torchvision.models.detection as det
    import torchvision.models.segmentation as seg

    boxes = task in BOX_TASKS
    fn = getattr(det if boxes else seg, builder)
    kw: dict[str, Any] = {}
    if boxes and not builder.startswith("ssdlite"):
        kw |= {"min_size": min(size), "max_size": max(size)}
    if pretrained:
        return fn(weights="DEFAULT", **kw)
    n = 91 if boxes else 21
    return fn(weights=None, weights_backbone=None, num_classes=n, **kw)


def load(
    info: DenseModelInfo, *, pretrained: bool, device: str, input_size: tuple[int, int] | None
) -> TorchvisionDense:
    """Build ``info``'s torchvision model; pretrained weights from torch.hub's cache or the network."""
    import torch

    from advisor.models.hub import is_offline, torch_hub_checkpoint
    from advisor.runtime import resolve_device

    builder = info.model_id.split(":", 1)[1]
    size = input_size or info.input_size or (320, 320)
    if pretrained:
        import torchvision.models.detection as det
        import torchvision.models.segmentation as seg
        from torchvision.models import get_model_weights

        del det, seg
        url = get_model_weights(builder).DEFAULT.url
        ckpt = torch_hub_checkpoint(url)
        if not ckpt.exists() and is_offline(None):
            raise WeightsUnavailableOffline(
                f"{info.model_id}: weights are not available offline (not cached at {ckpt})",
                hint=f"run once with network access, or download {url} into {ckpt.parent}",
            )
    torch.manual_seed(0)
    try:
        net = _build(builder, info.task, pretrained, size)
    except (OSError, RuntimeError) as e:  # the download failed
        raise WeightsUnavailableOffline(
            f"{info.model_id}: could not load weights ({str(e).splitlines()[0][:200]})",
            hint="check the network, or run once online so the weights are cached",
        ) from e
    dev = resolve_device(device)
    return TorchvisionDense(info, net.to(dev), pretrained=pretrained, size=size)


def _tv_categories(weights_enum: str, kind: str) -> tuple[str, ...]:
    import torchvision.models.detection as det
    import torchvision.models.segmentation as seg

    enum = getattr(det if kind in BOX_TASKS else seg, weights_enum)
    return tuple(next(iter(enum)).meta["categories"])


# builder, weights enum, working size (w, h), license of the weights, post-processing
_TORCHVISION = (
    ("ssdlite320_mobilenet_v3_large", "SSDLite320_MobileNet_V3_Large_Weights", (320, 320), "detection"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights", (320, 320), "detection"),
    ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights", (512, 512), "detection"),
    ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights", (512, 512), "detection"),
    ("maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights", (512, 512), "instance-segmentation"),
    ("lraspp_mobilenet_v3_large", "LRASPP_MobileNet_V3_Large_Weights", (320, 320), "segmentation"),
    ("deeplabv3_mobilenet_v3_large", "DeepLabV3_MobileNet_V3_Large_Weights", (320, 320), "segmentation"),
    ("fcn_resnet50", "FCN_ResNet50_Weights", (320, 320), "segmentation"),
)  # fmt: skip


_POSTPROCESS = {
    "detection": "torchvision's own box decoding and NMS",
    "instance-segmentation": "torchvision's own box decoding and NMS; masks pasted at the image size, binarised at "
    f"{MASK_THRESHOLD}",
    "segmentation": "argmax, resized back",
}


def infos() -> list[DenseModelInfo]:
    """The torchvision detectors, instance segmenters and segmenters advisor knows."""
    from advisor.dense.models import DenseModelInfo

    out = []
    for builder, enum, size, kind in _TORCHVISION:
        post = _POSTPROCESS[kind]
        out.append(
            DenseModelInfo(
                f"torchvision:{builder}", kind, "coco-91" if kind in BOX_TASKS else "voc-21",
                _tv_categories(enum, kind), "BSD-3-Clause (code); weights: torchvision's terms", size, post, False,
            )
        )  # fmt: skip
    return out
