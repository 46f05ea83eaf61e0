"""TFLite files of the ``local:`` source (ai-edge-litert): image classifiers/embedders, batch 1 looped."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import ModelLoadError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest, ModelOutput

# LiteRT's C++ logger prints this on every model load, straight to file descriptor 2 (no Python switch)
_LITERT_NOISE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def allocate_quietly(interpreter: Any) -> None:
    """``interpreter.allocate_tensors()`` without LiteRT's per-load INFO line on stderr; whatever else the C++
    side writes to stderr meanwhile (a warning, another thread's output) is written back, in order."""
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            interpreter.allocate_tensors()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [ln for ln in tmp.read().splitlines(keepends=True) if ln.strip() != _LITERT_NOISE]
            if rest:
                os.write(2, b"".join(rest))


def _tflite_kind(it: Any, out: dict) -> str:
    from advisor.models.outputs import tflite_output_kind

    return tflite_output_kind(it, out)


# ------------------------------------------------------------------------------------------------ TFLite
def _find_feature_tensor(details: list[dict], wanted: str | None) -> dict | None:
    """The tensor to read features from: `wanted` by name, else the last global-pool tensor (N,1,1,C)/(N,C)."""
    if wanted:
        for t in details:
            if t["name"] == wanted:
                return t
        raise ModelLoadError(f"the TFLite graph has no tensor {wanted!r}", hint="check feature_tensor=")
    pools = [
        t
        for t in details
        if ("avgpool" in t["name"].lower() or "globalpool" in t["name"].lower())
        and len(t["shape"]) in (2, 4)
        and int(np.prod(t["shape"][1:-1])) == 1
        and t["shape"][-1] > 1
    ]
    return pools[-1] if pools else None


def check_tflite_input(path: Path, inp: dict) -> None:
    """Refuse a TFLite graph whose input is not one NHWC 3-channel image (the only kind advisor feeds it).

    Raises:
        ModelLoadError: names the file and the input's shape and dtype.
    """
    shape = [int(d) for d in inp.get("shape", [])]
    if len(shape) != 4 or shape[-1] != 3:
        dtype = getattr(inp.get("dtype"), "__name__", str(inp.get("dtype")))
        raise ModelLoadError(
            f"{path}: the TFLite graph's input {inp.get('name', '?')!r} {shape} {dtype} is not an image "
            "[1, H, W, 3]; only image TFLite models are supported",
            hint="for audio or text, convert the model to ONNX (advisor reads the modality from its inputs)",
        )


def _tflite_forward(
    it: Any, inp: dict, out: dict, feat: dict, feat_is_output: bool, opts: dict[str, Any]
) -> Callable[[tuple], ModelOutput]:
    """forward(batch of uint8 (N, 3, H, W)) -> features (and logits) by invoking the interpreter per image."""
    import threading

    import torch

    quantized = inp["dtype"] == np.uint8
    mean, std = np.asarray(opts["mean"], np.float32), np.asarray(opts["std"], np.float32)

    def dequant(t: dict) -> np.ndarray:
        v = it.get_tensor(t["index"])
        scale, zp = t["quantization"]
        return (v.astype(np.float32) - zp) * scale if scale else v.astype(np.float32)

    lock = threading.Lock()  # one interpreter: its tensors are shared state

    def forward(batch: tuple) -> ModelOutput:
        x = batch[0].detach().cpu()
        feats, logits = [], []
        with lock:
            for img in x:
                a = img.permute(1, 2, 0).numpy()
                a = a.astype(np.uint8) if quantized else (a.astype(np.float32) / 255.0 - mean) / std
                it.set_tensor(inp["index"], a[None])
                it.invoke()
                feats.append(dequant(feat).reshape(-1))
                if not feat_is_output:
                    logits.append(dequant(out).reshape(-1))
        f = torch.from_numpy(np.stack(feats))
        return ModelOutput(features=f, logits=torch.from_numpy(np.stack(logits)) if logits else None)

    return forward


def _read_labels(path: Path, labels: Any) -> list[str] | None:
    """Class names from a label file (one per line), or None when no file is named."""
    if not labels:
        return None
    file = Path(str(labels)).expanduser()
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ModelLoadError(
            f"{path}: the label file {file} is not readable ({type(e).__name__})",
            hint="fix labels= in the id or the sidecar JSON (one class name per line)",
        ) from e
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _tflite_model(path: Path, req: LoadRequest, opts: dict[str, Any], revision: str) -> LoadedModel:
    """A TFLite image classifier/embedder (batch 1, looped) via ai-edge-litert; features from its pooled tensor."""
    import torch

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ModelLoadError(
            f"{path}: TFLite models need ai-edge-litert", hint="pip install ai-edge-litert"
        ) from e
    if opts["modality"] != "image":
        raise ModelLoadError(
            f"{path}: only image TFLite models are supported", hint="use ONNX for text/audio"
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preserve_all_tensors is needed to read the pooled layer
        it = Interpreter(
            model_path=str(path), experimental_preserve_all_tensors=True, num_threads=os.cpu_count() or 1
        )
    allocate_quietly(it)
    inp = it.get_input_details()[0]
    check_tflite_input(path, inp)
    out = it.get_output_details()[0]
    feat = _find_feature_tensor(it.get_tensor_details(), opts.get("feature_tensor"))
    feat_is_output = feat is None or feat["index"] == out["index"]
    if feat is None:
        feat = out
    side = int(inp["shape"][1])
    quantized = inp["dtype"] == np.uint8
    from torchvision import transforms as T

    # TF-slim evaluation: central crop (crop_pct) then resize; uint8 inputs carry their own scale/zero point.
    tf = T.Compose([T.Resize(int(round(side / opts["crop_pct"]))), T.CenterCrop(side), T.PILToTensor()])

    def preprocess(items: list) -> tuple:
        return (torch.stack([tf(im) for im in items]),)  # uint8 (N, 3, H, W)

    forward = _tflite_forward(it, inp, out, feat, feat_is_output, opts)
    labels = _read_labels(path, opts.get("labels"))
    n_out = int(np.prod(out["shape"][1:]))
    return LoadedModel(
        model_id=req.model_id,
        modality="image",
        feature_dim=int(np.prod(feat["shape"][1:])),
        num_source_classes=None if feat_is_output else n_out,
        preprocess_fn=preprocess,
        forward_fn=forward,
        signature={
            "kind": "tflite-image",
            "input_size": side,
            "crop_pct": opts["crop_pct"],
            "quantized_input": bool(quantized),
            "feature_tensor": feat["name"],
            "file": path.name,
        },
        example=ExampleSpec(input_size=side),
        runtime="tflite",
        revision=revision,
        source_classes=labels if labels and not feat_is_output and len(labels) == n_out else None,
        info={
            "file": str(path),
            "feature_tensor": feat["name"],
            "logits_kind": None if feat_is_output else _tflite_kind(it, out),
        },
    )
