"""ONNX files of the ``local:`` source (onnxruntime): image, text and audio graphs, read from their inputs.

The modality and layout come from the graph's input signature (`advisor.models.onnx_layout`); a graph with a
fixed batch size (a batch-1 export is common) is run in chunks of that size, so any batch size works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import ModelLoadError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest, ModelOutput
from advisor.models.local_options import (
    _audio_preprocess,
    _pool,
    _text_preprocess,
    _tokenizer_from,
    image_preprocess,
)
from advisor.models.onnx_layout import INT16_SCALE, OnnxLayout, check_modality, infer_layout, input_specs

_NUMPY_TYPES = {"tensor(float16)": np.float16, "tensor(double)": np.float64}


def _ort_message(e: Exception) -> str:
    """The first line of an onnxruntime error without its ``[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :`` prefix."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.rsplit(" : ", 1)[-1][:300]


class OnnxRunner:
    """Run an onnxruntime session on a batch, mapping our tensors to the graph's inputs by name/position.

    When the graph fixes its batch size (``batch``), a batch of another size is run in chunks of that size (the
    last chunk padded with copies of its last row, which are dropped from the outputs).
    """

    def __init__(self, path: Path, output: str | None, logits_output: str | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime's own exception types
            raise ModelLoadError(
                f"{path}: onnxruntime cannot open the graph ({_ort_message(e)})",
                hint="check that the file is a complete ONNX model (re-export it)",
            ) from e
        self.path = path
        self.specs = input_specs(self.session)
        self.inputs = [i.name for i in self.specs]
        first = self.specs[0].shape[0] if self.specs and self.specs[0].shape else None
        self.batch: int | None = first if isinstance(first, int) and first > 0 else None
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output = output or self.output_names[0]
        for name in (self.output, logits_output):
            if name and name not in self.output_names:
                raise ModelLoadError(
                    f"{path}: the graph has no output {name!r}",
                    hint=f"outputs: {', '.join(self.output_names)}",
                )
        self.logits_output = logits_output

    def _run_once(self, wanted: list[str], feeds: dict[str, Any]) -> list[Any]:
        try:
            return list(self.session.run(wanted, feeds))
        except Exception as e:  # onnxruntime's own exception types: one line that names the file
            shapes = ", ".join(f"{k} {list(np.shape(v))}" for k, v in feeds.items())
            raise ModelLoadError(
                f"{self.path}: onnxruntime could not run the graph on {shapes} ({_ort_message(e)})",
                hint="check modality= and input_size= in the id or the sidecar JSON match the graph's inputs",
            ) from e

    def run(self, feeds: dict[str, Any]) -> tuple[Any, Any]:
        """(features array, logits array or None) for a batch of any size."""
        wanted = [self.output] + ([self.logits_output] if self.logits_output else [])
        feeds = {k: v for k, v in feeds.items() if k in self.inputs}
        n = int(np.shape(next(iter(feeds.values())))[0]) if feeds else 0
        b = self.batch
        if b is None or n == b:
            outs = self._run_once(wanted, feeds)
        else:
            parts = []
            for start in range(0, n, b):
                chunk = {k: v[start : start + b] for k, v in feeds.items()}
                short = b - int(np.shape(next(iter(chunk.values())))[0])
                if short:
                    chunk = {k: np.concatenate([v] + [v[-1:]] * short) for k, v in chunk.items()}
                parts.append([o[: b - short] for o in self._run_once(wanted, chunk)])
            outs = [np.concatenate([p[j] for p in parts]) for j in range(len(wanted))]
        return outs[0], (outs[1] if self.logits_output else None)


def _check_features(runner: OnnxRunner, raw: Any, n: int, dim: int | None) -> None:
    """Refuse an output that is not one feature vector per input (a lost batch axis, a front end, a score).

    Args:
        runner: the session.
        raw: the output for a probe batch of `n` inputs.
        n: the probe batch size.
        dim: the pooled feature length (None: not pooled yet).
    """
    shape = list(np.shape(raw))
    hint = (
        f"point at the embedding model, or name the output holding the features with ?output=NAME "
        f"(outputs: {', '.join(runner.output_names)})"
    )
    if len(shape) == 1 and shape[0] == n:
        dim = 1
    elif len(shape) < 2 or shape[0] != n:
        raise ModelLoadError(
            f"{runner.path}: the output {runner.output!r} does not keep the batch axis ({n} inputs gave {shape})",
            hint=hint,
        )
    if dim is not None and dim < 2:
        raise ModelLoadError(
            f"{runner.path}: the output {runner.output!r} pools to {dim} value per input (shape {shape}), not a "
            "feature vector (is it a front end such as a spectrogram, or a score?)",
            hint=hint,
        )


def onnx_text_model(
    path: Path,
    tokenizer: Any,
    *,
    model_id: str,
    output: str | None = None,
    max_length: int = 256,
    revision: str | None = None,
    info: dict[str, Any] | None = None,
    runner: OnnxRunner | None = None,
) -> LoadedModel:
    """An ONNX sentence encoder (inputs ``input_ids``, ``attention_mask`` [, ``token_type_ids``]) as a LoadedModel.

    Args:
        path: the ``.onnx`` file.
        tokenizer: a Hugging Face tokenizer.
        model_id: the id to report.
        output: the graph output holding token or sentence features (first output when None).
        max_length: token limit.
        revision: weights revision / file hash.
        info: provenance to keep.
        runner: an already opened session for `path` (one is opened when None).
    """
    import torch

    runner = runner or OnnxRunner(path, output, None)
    ids_spec = next((i for i in runner.specs if i.name == "input_ids"), runner.specs[0])
    fixed = ids_spec.shape[1] if len(ids_spec.shape) == 2 and isinstance(ids_spec.shape[1], int) else None
    pre = _text_preprocess(tokenizer, max_length, pad_to=fixed)

    def feeds(batch: tuple) -> dict[str, Any]:
        ids, mask = (t.cpu().numpy().astype(np.int64) for t in batch[:2])
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def forward(batch: tuple) -> ModelOutput:
        out, _ = runner.run(feeds(batch))
        t = torch.from_numpy(np.asarray(out, dtype=np.float32))
        return ModelOutput(features=_pool(t, batch[1].cpu()))

    probe = pre(["hello world", "a second text"])
    raw, _ = runner.run(feeds(probe))
    _check_features(runner, raw, 2, None)
    with torch.inference_mode():
        dim = int(forward(probe).features.shape[-1])
    _check_features(runner, raw, 2, dim)
    sig: dict[str, Any] = {
        "kind": "onnx-text",
        "output": runner.output,
        "max_length": max_length,
        "file": path.name,
    }
    if fixed:
        sig["fixed_length"] = fixed
    return LoadedModel(
        model_id=model_id,
        modality="text",
        feature_dim=dim,
        preprocess_fn=pre,
        forward_fn=forward,
        signature=sig,
        example=ExampleSpec(
            seq_len=fixed or min(128, max_length), vocab_size=int(getattr(tokenizer, "vocab_size", 1000))
        ),
        runtime="onnx",
        revision=revision,
        info={"file": str(path), **(info or {})},
    )


def _image_side(path: Path, opts: dict[str, Any], layout: OnnxLayout) -> int:
    """The image side: the graph's when it fixes one (a different ``input_size`` is refused), else the option."""
    side = int(opts["input_size"])
    if layout.side is None:
        return side
    if "input_size" in opts["_given"] and side != layout.side:
        raise ModelLoadError(
            f"{path}: input_size={side} was asked for, but the graph takes {layout.side}x{layout.side} images",
            hint=f"drop input_size= (it is read from the graph) or set it to {layout.side}",
        )
    return layout.side


def _audio_feed(layout: OnnxLayout, scale: float, dtype: Any) -> Any:
    """Turn a float waveform batch (N, samples) into what the graph's input takes."""

    def feed(x: np.ndarray) -> np.ndarray:
        if layout.int16:
            return np.clip(np.round(x * INT16_SCALE), -32768, 32767).astype(np.int16)
        y = (x * scale if scale != 1.0 else x).astype(dtype)
        return y[:, None, :] if layout.layout == "channel-waveform" else y

    return feed


def _fit_length(pre: Any, samples: int | None) -> Any:
    """Preprocessing that pads (zeros) or crops every clip to the graph's fixed length."""
    if samples is None:
        return pre

    def run(items: list) -> tuple:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1)[:samples] for w in items]
        x, lengths = pre([np.pad(w, (0, samples - w.size)) for w in waves])
        return (x, lengths.clamp_max(samples))

    return run


def _signal_parts(path: Path, opts: dict[str, Any], layout: OnnxLayout, dtype: Any) -> tuple[Any, ...]:
    """(preprocess, signature, feed, example spec, probe batch) for an image or audio graph."""
    import torch

    sr = int(opts["sample_rate"])
    if layout.modality == "image":
        side = _image_side(path, opts, layout)
        pre, sig = image_preprocess({**opts, "input_size": side})
        if layout.layout == "NHWC":
            sig = {**sig, "layout": "NHWC"}

        def image_feed(x: np.ndarray) -> np.ndarray:
            return (x.transpose(0, 2, 3, 1) if layout.layout == "NHWC" else x).astype(dtype)

        return (
            pre,
            sig,
            image_feed,
            ExampleSpec(input_size=side, sample_rate=sr),
            (torch.zeros(2, 3, side, side),),
        )
    scale = float(opts.get("input_scale", 1.0))
    pre = _fit_length(_audio_preprocess(sr), layout.samples)
    asig: dict[str, Any] = {"kind": "local-audio", "sample_rate": sr}
    if layout.samples is not None:
        asig["samples"] = layout.samples
    if layout.int16 or scale != 1.0:
        asig["input_scale"] = INT16_SCALE if layout.int16 else scale
    clip = (layout.samples or sr) / sr
    ex = ExampleSpec(sample_rate=sr, clip_seconds=clip)
    return (
        pre,
        asig,
        _audio_feed(layout, scale, dtype),
        ex,
        pre([np.zeros(layout.samples or sr, "float32")] * 2),
    )


def _onnx_model(path: Path, req: LoadRequest, opts: dict[str, Any], revision: str) -> LoadedModel:
    import torch

    runner = OnnxRunner(path, opts.get("output"), opts.get("logits_output"))
    layout = infer_layout(path, runner.specs)
    given = opts["modality"] if "modality" in opts["_given"] else None
    modality = check_modality(path, given, layout, runner.specs[0])
    if modality == "text":
        return onnx_text_model(
            path,
            _tokenizer_from(opts, path),
            model_id=req.model_id,
            output=opts.get("output"),
            max_length=opts["max_length"],
            revision=revision,
            runner=runner,
        )
    dtype = _NUMPY_TYPES.get(runner.specs[0].type, np.float32)
    pre, sig, feed, ex, probe = _signal_parts(path, opts, layout, dtype)
    channels_last = layout.layout == "NHWC"

    def forward(batch: tuple) -> ModelOutput:
        x = batch[0].detach().cpu().float().numpy()
        feats, logits = runner.run({runner.inputs[0]: feed(x)})
        f = _pool(torch.from_numpy(np.asarray(feats, dtype=np.float32)), channels_last=channels_last)
        lg = torch.from_numpy(np.asarray(logits, dtype=np.float32)).flatten(1) if logits is not None else None
        return ModelOutput(features=f, logits=lg)

    raw, raw_logits = runner.run({runner.inputs[0]: feed(probe[0].numpy())})
    _check_features(runner, raw, int(probe[0].shape[0]), None)
    dim = int(
        _pool(torch.from_numpy(np.asarray(raw, dtype=np.float32)), channels_last=channels_last).shape[-1]
    )
    _check_features(runner, raw, int(probe[0].shape[0]), dim)
    n_classes = int(np.prod(np.shape(raw_logits)[1:])) if raw_logits is not None else None
    return LoadedModel(
        model_id=req.model_id,
        modality=modality,
        feature_dim=dim,
        num_source_classes=n_classes,
        preprocess_fn=pre,
        forward_fn=forward,
        signature={**sig, "output": runner.output, "file": path.name},
        example=ex,
        runtime="onnx",
        revision=revision,
        sample_rate=int(opts["sample_rate"]) if modality == "audio" else None,
        info={"file": str(path), "logits_kind": _onnx_kind(path, runner.logits_output)},
    )


def _onnx_kind(path: Path, logits_output: str | None) -> str | None:
    from advisor.models.outputs import onnx_output_kind

    return onnx_output_kind(path, logits_output) if logits_output else None
