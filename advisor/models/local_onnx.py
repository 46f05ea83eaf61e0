"""ONNX files of the ``local:`` source (onnxruntime), image, text and audio graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.errors import ModelLoadError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest, ModelOutput
from advisor.models.local_options import (
    _audio_preprocess,
    _pool,
    _text_preprocess,
    _tokenizer_from,
    image_preprocess,
)


class OnnxRunner:
    """Run an onnxruntime session on a batch, mapping our tensors to the graph's inputs by name/position."""

    def __init__(self, path: Path, output: str | None, logits_output: str | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        names = [o.name for o in self.session.get_outputs()]
        self.output = output or names[0]
        if self.output not in names:
            raise ModelLoadError(
                f"{path}: the graph has no output {self.output!r}", hint=f"outputs: {', '.join(names)}"
            )
        if logits_output and logits_output not in names:
            raise ModelLoadError(
                f"{path}: the graph has no output {logits_output!r}", hint=f"outputs: {', '.join(names)}"
            )
        self.logits_output = logits_output

    def run(self, feeds: dict[str, Any]) -> tuple[Any, Any]:
        """(features array, logits array or None)."""
        wanted = [self.output] + ([self.logits_output] if self.logits_output else [])
        outs = self.session.run(wanted, {k: v for k, v in feeds.items() if k in self.inputs})
        return outs[0], (outs[1] if self.logits_output else None)


def onnx_text_model(
    path: Path,
    tokenizer: Any,
    *,
    model_id: str,
    output: str | None = None,
    max_length: int = 256,
    revision: str | None = None,
    info: dict[str, Any] | None = None,
) -> LoadedModel:
    """An ONNX sentence encoder (inputs ``input_ids``, ``attention_mask`` [, ``token_type_ids``]) as a LoadedModel."""
    import numpy as np
    import torch

    runner = OnnxRunner(path, output, None)
    pre = _text_preprocess(tokenizer, max_length)

    def forward(batch: tuple) -> ModelOutput:
        ids, mask = (t.cpu().numpy().astype(np.int64) for t in batch[:2])
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out, _ = runner.run(feeds)
        t = torch.from_numpy(np.asarray(out, dtype=np.float32))
        return ModelOutput(features=_pool(t, torch.from_numpy(mask)))

    with torch.inference_mode():
        dim = int(forward(pre(["hello world"])).features.shape[-1])
    return LoadedModel(
        model_id=model_id,
        modality="text",
        feature_dim=dim,
        preprocess_fn=pre,
        forward_fn=forward,
        signature={"kind": "onnx-text", "output": runner.output, "max_length": max_length, "file": path.name},
        example=ExampleSpec(
            seq_len=min(128, max_length), vocab_size=int(getattr(tokenizer, "vocab_size", 1000))
        ),
        runtime="onnx",
        revision=revision,
        info={"file": str(path), **(info or {})},
    )


def _onnx_model(path: Path, req: LoadRequest, opts: dict[str, Any], revision: str) -> LoadedModel:
    import numpy as np
    import torch

    modality = opts["modality"]
    if modality == "text":
        return onnx_text_model(
            path,
            _tokenizer_from(opts, path),
            model_id=req.model_id,
            output=opts.get("output"),
            max_length=opts["max_length"],
            revision=revision,
        )
    runner = OnnxRunner(path, opts.get("output"), opts.get("logits_output"))
    if modality == "image":
        pre, sig = image_preprocess(opts)
    else:
        pre = _audio_preprocess(opts["sample_rate"])
        sig = {"kind": "local-audio", "sample_rate": opts["sample_rate"]}

    def forward(batch: tuple) -> ModelOutput:
        x = batch[0].detach().cpu().float().numpy()
        feats, logits = runner.run({runner.inputs[0]: x})
        f = _pool(torch.from_numpy(np.asarray(feats, dtype=np.float32)))
        lg = torch.from_numpy(np.asarray(logits, dtype=np.float32)).flatten(1) if logits is not None else None
        return ModelOutput(features=f, logits=lg)

    side = opts["input_size"]
    ex = ExampleSpec(input_size=side, sample_rate=opts["sample_rate"])
    probe = (
        (torch.zeros(1, 3, side, side),)
        if modality == "image"
        else pre([np.zeros(opts["sample_rate"], "float32")])
    )
    out = forward(probe)
    return LoadedModel(
        model_id=req.model_id,
        modality=modality,
        feature_dim=int(out.features.shape[-1]),
        num_source_classes=int(out.logits.shape[-1]) if out.logits is not None else None,
        preprocess_fn=pre,
        forward_fn=forward,
        signature={**sig, "output": runner.output, "file": path.name},
        example=ex,
        runtime="onnx",
        revision=revision,
        sample_rate=opts["sample_rate"] if modality == "audio" else None,
        info={"file": str(path), "logits_kind": _onnx_kind(path, runner.logits_output)},
    )


def _onnx_kind(path: Path, logits_output: str | None) -> str | None:
    from advisor.models.outputs import onnx_output_kind

    return onnx_output_kind(path, logits_output) if logits_output else None
