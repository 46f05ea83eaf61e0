"""The ``torchvision:`` source: torchvision classifiers with their weights' own ``transforms()``.

Features: the input of the last ``nn.Linear`` (the classifier is swapped for ``Identity`` in the feature module
and kept as ``head`` for logits). ``torchvision:<arch>[.<WEIGHTS>]``; the weights enum name defaults to ``DEFAULT``.
With ``pretrained=False`` the architecture gets random weights but still uses the named weights' preprocessing.
"""

from __future__ import annotations

import difflib
from typing import Any

from advisor.errors import ModelLoadError, WeightsUnavailableOffline
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest
from advisor.models.hub import is_offline, torch_hub_checkpoint
from advisor.models.registry import register_source


def split_classifier(model: Any) -> tuple[Any, Any]:
    """Replace the model's last ``nn.Linear`` with ``Identity``; return (feature model, the removed Linear)."""
    import torch.nn as nn

    last_name, last = None, None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last_name, last = name, mod
    if last is None or last_name is None:
        return model, None
    parent = model
    parts = last_name.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], nn.Identity())
    return model, last


def tv_blocks(model: Any) -> list:
    """Top-level stages of a torchvision classifier, input side first (best effort)."""
    layers = [getattr(model, f"layer{i}") for i in range(1, 5) if hasattr(model, f"layer{i}")]
    if layers:
        return layers
    for attr in ("features", "trunk_output", "encoder.layers"):
        obj = model
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return list(obj)
    return []


@register_source("torchvision")
def load_torchvision(req: LoadRequest) -> LoadedModel:
    """Load ``torchvision:<arch>[.<WEIGHTS_ENUM>]`` (see module docstring)."""
    import torchvision
    from torchvision.models import get_model, get_model_weights, list_models

    arch, _, tag = req.name.partition(".")
    if arch not in list_models():
        close = difflib.get_close_matches(arch, list_models(), n=3)
        raise ModelLoadError(
            f"{req.model_id}: torchvision has no model {arch!r} (torchvision {torchvision.__version__})",
            hint=f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()",
        )
    enum = get_model_weights(arch)
    tag = tag or "DEFAULT"
    try:
        weights = enum[tag] if tag != "DEFAULT" else enum.DEFAULT
    except KeyError as e:
        raise ModelLoadError(
            f"{req.model_id}: {arch} has no weights {tag!r}",
            hint=f"available: {', '.join(w.name for w in enum)}",
        ) from e
    revision = None
    if req.pretrained:
        ckpt = torch_hub_checkpoint(weights.url)
        revision = ckpt.name
        if not ckpt.exists() and is_offline(req.offline):
            raise WeightsUnavailableOffline(
                f"{req.model_id}: weights are not available offline (not cached at {ckpt})",
                hint=f"run once with network access, or download {weights.url} into {ckpt.parent} "
                "(TORCH_HOME sets the cache)",
            )
    try:
        model = get_model(arch, weights=weights if req.pretrained else None)
    except Exception as e:  # network errors from the download
        raise WeightsUnavailableOffline(
            f"{req.model_id}: could not load weights ({str(e).splitlines()[0][:200]})",
            hint="check the network, or run once online so the weights are cached",
        ) from e
    return wrap_torchvision(
        model, weights, model_id=req.model_id, pretrained=req.pretrained, revision=revision
    )


def wrap_torchvision(
    model: Any, weights: Any, *, model_id: str, pretrained: bool, revision: str | None
) -> LoadedModel:
    """Wrap a torchvision classifier as an image `LoadedModel` with `weights.transforms()` preprocessing."""
    import torch

    model.eval()
    tf = weights.transforms()
    feats, head = split_classifier(model)
    crop = list(getattr(tf, "crop_size", [224]))
    side = int(crop[0])
    with torch.inference_mode():
        dim = (
            int(feats(torch.zeros(1, 3, side, side)).flatten(1).shape[-1])
            if head is None
            else head.in_features
        )

    def preprocess(items: list) -> tuple:
        return (torch.stack([tf(im) for im in items]),)

    sig = {
        "kind": "torchvision-weights-transforms",
        "weights": f"{type(weights).__name__}.{weights.name}",
        "transforms": repr(tf),
    }
    categories = weights.meta.get("categories")
    return LoadedModel(
        model_id=model_id,
        modality="image",
        feature_dim=dim,
        preprocess_fn=preprocess,
        signature=sig,
        example=ExampleSpec(input_size=side),
        module=feats,
        head=head,
        num_source_classes=head.out_features if head is not None else None,
        pretrained=pretrained,
        revision=revision,
        runtime="torch",
        blocks_fn=lambda: tv_blocks(model),
        source_classes=categories
        if head is not None and categories and len(categories) == head.out_features
        else None,
        info={"source": "torchvision", "architecture": type(model).__name__, "weights": weights.name},
    )
