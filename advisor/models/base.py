"""The one model interface: `LoadedModel` (preprocess, forward to features/logits, example batches) and `ModelOutput`.

Every source (timm, torchvision, Hugging Face, packaged weights, local files) builds a `LoadedModel`; callers
(feature extraction, benchmarks, fine-tuning) never see source-specific code.

Torch runtimes expose ``module``: an ``nn.Module`` whose ``forward(*batch)`` returns pooled features ``(N, D)``;
``head`` (optional) maps those features to the source model's class logits. Other runtimes (ONNX) set
``module=None`` and give a ``forward_fn`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from advisor.models.ids import ModelId

Batch = tuple  # tuple[torch.Tensor, ...]


@dataclass
class ModelOutput:
    """What a forward pass gives.

    Attributes:
        features: ``(N, D)`` pooled features, float32.
        logits: ``(N, Z)`` logits of the source model's own head, or None when it has none.
    """

    features: torch.Tensor
    logits: torch.Tensor | None = None


@dataclass
class ExampleSpec:
    """Native input geometry used to make random example batches.

    Attributes:
        input_size: image side (pixels) for image models.
        seq_len: token count for text models.
        vocab_size: token id range for random text batches.
        sample_rate: Hz for audio models.
        clip_seconds: default random clip length for audio models.
    """

    input_size: int | tuple[int, int] | None = None
    seq_len: int = 128
    vocab_size: int = 1000
    sample_rate: int | None = None
    clip_seconds: float = 1.0


class LoadedModel:
    """A model ready for inference, the same for every source and runtime.

    Attributes:
        model_id: the id it was loaded from (``timm:resnet18.a1_in1k``, ``pkg:efficientnet_lite0``, ...).
        modality: ``image`` | ``text`` | ``audio``.
        feature_dim: length D of the pooled feature vector.
        num_source_classes: number of classes of the model's own head, None when it has no head.
        pretrained: False when the weights are random (e.g. benchmarking without weights).
        revision: weights revision/version/file hash when known.
        runtime: ``torch`` | ``onnx`` | ``torchscript`` | ``export``.
        device: where the module lives.
        module: torch runtimes: ``forward(*batch) -> (N, D)`` features; None for other runtimes.
        head: optional module mapping features to source logits.
        sample_rate: audio models: the rate their preprocessing expects (Hz).
        source_classes: names of the source head's classes, when known.
        info: free-form provenance (architecture, weights file, pooling), JSON-able.
    """

    def __init__(
        self,
        *,
        model_id: str,
        modality: str,
        feature_dim: int,
        preprocess_fn: Callable[[list], Batch],
        signature: dict[str, Any],
        example: ExampleSpec,
        module: Any = None,
        head: Any = None,
        forward_fn: Callable[[Batch], ModelOutput] | None = None,
        num_source_classes: int | None = None,
        pretrained: bool = True,
        revision: str | None = None,
        runtime: str = "torch",
        blocks_fn: Callable[[], list] | None = None,
        sample_rate: int | None = None,
        source_classes: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if module is None and forward_fn is None:
            raise ValueError("a LoadedModel needs a torch module or a forward_fn")
        self.model_id = model_id
        self.modality = modality
        self.feature_dim = int(feature_dim)
        self.num_source_classes = num_source_classes
        self.pretrained = pretrained
        self.revision = revision
        self.runtime = runtime
        self.module = module
        self.head = head
        self.sample_rate = sample_rate
        self.source_classes = list(source_classes) if source_classes is not None else None
        self.info = dict(info or {})
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._preprocess_fn = preprocess_fn
        self._forward_fn = forward_fn
        self._signature = dict(signature)
        self._example = example
        self._blocks_fn = blocks_fn
        if module is not None:
            module.eval()
        if head is not None:
            head.eval()

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.model_id!r}, modality={self.modality}, dim={self.feature_dim}, "
            f"runtime={self.runtime}, device={self.device}, pretrained={self.pretrained})"
        )

    # ------------------------------------------------------------------------------------------ inputs
    @property
    def input_size(self) -> int | tuple[int, int] | None:
        """Image models: the input side (or ``(h, w)``) their preprocessing produces; None when unknown."""
        return self._example.input_size

    def preprocess(self, items: list) -> Batch:
        """Turn raw items into a model batch with the model's own preprocessing.

        Args:
            items: PIL images (image), strings (text) or mono float32 waveforms at ``sample_rate`` (audio).

        Returns:
            A tuple of CPU tensors, the positional arguments of ``module.forward``.
        """
        return tuple(self._preprocess_fn(list(items)))

    def preprocess_signature(self) -> dict[str, Any]:
        """A JSON-able description of the preprocessing (and weights), part of feature-cache keys."""
        return {
            "model_id": self.model_id,
            "revision": self.revision,
            "pretrained": self.pretrained,
            "runtime": self.runtime,
            **self._signature,
        }

    def example_batch(
        self,
        batch_size: int,
        *,
        input_size: int | None = None,
        seq_len: int | None = None,
        clip_seconds: float | None = None,
    ) -> Batch:
        """A random batch in the model's native input format (for timing and FLOP counting).

        Args:
            batch_size: N.
            input_size: image side override (pixels).
            seq_len: text length override (tokens).
            clip_seconds: audio length override (seconds).
        """
        import numpy as np
        import torch

        g = torch.Generator().manual_seed(0)
        ex = self._example
        if self.modality == "image":
            size = input_size or ex.input_size or 224
            h, w = (size, size) if isinstance(size, int) else size
            return (torch.randn(batch_size, 3, h, w, generator=g),)
        if self.modality == "text":
            n = seq_len or ex.seq_len
            ids = torch.randint(5, max(6, ex.vocab_size), (batch_size, n), generator=g)
            return (ids, torch.ones(batch_size, n, dtype=torch.long))
        if self.modality == "audio":
            sr = self.sample_rate or ex.sample_rate or 16000
            n = int(round((clip_seconds or ex.clip_seconds) * sr))
            rng = np.random.default_rng(0)
            waves = [(0.1 * rng.standard_normal(n)).astype("float32") for _ in range(batch_size)]
            return self.preprocess(waves)
        raise ValueError(f"unknown modality {self.modality!r}")

    # ------------------------------------------------------------------------------------------ compute
    def _to_device(self, batch: Batch) -> Batch:
        import torch

        out = []
        for t in batch:
            if isinstance(t, torch.Tensor):
                t = t.to(self.device, non_blocking=True)
                if t.is_floating_point() and t.dtype != self.dtype:
                    t = t.to(self.dtype)
            out.append(t)
        return tuple(out)

    def forward(self, batch: Batch) -> ModelOutput:
        """Features (and source logits where the model has a head) for one preprocessed batch.

        The caller chooses the grad mode (``torch.inference_mode()`` for extraction). Outputs are float32.
        """
        if self._forward_fn is not None:
            return self._forward_fn(batch)
        batch = self._to_device(batch)
        feats = self.module(*batch)
        logits = self.head(feats) if self.head is not None else None
        return ModelOutput(
            features=feats.float(),
            logits=logits.float() if logits is not None else None,
        )

    def to(self, device: Any, dtype: Any = None) -> LoadedModel:
        """Move the model (in place) to `device`, optionally casting weights to `dtype`; returns self."""
        import torch

        from advisor.models.device import resolve_device

        dev = resolve_device(device) if not isinstance(device, torch.device) else device
        if self.module is not None:
            self.module.to(dev)
            if dtype is not None:
                self.module.to(dtype)
        if self.head is not None:
            self.head.to(dev)
            if dtype is not None:
                self.head.to(dtype)
        self.device = dev
        if dtype is not None:
            self.dtype = dtype
        return self

    def blocks(self) -> list:
        """The backbone's top-level stages/blocks, input side first (for "unfreeze the last N blocks").

        Best effort per source; an empty list when the structure is unknown.
        """
        if self._blocks_fn is None:
            return []
        return list(self._blocks_fn())


@dataclass
class LoadRequest:
    """A parsed model id plus the load options.

    Attributes:
        model_id: the id as given.
        source: registry key (``timm``, ``torchvision``, ``hf``, ``pkg``, ``local``).
        name: the source-specific name (architecture/tag, repo id, package model name, file path).
        params: ``?key=value`` options from the id.
        pretrained: load weights (False: random init).
        offline: True: never touch the network; None: detect.
        trust_remote_code: allow Hugging Face remote code (only when the user asked).
        mid: the parsed id (`ModelId`; ``source``, ``name`` = ``mid.ref`` and ``params`` are its fields), set by
            `load_model`; None when a request is built by hand.
    """

    model_id: str
    source: str
    name: str
    params: dict[str, str] = field(default_factory=dict)
    pretrained: bool = True
    offline: bool | None = None
    trust_remote_code: bool = False
    mid: ModelId | None = None


def first_tensor_dim(module: Any, batch: Batch) -> int:
    """Feature dimension by running a tiny batch through `module` (used when a config does not say)."""
    import torch

    with torch.inference_mode():
        return int(module(*batch).shape[-1])
