"""Options of the ``local:`` source (defaults < sidecar JSON < id params) and the shared preprocessing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.errors import ModelLoadError, UsageError

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


def _read_sidecar(path: Path) -> tuple[Path | None, dict[str, Any]]:
    """The sidecar JSON next to a model file (``<file>.json``, else ``<stem>.json``) and its object, if any."""
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
            return side, data
    return None, {}


def _fix_types(opts: dict[str, Any], where: Callable[[str], str]) -> None:
    """Numbers and mean/std tuples from strings, JSON or lists; a bad value names ``where(key)`` (sidecar or id)."""
    key = ""
    try:
        for key in ("input_size", "sample_rate", "max_length", "num_classes"):
            if key in opts and opts[key] is not None and not isinstance(opts[key], (list, tuple)):
                opts[key] = int(opts[key])
        for key in ("mean", "std"):
            v = opts[key]
            if isinstance(v, str):
                v = json.loads(v) if v.strip().startswith("[") else [float(x) for x in v.split(",")]
            opts[key] = tuple(float(x) for x in v)
        key = "crop_pct"
        opts["crop_pct"] = float(opts["crop_pct"])
        if "input_scale" in opts:
            key = "input_scale"
            opts["input_scale"] = float(opts["input_scale"])
    except (TypeError, ValueError) as e:
        raise ModelLoadError(
            f"{where(key)}: {key} = {opts.get(key)!r} is not a valid value ({type(e).__name__})",
            hint="numbers for sizes and rates; mean/std as a list such as [0.5, 0.5, 0.5]",
        ) from e
    std, mean = opts["std"], opts["mean"]
    bad_std = not std or not all(s > 0 and math.isfinite(s) for s in std)
    if bad_std or not all(math.isfinite(m) for m in mean):
        raise ModelLoadError(
            f"{where('std' if bad_std else 'mean')}: std must be positive and finite and mean finite (got mean={list(mean)}, std={list(std)}); "
            "a zero std would make every feature NaN",
            hint="set std to the normalisation the model was trained with, e.g. [0.229, 0.224, 0.225]",
        )


def read_options(path: Path, params: dict[str, str]) -> dict[str, Any]:
    """Merge defaults < sidecar JSON (``<file>.json`` or ``<stem>.json``) < id params, with types fixed.

    Raises:
        ModelLoadError: the sidecar is unreadable, or a value (in the sidecar or the id) is invalid, e.g. a zero,
            negative or NaN ``std``; the message names the sidecar (or the model file, for id options).
        UsageError: an unknown modality.
    """
    opts: dict[str, Any] = dict(DEFAULTS)
    side, data = _read_sidecar(path)
    opts.update(data)
    opts.update(params)

    def where(key: str) -> str:
        if key in params or side is None or key not in data:
            return f"{path} ({key}= in the id)" if key in params else str(path)
        return f"{side} (sidecar of {path.name})"

    _fix_types(opts, where)
    if opts["modality"] not in ("image", "text", "audio"):
        raise UsageError(f"{path}: modality must be image, text or audio, not {opts['modality']!r}")
    opts["_given"] = set(data) | set(params)
    return opts


def _pool(x: Any, mask: Any = None, *, channels_last: bool = False) -> Any:
    """Pool a model output to (N, D): mean over tokens/time (masked) or spatial positions.

    Rank-4 outputs are (N, C, H, W), or (N, H, W, C) with `channels_last` (graphs that take NHWC images).
    """
    import torch

    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.mean((1, 2)) if channels_last else x.mean((2, 3))
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


def _text_preprocess(tok: Any, max_length: int, pad_to: int | None = None):
    """Tokenise to (input_ids, attention_mask): padded to the longest text, or to `pad_to` tokens (fixed graphs)."""
    padding: bool | str = "max_length" if pad_to else True
    limit = pad_to or max_length

    def run(items: list) -> tuple:
        b = tok(
            [str(t) for t in items], padding=padding, truncation=True, max_length=limit, return_tensors="pt"
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
