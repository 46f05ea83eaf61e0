"""The ``local:`` source: the user's own model files (ONNX, TorchScript, torch.export, safetensors + architecture).

Id syntax: ``local:<path>[?key=value&...]`` or just the path. The file kind comes from the suffix:

- ``.onnx``             onnxruntime (CPU, or CUDA when available). The modality comes from the graph's input
  signature (`advisor.models.onnx_layout`): ``[N, 3, H, W]`` / ``[N, H, W, 3]`` float is an image, ``[N, samples]``
  float or int16 (or ``[N, 1, samples]``) a waveform, int64 ``input_ids`` text; anything else, or a ``modality``
  that contradicts the graph, is refused with the input's shape. Fixed batch sizes (batch-1 exports) are looped;
  an output that does not give one feature vector per input is refused.
- ``.tflite``           image models via ai-edge-litert (batch 1, looped); features from the last global-pool
  tensor (or ``feature_tensor``), logits from the graph output; ``labels`` names a label file.
- ``.pt2``              a ``torch.export`` program (``torch.export.load``), called as ``module(*batch)``. The archive
  is inspected first and refused when it holds pickled payloads or native code (`pt2_pickle_findings`), unless
  ``trust_pickle=1`` is in the id or ``ADVISOR_TRUST_PICKLE=1`` is set (never taken from a sidecar).
- ``.pt`` / ``.ts`` / ``.jit`` / ``.pth``  TorchScript (``torch.jit.load``); with ``arch=...`` instead a state
  dict read with ``torch.load(weights_only=True)`` (tensors only, nothing is unpickled).
- ``.safetensors``      weights for ``arch=timm:<name>`` / ``torchvision:<name>`` / ``hf:<folder with config.json>``.
- a folder with ``config.json`` (``save_pretrained``)  Hugging Face transformers.

Options (``?key=value`` in the id, else a sidecar JSON ``<file>.json`` or ``<file stem>.json``, else defaults):

====================  =====================================================  ======================
key                   meaning                                                default
====================  =====================================================  ======================
``modality``          image | text | audio                                   graph's (ONNX); image
``arch``              architecture for weights-only files                    (required for weights)
``input_size``        image side in pixels                                   224
``mean``, ``std``     normalisation (comma list or JSON list)                ImageNet
``interpolation``     resize filter                                          bilinear
``crop_pct``          centre-crop fraction                                   0.875
``sample_rate``       audio Hz                                               16000
``input_scale``       ONNX float audio input multiplier (32767: int16 range) 1 (int16: 32767)
``tokenizer``         folder with a Hugging Face tokenizer (text)            (required for text)
``max_length``        text token limit                                       256
``output``            ONNX output holding the features                      first output
``logits_output``     ONNX output holding class logits                       none
``feature_tensor``    TFLite tensor holding the features                     last global pool
``labels``            label file (one name per line) of the source head      none
``num_classes``       head size for ``arch`` weights                         from the weights
====================  =====================================================  ======================

Features of shape ``(N, T, D)`` are mean-pooled over T (masked for text); ``(N, C, H, W)`` over H, W.

The code lives in `local_options` (options, preprocessing), `local_onnx`, `local_tflite`, `local_torch`,
`pt2_safety` (``.pt2`` inspection) and `local_content` (content keys); the names stay importable from here.
"""

from __future__ import annotations

from pathlib import Path

from advisor.errors import ModelLoadError
from advisor.models.base import LoadedModel, LoadRequest
from advisor.models.local_content import (
    _file_revision,
    content_fingerprint,
    file_sha256,
    local_content_key,
)
from advisor.models.local_onnx import OnnxRunner, _onnx_model, onnx_text_model
from advisor.models.local_options import DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, image_preprocess, read_options
from advisor.models.local_tflite import _tflite_model
from advisor.models.local_torch import _arch_model, _program_model
from advisor.models.pt2_safety import TRUST_PICKLE_ENV, _load_pt2, pt2_pickle_findings
from advisor.models.registry import register_source

__all__ = [
    "DEFAULTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TRUST_PICKLE_ENV",
    "OnnxRunner",
    "content_fingerprint",
    "file_sha256",
    "image_preprocess",
    "load_local",
    "local_content_key",
    "onnx_text_model",
    "pt2_pickle_findings",
    "read_options",
]


@register_source("local")
def load_local(req: LoadRequest) -> LoadedModel:
    """Load a local model file or folder (see module docstring)."""
    import torch

    path = Path(req.name).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"model file {path} does not exist", hint="check the path (ids look like local:/path/model.onnx)"
        )
    if path.is_dir():
        if (path / "config.json").is_file():
            from advisor.models.hf_source import load_hf_folder

            return load_hf_folder(path, req)
        raise ModelLoadError(
            f"{path} is a folder without config.json",
            hint="point at a model file or a save_pretrained folder",
        )
    opts = read_options(path, req.params)
    revision = _file_revision(path)
    suffix = path.suffix.lower()
    if opts.get("arch"):
        return _arch_model(path, req, opts, revision)
    if suffix == ".onnx":
        return _onnx_model(path, req, opts, revision)
    if suffix == ".tflite":
        return _tflite_model(path, req, opts, revision)
    if suffix == ".pt2":
        try:
            program = _load_pt2(path, req.params)
        except ModelLoadError:
            raise
        except Exception as e:
            # torch's unpickling errors advise weights_only=False (running the file's code): never pass that on.
            detail = "" if "weights_only" in str(e) else f": {e}"
            raise ModelLoadError(
                f"{path}: not a torch.export program ({type(e).__name__}{detail})".splitlines()[0][:500],
                hint="save it with torch.export.save",
            ) from e
        return _program_model(program.module(), path, req, opts, revision, "export")
    if suffix in (".pt", ".ts", ".jit", ".pth"):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise ModelLoadError(
                f"{path}: not a TorchScript archive ({type(e).__name__})",
                hint="for a state dict, add ?arch=timm:<name> (read with weights_only=True), or export with "
                "torch.jit.script/torch.export",
            ) from e
        return _program_model(module, path, req, opts, revision, "torchscript")
    if suffix in (".safetensors", ".bin"):
        raise ModelLoadError(
            f"{path}: a weights file needs an architecture",
            hint='add ?arch=timm:resnet18 to the id, or {"arch": "timm:resnet18"} in a sidecar JSON',
        )
    raise ModelLoadError(
        f"{path}: unsupported model file type {suffix!r}",
        hint="use .onnx, .pt2, .pt (TorchScript) or .safetensors",
    )
