"""FALLBACK model construction for the benchmark harness, used only when ``advisor.models`` is not importable, and
for meta-device builds (weights-only memory estimates). Random initialisation only: never loads weights.

timm ids build with ``timm.create_model(name, pretrained=False)``; torchvision ids with
``torchvision.models.get_model(builder, weights=None)``. The module times the full classifier forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advisor.errors import ModelLoadError


def _split(model_id: str) -> tuple[str, str]:
    source, _, name = model_id.partition(":") if ":" in model_id else ("timm", "", model_id)
    return source, name


def meta_builder(model_id: str) -> Callable[[], Any] | None:
    """A zero-argument builder of the random-init architecture for timm/torchvision ids, else None."""
    source, name = _split(model_id)
    if source == "timm":

        def build() -> Any:
            import timm

            return timm.create_model(name, pretrained=False)

        return build
    if source == "torchvision":
        arch = name.split(".", 1)[0]

        def build_tv() -> Any:
            import torchvision

            return torchvision.models.get_model(arch, weights=None)

        return build_tv
    return None


def _torchvision_size(name: str) -> int:
    arch, _, tag = name.partition(".")
    try:
        import torchvision

        enum = torchvision.models.get_model_weights(arch)
        w = enum[tag] if tag else enum.DEFAULT
        return int(w.transforms.keywords.get("crop_size", 224))
    except Exception:  # noqa: BLE001 - no weights metadata: torchvision's classifiers take 224
        return 224


class FallbackModel:
    """The part of ``advisor.models.LoadedModel`` the harness uses (module, example_batch, forward)."""

    runtime = "torch"
    modality = "image"
    pretrained = False

    def __init__(self, model_id: str, module: Any, input_size: int, device: str) -> None:
        self.model_id = model_id
        self.module = module.eval().to(device)
        self.input_size = input_size
        self.device = device
        self.info = {"loader": "advisor.bench._fallback (advisor.models unavailable)"}

    def example_batch(
        self,
        batch_size: int,
        *,
        input_size: int | None = None,
        seq_len: int | None = None,
        clip_seconds: float | None = None,
    ) -> tuple[Any, ...]:
        import torch

        s = input_size or self.input_size
        return (torch.randn(batch_size, 3, s, s, generator=torch.Generator().manual_seed(0)),)

    def forward(self, batch: tuple[Any, ...]) -> Any:
        return self.module(*batch)


def load_model_fallback(
    model_id: str, *, device: str = "cpu", pretrained: bool = False, **_: Any
) -> FallbackModel:
    """Random-init timm/torchvision image classifier (FALLBACK when ``advisor.models`` is missing).

    Raises:
        ModelLoadError: the id is not timm/torchvision, the name is unknown, or pretrained weights were asked for.
    """
    if pretrained:
        raise ModelLoadError(
            f"{model_id}: the benchmark fallback loader builds random weights only",
            hint="install advisor.models, or benchmark without --pretrained",
        )
    source, name = _split(model_id)
    build = meta_builder(model_id)
    if build is None:
        raise ModelLoadError(f"{model_id}: the benchmark fallback only builds timm: and torchvision: models")
    try:
        module = build()
    except Exception as e:  # noqa: BLE001 - unknown names raise various errors in timm/torchvision
        raise ModelLoadError(
            f"{model_id}: cannot build {source} model {name!r} ({e})",
            hint="check the name with `advisor catalog search`",
        ) from None
    if source == "timm":
        size = int((getattr(module, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[-1])
    else:
        size = _torchvision_size(name)
    return FallbackModel(model_id, module, size, device)
