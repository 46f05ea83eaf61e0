"""TorchScript / torch.export programs and state dicts + ``arch`` of the ``local:`` source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.errors import ModelLoadError, UsageError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest
from advisor.models.ids import ModelId
from advisor.models.local_options import (
    _audio_preprocess,
    _pool,
    _text_preprocess,
    _tokenizer_from,
    image_preprocess,
)


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
    try:
        parsed = ModelId.parse(arch)
        src, name = parsed.source, parsed.ref
    except UsageError:
        src, name = "", arch  # refused below with the accepted forms
    sd = _state_dict_from(path)
    if src == "timm":
        import timm
        from timm.data import resolve_data_config

        from advisor.models.timm_source import image_model_from_timm

        base = timm.create_model(name, pretrained=False)
        num_classes = opts.get("num_classes")
        pretrained_cfg: Any = getattr(base, "pretrained_cfg", None) or {}
        clf = pretrained_cfg.get("classifier")
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
            req,
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
