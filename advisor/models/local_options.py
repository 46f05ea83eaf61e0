"""Options of the ``local:`` source (defaults < sidecar JSON < id params) and the shared preprocessing."""

from __future__ import annotations

import json
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
