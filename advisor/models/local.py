"""The ``local:`` source: the user's own model files (ONNX, TorchScript, torch.export, safetensors + architecture).

Id syntax: ``local:<path>[?key=value&...]`` or just the path. The file kind comes from the suffix:

- ``.onnx``             onnxruntime (CPU, or CUDA when available). The graph's first input takes the batch.
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
``modality``          image | text | audio                                   image
``arch``              architecture for weights-only files                    (required for weights)
``input_size``        image side in pixels                                   224
``mean``, ``std``     normalisation (comma list or JSON list)                ImageNet
``interpolation``     resize filter                                          bilinear
``crop_pct``          centre-crop fraction                                   0.875
``sample_rate``       audio Hz                                               16000
``tokenizer``         folder with a Hugging Face tokenizer (text)            (required for text)
``max_length``        text token limit                                       256
``output``            ONNX output holding the features                      first output
``logits_output``     ONNX output holding class logits                       none
``feature_tensor``    TFLite tensor holding the features                     last global pool
``labels``            label file (one name per line) of the source head      none
``num_classes``       head size for ``arch`` weights                         from the weights
====================  =====================================================  ======================

Features of shape ``(N, T, D)`` are mean-pooled over T (masked for text); ``(N, C, H, W)`` over H, W.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import ModelLoadError, UsageError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest, ModelOutput
from advisor.models.registry import register_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULTS: dict[str, Any] = {
    "modality": "image",
    "input_size": 224,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "sample_rate": 16000,
    "max_length": 256,
}


def read_options(path: Path, params: dict[str, str]) -> dict[str, Any]:
    """Merge defaults < sidecar JSON (``<file>.json`` or ``<stem>.json``) < id params, with types fixed."""
    opts: dict[str, Any] = dict(DEFAULTS)
    given: set[str] = set()
    for side in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if side.is_file() and side != path:
            try:
                data = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise ModelLoadError(
                    f"{side}: sidecar JSON is not readable ({e})", hint="fix or remove the file"
                ) from e
            if not isinstance(data, dict):
                raise ModelLoadError(
                    f"{side}: sidecar JSON must be an object", hint='e.g. {"modality": "image"}'
                )
            opts.update(data)
            given.update(data)
            break
    opts.update(params)
    given.update(params)
    for key in ("input_size", "sample_rate", "max_length", "num_classes"):
        if key in opts and opts[key] is not None and not isinstance(opts[key], (list, tuple)):
            opts[key] = int(opts[key])
    for key in ("mean", "std"):
        v = opts[key]
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else [float(x) for x in v.split(",")]
        opts[key] = tuple(float(x) for x in v)
    opts["crop_pct"] = float(opts["crop_pct"])
    if opts["modality"] not in ("image", "text", "audio"):
        raise UsageError(f"{path}: modality must be image, text or audio, not {opts['modality']!r}")
    opts["_given"] = given
    return opts


def _pool(x: Any, mask: Any = None) -> Any:
    """Pool a model output to (N, D): mean over tokens/time (masked) or spatial positions."""
    import torch

    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.mean((2, 3))
    if x.dim() == 3:
        if mask is not None and mask.shape[:2] == x.shape[:2]:
            m = mask.unsqueeze(-1).to(x.dtype)
            return (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return x.mean(1)
    return torch.flatten(x, 1)


def image_preprocess(opts: dict[str, Any]):
    """(fn PIL list -> (tensor,), signature) from local options, using timm's eval transform."""
    from timm.data import create_transform

    side = opts["input_size"]
    cfg = {
        "input_size": (3, side, side),
        "interpolation": opts["interpolation"],
        "mean": opts["mean"],
        "std": opts["std"],
        "crop_pct": opts["crop_pct"],
        "crop_mode": "center",
    }
    from advisor.models.timm_source import fast_image_preprocess

    tf = create_transform(**cfg, is_training=False)
    sig = {"kind": "local-image", **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
    return fast_image_preprocess(tf), sig


def _tokenizer_from(opts: dict[str, Any], path: Path):
    tok_dir = opts.get("tokenizer")
    if not tok_dir:
        raise ModelLoadError(
            f"{path}: a text model needs a tokenizer",
            hint='add ?tokenizer=/path/to/tokenizer_dir to the id or "tokenizer" to the sidecar JSON',
        )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(tok_dir).expanduser()), local_files_only=True)


def _text_preprocess(tok: Any, max_length: int):
    def run(items: list) -> tuple:
        b = tok(
            [str(t) for t in items], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return (b["input_ids"], b["attention_mask"])

    return run


def _audio_preprocess(sample_rate: int):
    import numpy as np
    import torch

    def run(items: list) -> tuple:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in items]
        n = max(len(w) for w in waves)
        x = torch.zeros(len(waves), n)
        for i, w in enumerate(waves):
            x[i, : len(w)] = torch.from_numpy(w)
        return (x, torch.tensor([len(w) for w in waves], dtype=torch.long))

    return run


# ------------------------------------------------------------------------------------------------ ONNX
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
    it.allocate_tensors()
    inp = it.get_input_details()[0]
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

    def dequant(t: dict) -> np.ndarray:
        v = it.get_tensor(t["index"])
        scale, zp = t["quantization"]
        return (v.astype(np.float32) - zp) * scale if scale else v.astype(np.float32)

    lock = __import__("threading").Lock()

    def forward(batch: tuple) -> ModelOutput:
        x = batch[0].detach().cpu()
        feats, logits = [], []
        with lock:
            for img in x:
                a = img.permute(1, 2, 0).numpy()
                if quantized:
                    a = a.astype(np.uint8)
                else:
                    a = (a.astype(np.float32) / 255.0 - np.asarray(opts["mean"], np.float32)) / np.asarray(
                        opts["std"], np.float32
                    )
                it.set_tensor(inp["index"], a[None])
                it.invoke()
                feats.append(dequant(feat).reshape(-1))
                if not feat_is_output:
                    logits.append(dequant(out).reshape(-1))
        f = torch.from_numpy(np.stack(feats))
        return ModelOutput(features=f, logits=torch.from_numpy(np.stack(logits)) if logits else None)

    labels = None
    if opts.get("labels"):
        labels = [
            ln.strip() for ln in Path(str(opts["labels"])).expanduser().read_text().splitlines() if ln.strip()
        ]
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


# ------------------------------------------------------------------------------------------------ torch programs
def _program_model(
    module: Any, path: Path, req: LoadRequest, opts: dict[str, Any], revision: str, runtime: str
):
    import torch
    import torch.nn as nn

    class Pooled(nn.Module):
        """forward(*batch) -> pooled features of a scripted/exported program."""

        def __init__(self, m: Any, pass_mask: bool) -> None:
            super().__init__()
            self.m = m
            self.pass_mask = pass_mask

        def forward(self, *batch):
            out = self.m(*batch) if self.pass_mask else self.m(batch[0])
            if isinstance(out, (tuple, list)):
                out = out[0]
            elif isinstance(out, dict):
                out = next(iter(out.values()))
            return _pool(out, batch[1] if len(batch) > 1 and self.pass_mask else None)

        def train(self, mode: bool = True):
            # torch.export programs refuse train()/eval(); they are inference graphs already.
            self.training = mode
            if runtime != "export":
                self.m.train(mode)
            return self

    modality = opts["modality"]
    if modality == "image":
        pre, sig = image_preprocess(opts)
    elif modality == "text":
        pre = _text_preprocess(_tokenizer_from(opts, path), opts["max_length"])
        sig = {
            "kind": "local-text",
            "max_length": opts["max_length"],
            "tokenizer": str(opts.get("tokenizer")),
        }
    else:
        pre = _audio_preprocess(opts["sample_rate"])
        sig = {"kind": "local-audio", "sample_rate": opts["sample_rate"]}
    wrapped = Pooled(module, pass_mask=modality == "text")
    side = opts["input_size"]
    ex = ExampleSpec(input_size=side, sample_rate=opts["sample_rate"])
    lm = LoadedModel(
        model_id=req.model_id,
        modality=modality,
        feature_dim=1,
        preprocess_fn=pre,
        signature={**sig, "file": path.name},
        example=ex,
        module=wrapped,
        runtime=runtime,
        revision=revision,
        sample_rate=opts["sample_rate"] if modality == "audio" else None,
        info={"file": str(path)},
    )
    with torch.inference_mode():
        lm.feature_dim = int(lm.forward(lm.example_batch(1)).features.shape[-1])
    return lm


def _state_dict_from(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(
            f"{path}: not a plain tensor checkpoint; advisor never unpickles arbitrary objects ({type(e).__name__})",
            hint="save the weights with safetensors (safetensors.torch.save_file(model.state_dict(), ...))",
        ) from e
    for key in ("state_dict", "model", "model_state"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _arch_model(path: Path, req: LoadRequest, opts: dict[str, Any], revision: str) -> LoadedModel:
    arch = str(opts["arch"])
    src, _, name = arch.partition(":")
    sd = _state_dict_from(path)
    if src == "timm":
        import timm
        from timm.data import resolve_data_config

        from advisor.models.timm_source import image_model_from_timm

        base = timm.create_model(name, pretrained=False)
        num_classes = opts.get("num_classes")
        clf = base.pretrained_cfg.get("classifier") if hasattr(base, "pretrained_cfg") else None
        if num_classes is None and clf and f"{clf}.weight" in sd:
            num_classes = int(sd[f"{clf}.weight"].shape[0])
        model = (
            timm.create_model(name, pretrained=False, num_classes=num_classes)
            if num_classes is not None
            else base
        )
        _load_strict(model, sd, path, arch)
        data_cfg = resolve_data_config({}, model=model)
        if any(k in opts["_given"] for k in ("input_size", "mean", "std")):
            data_cfg.update(
                input_size=(3, opts["input_size"], opts["input_size"]), mean=opts["mean"], std=opts["std"]
            )
        return image_model_from_timm(
            model,
            model_id=req.model_id,
            data_cfg=data_cfg,
            pretrained=True,
            revision=revision,
            info={"source": "local", "file": str(path), "architecture": arch},
        )
    if src == "torchvision":
        from torchvision.models import get_model, get_model_weights

        from advisor.models.torchvision_source import wrap_torchvision

        last_linear = [k for k, v in sd.items() if k.endswith(".weight") and v.dim() == 2]
        kw = {"num_classes": int(opts["num_classes"])} if opts.get("num_classes") else {}
        if not kw and last_linear:
            kw["num_classes"] = int(sd[last_linear[-1]].shape[0])
        model = get_model(name, weights=None, **kw)
        _load_strict(model, sd, path, arch)
        weights = get_model_weights(name).DEFAULT
        return wrap_torchvision(model, weights, model_id=req.model_id, pretrained=True, revision=revision)
    if src == "hf":
        from advisor.models.hf_source import load_hf_model

        cfg_dir = Path(name).expanduser() if name else path.parent
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(cfg_dir), local_files_only=True)
        lm = load_hf_model(
            str(cfg_dir),
            model_id=req.model_id,
            pretrained=False,
            offline=True,
            params=req.params,
            config=config,
        )
        inner = lm.module.model
        missing, unexpected = inner.load_state_dict(sd, strict=False)
        if missing:
            raise ModelLoadError(f"{path}: weights do not fit {arch} (missing {missing[:3]}...)")
        lm.pretrained, lm.revision = True, revision
        return lm
    raise UsageError(
        f"{path}: unknown arch {arch!r}", hint="use arch=timm:<name>, torchvision:<name> or hf:<config dir>"
    )


def _load_strict(model: Any, sd: dict, path: Path, arch: str) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0][:200]
        raise ModelLoadError(
            f"{path}: the weights do not fit {arch} ({first})",
            hint="check arch= (and num_classes=) match the checkpoint",
        ) from e


# ------------------------------------------------------------------------------------------------ pt2 safety
# torch.export.load unpickles parts of an archive: weights/constants flagged ``use_pickle`` go through
# ``torch.load(weights_only=False)``, opaque constants through ``pickle.loads``, and torch.save blobs (sample
# inputs, legacy weight files) fall back to ``weights_only=False`` when the safe load fails. AOTInductor members
# are native libraries that get dlopen-ed. Any of these runs code from the file, so the archive is inspected first.
TRUST_PICKLE_ENV = "ADVISOR_TRUST_PICKLE"
_PICKLE_SUFFIXES = (".pkl", ".pickle")
_NATIVE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia/")


def _trust_pickle(params: dict[str, str]) -> bool:
    """True when the user asked to load pickled payloads: ``?trust_pickle=1`` in the id or ADVISOR_TRUST_PICKLE=1.

    Never read from a sidecar JSON: a sidecar travels with the (possibly hostile) model file.
    """
    vals = (params.get("trust_pickle"), os.environ.get(TRUST_PICKLE_ENV))
    return any(str(v).strip().lower() in ("1", "true", "yes") for v in vals if v is not None)


def _safe_torch_blob(blob: bytes) -> bool:
    """Whether a torch.save blob loads with ``weights_only=True`` (torch's restricted, code-free unpickler)."""
    import io
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unsupported protocol" noise for blobs that are refused anyway
            torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def _looks_pickled(blob: bytes) -> bool:
    """A raw pickle stream (protocol 2+ header) or a torch.save zip (which holds a ``data.pkl``)."""
    return (len(blob) > 1 and blob[0] == 0x80 and 2 <= blob[1] <= 5) or blob[:4] == b"PK\x03\x04"


def pt2_pickle_findings(data: bytes) -> list[str]:
    """What in a ``.pt2`` archive would be unpickled (or run as native code) by ``torch.export.load``.

    Args:
        data: the archive's bytes.

    Returns:
        Short descriptions of the offending members; empty when the archive holds only JSON, raw tensor bytes
        and torch.save blobs that load with ``weights_only=True``.

    Raises:
        ModelLoadError: the bytes are not a zip archive.
    """
    import io
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ModelLoadError("not a torch.export archive (not a zip file)") from e
    names = zf.namelist()
    # New archives keep everything under one root folder (the file's stem); 2.7-era ones are flat.
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    root = next(iter(roots)) + "/" if len(roots) == 1 and all("/" in n for n in names) else ""
    findings: list[str] = []
    raw: set[str] = set()  # members the configs already account for (raw tensor bytes, or reported above)
    for n in names:
        rel = n[len(root) :]
        if not (rel.endswith("_config.json") and rel.startswith(("data/weights/", "data/constants/"))):
            continue
        try:
            cfg = json.loads(zf.read(n).decode("utf-8")).get("config", {})
        except (ValueError, UnicodeDecodeError, AttributeError):
            findings.append(f"{rel} is not valid JSON")
            continue
        folder = rel.rsplit("/", 1)[0] + "/"
        for fqn, meta in cfg.items() if isinstance(cfg, dict) else []:
            meta = meta if isinstance(meta, dict) else {}
            pname = str(meta.get("path_name", ""))
            if meta.get("use_pickle") or pname.startswith(("custom_obj", "opaque_obj")):
                findings.append(f"pickled {folder.split('/')[1].rstrip('s')} {fqn!r} ({folder}{pname})")
                raw.add(folder + pname)  # reported once, here
            elif pname:
                raw.add(folder + pname)
    for n in names:
        rel = n[len(root) :]
        if rel.startswith("models/") and rel.endswith(".json") or rel == "serialized_exported_program.json":
            try:
                findings += _graph_findings(rel, json.loads(zf.read(n).decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                findings.append(f"{rel} is not valid JSON")
            continue
        if n.endswith("/") or rel in raw or rel.endswith(".json"):
            continue
        if rel.startswith(_NATIVE_DIRS):
            findings.append(f"compiled native code ({rel})")
        elif rel.lower().endswith(_PICKLE_SUFFIXES):
            findings.append(f"pickle member {rel}")
        else:
            blob = zf.read(n)
            if _looks_pickled(blob) and not _safe_torch_blob(blob):
                findings.append(f"{rel} needs a full unpickle")
    return findings


# Besides pickles, the graph JSON reaches code: sympy.sympify (an eval) of every expression string, ``exec`` of
# ``guards_code`` when the module is built, and call targets looked up by attribute walk from ``torch`` (where
# ``torch.os.system`` resolves). Each is held to the grammar torch.export itself writes.
_SYMPY_NAMES = frozenset(
    (
        "Symbol Integer Rational Float Mul Add Pow Max Min Abs Mod Eq Ne Lt Le Gt Ge StrictLessThan StrictGreaterThan "
        "LessThan GreaterThan Equality Unequality And Or Not Piecewise ExprCondPair true false True False None oo nan "
        "zoo Infinity NegativeInfinity Half One Zero NegativeOne sqrt floor ceiling FloorDiv ModularIndexing Where "
        "PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift IsNonOverlappingAndDenseIndicator TruncToFloat "
        "TruncToInt RoundToInt RoundDecimal ToFloat FloatPow PowByNatural FloatTrueDiv IntTrueDiv IsNonOverlapping "
        "BitwiseFn_bitwise_and BitwiseFn_bitwise_or OpaqueUnaryFn_sqrt OpaqueUnaryFn_log2 Identity "
        "positive negative integer nonnegative nonpositive real finite infinite zero nonzero even odd prime commutative"
    ).split()
)
_SYMPY_TOKEN = re.compile(
    r"\s+|'[A-Za-z_][A-Za-z0-9_]*'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|[-+*/%(),=<>!&|~^]"
)
_GUARD_TOKEN = re.compile(
    r"\s+|L\['[A-Za-z_][A-Za-z0-9_]*'\]|\.(?:size|stride|storage_offset|dim)\(\)|\[\d+\]|\d+|"
    r"\b(?:and|or|not|True|False)\b|==|!=|<=|>=|//|[-+*%<>()]"
)
_BAD_OPERATOR = frozenset({"attrgetter", "itemgetter", "methodcaller", "call"})


def _grammar_ok(text: str, token: re.Pattern[str], names: frozenset[str] | None) -> bool:
    pos = 0
    while pos < len(text):
        m = token.match(text, pos)
        if m is None:
            return False
        tok = m.group(0)
        if names is not None and (tok[0].isalpha() or tok[0] == "_") and tok not in names:
            if not re.fullmatch(r"[a-z]{1,4}\d+", tok):  # a bare symbol name such as s77 or u0
                return False
        pos = m.end()
    return True


def _target_ok(target: str) -> bool:
    parts = target.split(".")
    if target.startswith("#") or (parts[0] == "torch" and len(parts) > 2 and parts[1] == "ops"):
        return not any(p.startswith("__") for p in parts)
    if parts[0] in ("_operator", "math") and len(parts) == 2:
        return not parts[1].startswith("_") and parts[1] not in _BAD_OPERATOR
    return parts[0] == "torch" and len(parts) == 2 and parts[1].lstrip("_").startswith("sym_")


def _graph_findings(rel: str, doc: Any) -> list[str]:
    """Expression strings, guard code and call targets in a graph JSON that fall outside torch.export's grammar."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "expr_str" and isinstance(v, str) and not _grammar_ok(v, _SYMPY_TOKEN, _SYMPY_NAMES):
                    found.append(f"an expression that would be evaluated ({rel}: {v[:60]!r})")
                elif k == "target" and isinstance(v, str) and not _target_ok(v):
                    found.append(f"a call to {v[:60]!r} ({rel})")
                elif k == "guards_code" and isinstance(v, list):
                    for g in v:
                        if not (isinstance(g, str) and _grammar_ok(g, _GUARD_TOKEN, None)):
                            found.append(f"guard code that would be executed ({rel}: {str(g)[:60]!r})")
                elif k == "range_constraints" and isinstance(v, dict):
                    for key in v:
                        if not _grammar_ok(str(key), _SYMPY_TOKEN, _SYMPY_NAMES):
                            found.append(f"an expression that would be evaluated ({rel}: {str(key)[:60]!r})")
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return found


def _load_pt2(path: Path, params: dict[str, str]) -> Any:
    """``torch.export.load`` of an archive that was inspected first (see `pt2_pickle_findings`).

    The bytes are read once and the same bytes are checked and loaded, so the file cannot change in between.
    """
    import io

    import torch

    data = path.read_bytes()
    try:
        findings = pt2_pickle_findings(data)
    except ModelLoadError as e:
        raise ModelLoadError(f"{path}: {e.message}", hint="save it with torch.export.save") from e
    if findings and not _trust_pickle(params):
        more = f" and {len(findings) - 2} more" if len(findings) > 2 else ""
        raise ModelLoadError(
            f"{path}: refused: the archive holds payloads that would run code when loaded "
            f"({'; '.join(findings[:2])}{more})",
            hint="re-export it from plain tensors with torch.export.save, or convert it to ONNX; only for a file "
            f"you made yourself, add ?trust_pickle=1 to the id or set {TRUST_PICKLE_ENV}=1",
        )
    return torch.export.load(io.BytesIO(data))


# ------------------------------------------------------------------------------------------------ content keys
_HASH_MEMO: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised in-process and on disk by (path, inode, size, mtime_ns, ctime_ns).

    ctime cannot be set back by the user (``touch -r`` restores only mtime), so any rewrite is hashed again.
    """
    import hashlib

    from advisor.io import atomic_write_json, stable_hash
    from advisor.paths import cache_dir

    p = path.expanduser().resolve()
    st = p.stat()
    memo_key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo_key in _HASH_MEMO:
        return _HASH_MEMO[memo_key]
    disk = cache_dir("file-hashes") / f"{stable_hash(list(memo_key), length=32)}.json"
    try:
        digest = str(json.loads(disk.read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        try:
            atomic_write_json(disk, {"path": str(p), "sha256": digest})
        except OSError:
            pass  # a read-only cache only costs a rehash next time
    _HASH_MEMO[memo_key] = digest
    return digest


def _sidecar_of(path: Path) -> Path | None:
    for side in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if side.is_file() and side != path:
            return side
    return None


def content_fingerprint(path: Path) -> dict[str, Any]:
    """What a local model's features depend on in its files: the model file's and the sidecar's sha256.

    A folder (``save_pretrained``) is fingerprinted by the names and hashes of the files in it.
    """
    path = path.expanduser()
    if path.is_dir():
        files = sorted(q for q in path.rglob("*") if q.is_file())
        return {"files": {str(q.relative_to(path)): file_sha256(q) for q in files}}
    side = _sidecar_of(path)
    return {"sha256": file_sha256(path), "sidecar_sha256": file_sha256(side) if side else None}


def local_content_key(model_id: str) -> dict[str, Any] | None:
    """`content_fingerprint` for a ``local:`` id whose file exists, else None (not local, or missing)."""
    from advisor.models.registry import parse_model_id

    try:
        source, name, _ = parse_model_id(model_id)
    except UsageError:
        return None
    if source != "local":
        return None
    path = Path(name).expanduser()
    if not path.exists():
        return None
    try:
        return content_fingerprint(path)
    except OSError:
        return None


def _file_revision(path: Path) -> str:
    fp = content_fingerprint(path)
    side = fp.get("sidecar_sha256")
    return f"{path.name}:sha256:{fp['sha256'][:16]}" + (f":sidecar:{side[:16]}" if side else "")


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
            from advisor.models.hf_source import load_hf_model

            return load_hf_model(
                str(path),
                model_id=req.model_id,
                pretrained=req.pretrained,
                offline=True,
                trust_remote_code=req.trust_remote_code,
                params=req.params,
            )
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
