"""The ``hf:`` source: Hugging Face transformers encoders for image, text and audio behind `LoadedModel`.

Pooling (what "the feature vector" means for each modality):

- text: ``AutoModel`` + ``AutoTokenizer``; the pooling, normalisation, maximum length and prompt (``Classification``,
  else the default) the repo's sentence-transformers config declares (`advisor.models.st_settings`), else **the mean of the last hidden states
  over the attention mask** (padding excluded); ``?pooling=mean|cls|max|lasttoken``, ``?normalize=1``,
  ``?max_length=N`` and ``?prompt=...`` override.
- image: ``AutoModel`` + ``AutoImageProcessor``; the model's ``pooler_output`` when it has one (e.g. DINOv2's
  normed CLS token), else the mean over tokens / spatial positions. ``?pooling=cls|mean|pooler`` overrides.
- audio (Wav2Vec2, HuBERT, WavLM, Data2VecAudio, Whisper encoder ...): mean of the last hidden states over the
  valid (non-padded) frames; frame validity is derived from each clip's length.

Weights: ``from_pretrained(..., local_files_only=True)`` when offline, after a cache check that fails in
milliseconds with `WeightsUnavailableOffline`. ``trust_remote_code`` only when the user passes it.
A local folder written by ``save_pretrained`` loads as ``hf:/path/to/dir`` (or ``local:/path/to/dir``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from advisor.errors import ModelLoadError, WeightsUnavailableOffline
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest
from advisor.models.hub import hf_cached_file, is_offline, unavailable_hf
from advisor.models.ids import ModelId
from advisor.models.registry import register_source

AUDIO_MODEL_TYPES = {
    "wav2vec2",
    "wav2vec2-conformer",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
    "sew",
    "sew-d",
    "whisper",
    "audio-spectrogram-transformer",
    "clap_audio_model",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def infer_modality(config: Any) -> str:
    """image | text | audio for a transformers config."""
    mt = getattr(config, "model_type", "") or ""
    if mt in AUDIO_MODEL_TYPES or hasattr(config, "num_mel_bins") or hasattr(config, "conv_dim"):
        return "audio"
    if hasattr(config, "vision_config") or (
        hasattr(config, "num_channels") and not hasattr(config, "vocab_size")
    ):
        return "image"
    if hasattr(config, "image_size") and not hasattr(config, "vocab_size"):
        return "image"
    return "text"


# ------------------------------------------------------------------------------------------------ modules
def _text_module(model: Any, pooling: str, normalize: bool) -> Any:
    import torch
    import torch.nn as nn

    class TextPool(nn.Module):
        """forward(input_ids, attention_mask) -> pooled sentence features."""

        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self.model = m

        def forward(self, input_ids, attention_mask):
            h = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            if pooling == "cls":
                out = h[:, 0]
            elif pooling == "max":  # padding can never win the max
                out = h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(1)
            elif pooling == "lasttoken":  # the last real token, whichever side the tokenizer pads
                pos = torch.arange(h.shape[1], device=h.device).unsqueeze(0) * attention_mask
                out = h[torch.arange(h.shape[0], device=h.device), pos.argmax(1)]
            else:
                out = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            if normalize:
                out = torch.nn.functional.normalize(out, dim=-1)
            return out

    return TextPool(model)


def _image_module(model: Any, pooling: str) -> Any:
    import torch.nn as nn

    class ImagePool(nn.Module):
        """forward(pixel_values) -> pooled image features."""

        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self.model = m

        def forward(self, pixel_values):
            if hasattr(self.model, "get_image_features") and hasattr(self.model, "vision_model"):
                out = self.model.get_image_features(pixel_values=pixel_values)
                return out if not hasattr(out, "pooler_output") else out.pooler_output
            o = self.model(pixel_values=pixel_values)
            pooled = getattr(o, "pooler_output", None)
            if pooling in ("auto", "pooler") and pooled is not None:
                return pooled.flatten(1)
            h = o.last_hidden_state
            if h.dim() == 4:  # conv nets: (N, C, H, W)
                return h.mean((2, 3))
            return h[:, 0] if pooling == "cls" else h.mean(1)

    return ImagePool(model)


def _audio_module(model: Any, is_whisper: bool, pass_mask: bool) -> Any:
    import torch
    import torch.nn as nn

    class AudioPool(nn.Module):
        """forward(inputs, lengths) -> mean over valid frames of the last hidden states.

        ``lengths`` are clip lengths in input samples (or mel frames for Whisper) before padding.
        """

        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self.model = m

        def forward(self, inputs, lengths):
            if is_whisper:
                h = self.model(input_features=inputs).last_hidden_state
            else:
                mask = None
                if pass_mask:
                    idx = torch.arange(inputs.shape[1], device=inputs.device)
                    mask = (idx[None, :] < lengths[:, None]).long()
                h = self.model(input_values=inputs, attention_mask=mask).last_hidden_state
            total_in = inputs.shape[-1]
            frames = torch.ceil(lengths.to(h.dtype) * h.shape[1] / total_in).clamp(1, h.shape[1])
            idx = torch.arange(h.shape[1], device=h.device)
            m = (idx[None, :] < frames[:, None]).to(h.dtype).unsqueeze(-1)
            return (h * m).sum(1) / m.sum(1)

    return AudioPool(model)


def hf_blocks(model: Any) -> list:
    """Transformer layers of a transformers model, input side first (best effort)."""
    for path in (
        "encoder.layer",
        "encoder.layers",
        "layers",
        "h",
        "transformer.layer",
        "encoder.stages",
        "stages",
    ):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return list(obj)
    for child in ("vision_model", "text_model", "base_model"):
        sub = getattr(model, child, None)
        if sub is not None and sub is not model:
            found = hf_blocks(sub)
            if found:
                return found
    return []


# ------------------------------------------------------------------------------------------------ builders
def text_model_from_hf(
    model: Any,
    tokenizer: Any,
    *,
    model_id: str,
    pretrained: bool,
    revision: str | None,
    pooling: str = "mean",
    normalize: bool = False,
    max_length: int | None = None,
    prompt: str | None = None,
    info: dict[str, Any] | None = None,
) -> LoadedModel:
    """Wrap a transformers text encoder + tokenizer as a text `LoadedModel` (mean pooling by default).

    Args:
        pooling: ``mean`` (over the attention mask), ``cls``, ``max`` or ``lasttoken``.
        prompt: prepended to every text (a sentence-transformers default prompt), or None.

    Raises:
        UsageError: an unknown pooling.
    """
    from advisor.errors import check_choice
    from advisor.models.st_settings import SUPPORTED_POOLING

    check_choice(pooling, SUPPORTED_POOLING, f"pooling for {model_id}")
    cfg = model.config
    max_pos = getattr(cfg, "max_position_embeddings", None) or 512
    if max_length is None:
        tml = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
        max_length = min(int(tml) if tml and tml < 100_000 else max_pos, max_pos, 512)
    if tokenizer is not None and getattr(tokenizer, "pad_token", None) is None:
        eos = getattr(tokenizer, "eos_token", None)
        if eos is not None:
            tokenizer.pad_token = eos

    def preprocess(items: list) -> tuple:
        if tokenizer is None:
            raise ModelLoadError(
                f"{model_id}: no tokenizer is available offline, so text cannot be encoded",
                hint="run once with network access so the tokenizer is cached",
            )
        texts = [str(t) if prompt is None else prompt + str(t) for t in items]
        b = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return (b["input_ids"], b["attention_mask"])

    return LoadedModel(
        model_id=model_id,
        modality="text",
        feature_dim=int(cfg.hidden_size),
        preprocess_fn=preprocess,
        signature={
            "kind": "hf-text",
            "tokenizer": type(tokenizer).__name__ if tokenizer is not None else None,
            "vocab_size": getattr(tokenizer, "vocab_size", None) if tokenizer is not None else None,
            "max_length": max_length,
            "pooling": pooling,
            "normalize": normalize,
            **(
                {"prompt": prompt} if prompt is not None else {}
            ),  # keys of prompt-less models stay as they were
        },
        example=ExampleSpec(
            seq_len=min(128, max_length), vocab_size=int(getattr(cfg, "vocab_size", 1000) or 1000)
        ),
        module=_text_module(model, pooling, normalize),
        pretrained=pretrained,
        revision=revision,
        runtime="torch",
        blocks_fn=lambda: hf_blocks(model),
        info={
            "source": "hf",
            "architecture": type(model).__name__,
            "pooling": f"{pooling} over attention mask",
            **(info or {}),
        },
    )


def _image_transform(processor: Any, cfg: Any):
    """(callable PIL list -> tensor, signature dict) from an image processor, or ImageNet defaults."""
    import torch

    if processor is not None:

        def run(items: list):
            return processor(images=items, return_tensors="pt")["pixel_values"]

        sig = {
            k: v
            for k, v in processor.to_dict().items()
            if k
            in (
                "size",
                "crop_size",
                "do_center_crop",
                "image_mean",
                "image_std",
                "resample",
                "rescale_factor",
            )
        }
        sig["processor"] = type(processor).__name__
        size = sig.get("crop_size") or sig.get("size") or {}
        side = (size.get("height") or size.get("shortest_edge")) if isinstance(size, dict) else size
        fallback = getattr(cfg, "image_size", 224) or 224
        return run, sig, int(side) if side else int(fallback)
    from torchvision import transforms as T

    raw_side = getattr(cfg, "image_size", 224)
    img_side = int(raw_side[0] if isinstance(raw_side, (list, tuple)) else raw_side)
    tf = T.Compose([T.Resize((img_side, img_side)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def run_default(items: list):
        return torch.stack([tf(im) for im in items])

    sig_default = {"processor": None, "size": img_side, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    return run_default, sig_default, img_side


def image_model_from_hf(
    model: Any,
    processor: Any,
    *,
    model_id: str,
    pretrained: bool,
    revision: str | None,
    pooling: str = "auto",
) -> LoadedModel:
    """Wrap a transformers vision encoder + image processor as an image `LoadedModel`."""
    import torch

    cfg = model.config
    run, sig, side = _image_transform(processor, getattr(cfg, "vision_config", cfg))
    module = _image_module(model, pooling)
    with torch.inference_mode():
        dim = int(module(torch.zeros(1, 3, side, side)).shape[-1])
    return LoadedModel(
        model_id=model_id,
        modality="image",
        feature_dim=dim,
        preprocess_fn=lambda items: (run(items),),
        signature={"kind": "hf-image", "pooling": pooling, **{k: _jsonable(v) for k, v in sig.items()}},
        example=ExampleSpec(input_size=side),
        module=module,
        pretrained=pretrained,
        revision=revision,
        runtime="torch",
        blocks_fn=lambda: hf_blocks(model),
        info={"source": "hf", "architecture": type(model).__name__, "pooling": pooling},
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if hasattr(v, "value"):
        return v.value
    return v


def audio_model_from_hf(
    model: Any, extractor: Any, *, model_id: str, pretrained: bool, revision: str | None
) -> LoadedModel:
    """Wrap a transformers speech encoder + feature extractor as an audio `LoadedModel` (mean over time)."""
    import numpy as np
    import torch

    cfg = model.config
    is_whisper = getattr(cfg, "model_type", "") == "whisper"
    encoder = model.get_encoder() if is_whisper and hasattr(model, "get_encoder") else model
    if extractor is None:
        if is_whisper:
            from transformers import WhisperFeatureExtractor

            extractor = WhisperFeatureExtractor(feature_size=getattr(cfg, "num_mel_bins", 80))
        else:
            from transformers import Wav2Vec2FeatureExtractor

            extractor = Wav2Vec2FeatureExtractor(
                feature_size=1,
                sampling_rate=16000,
                padding_value=0.0,
                do_normalize=True,
                return_attention_mask=True,
            )
    sr = int(getattr(extractor, "sampling_rate", 16000) or 16000)
    pass_mask = bool(getattr(extractor, "return_attention_mask", False))
    hop = int(getattr(extractor, "hop_length", 160) or 160)

    def preprocess(items: list) -> tuple:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in items]
        if is_whisper:
            feats = extractor(waves, sampling_rate=sr, return_tensors="pt")["input_features"]
            lengths = torch.tensor([max(1, int(np.ceil(len(w) / hop))) for w in waves], dtype=torch.long)
            return (feats, lengths)
        b = extractor(waves, sampling_rate=sr, padding=True, return_tensors="pt")
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        return (b["input_values"], lengths)

    module = _audio_module(encoder, is_whisper, pass_mask)
    return LoadedModel(
        model_id=model_id,
        modality="audio",
        feature_dim=int(getattr(cfg, "d_model", None) or cfg.hidden_size),
        preprocess_fn=preprocess,
        signature={
            "kind": "hf-audio",
            "extractor": type(extractor).__name__,
            "sample_rate": sr,
            "normalize": bool(getattr(extractor, "do_normalize", False)),
            "pooling": "mean over valid frames",
        },
        example=ExampleSpec(sample_rate=sr, clip_seconds=1.0),
        module=module,
        pretrained=pretrained,
        revision=revision,
        runtime="torch",
        blocks_fn=lambda: hf_blocks(encoder),
        sample_rate=sr,
        info={"source": "hf", "architecture": type(model).__name__, "pooling": "mean over valid frames"},
    )


# ------------------------------------------------------------------------------------------------ loading
@lru_cache(maxsize=1)
def _curated_arch_specs() -> dict[str, dict]:
    """``hf_arch`` specs (config class + kwargs) of the curated catalog entries, by model id."""
    import json

    from advisor.catalog.files import CURATED_FILE, read_data_text

    text = read_data_text(CURATED_FILE)
    if not text:
        return {}
    entries = json.loads(text).get("entries", [])
    return {e["id"]: e["hf_arch"] for e in entries if isinstance(e, dict) and e.get("hf_arch")}


def _catalog_config(model_id: str) -> Any:
    """A config built from the catalog's ``hf_arch`` spec (for pretrained=False without a cached config)."""
    spec = _curated_arch_specs().get(ModelId.parse(model_id).base)
    if not spec:
        return None
    import transformers

    cls = getattr(transformers, spec.get("config_class", ""), None)
    return cls(**spec.get("config", {})) if cls is not None else None


def _load_optional(loader: Any, source: str, **kw: Any) -> Any:
    try:
        return loader.from_pretrained(source, **kw)
    except Exception:
        return None


def load_hf_model(
    source: str,
    *,
    model_id: str,
    pretrained: bool,
    offline: bool,
    revision: str | None = None,
    trust_remote_code: bool = False,
    params: dict[str, str] | None = None,
    config: Any = None,
) -> LoadedModel:
    """Load a transformers model from a hub repo id or a local folder and wrap it by modality.

    Args:
        source: repo id (``org/name``) or a local directory.
        model_id: the id to report.
        pretrained: False: ``AutoModel.from_config`` (random weights).
        offline: only read local files.
        revision: hub revision.
        trust_remote_code: allow repo code.
        params: id options (``modality``, ``pooling``, ``normalize``, ``max_length``).
        config: a config to use instead of reading one (pretrained=False from the catalog).
    """
    import torch
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # advisor draws its own progress; keep stderr clean
    params = dict(params or {})
    kw: dict[str, Any] = {
        "revision": revision,
        "local_files_only": offline,
        "trust_remote_code": trust_remote_code,
    }
    try:
        if config is None:
            config = AutoConfig.from_pretrained(source, **kw)
        if pretrained:
            model = AutoModel.from_pretrained(source, config=config, dtype=torch.float32, **kw)
        else:
            model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelLoadError(
                f"{model_id} needs code from its repository to run",
                hint="review the repo, then pass --trust-remote-code (trust_remote_code=True)",
            ) from e
        raise ModelLoadError(f"{model_id}: {str(e).splitlines()[0][:300]}") from e
    except OSError as e:
        if offline:
            raise unavailable_hf(model_id, source, "files missing from the local cache") from e
        raise WeightsUnavailableOffline(
            f"{model_id}: could not fetch from the Hugging Face hub ({str(e).splitlines()[0][:200]})",
            hint="check the network and the repo name, or set HF_HOME to a cache that has it",
        ) from e
    model.eval()
    modality = params.get("modality") or infer_modality(config)
    ident: dict[str, Any] = {"model_id": model_id, "pretrained": pretrained, "revision": revision}
    if modality == "text":
        from transformers import AutoTokenizer

        from advisor.models.st_settings import TextLoaderSettings, read_st_settings, resolve

        repo = (
            read_st_settings(source, revision=revision, offline=offline)
            if pretrained or Path(source).expanduser().is_dir()
            else TextLoaderSettings()
        )
        st = resolve(repo, params)
        return text_model_from_hf(
            model,
            _load_optional(AutoTokenizer, source, **kw),
            pooling=st.pooling,
            normalize=st.normalize,
            max_length=st.max_length,
            prompt=st.prompt,
            info={"loader_settings": st.to_dict()},
            **ident,
        )
    if modality == "image":
        from transformers import AutoImageProcessor

        proc = _load_optional(AutoImageProcessor, source, **kw)
        return image_model_from_hf(model, proc, pooling=params.get("pooling", "auto"), **ident)
    from transformers import AutoFeatureExtractor

    return audio_model_from_hf(model, _load_optional(AutoFeatureExtractor, source, **kw), **ident)


def load_hf_folder(folder: Path, req: LoadRequest) -> LoadedModel:
    """Load a folder written by ``save_pretrained`` (offline, no download) for the request `req`.

    Raises:
        ModelLoadError: the folder's config or weights cannot be loaded.
    """
    return load_hf_model(
        str(folder),
        model_id=req.model_id,
        pretrained=req.pretrained,
        offline=True,
        trust_remote_code=req.trust_remote_code,
        params=req.params,
    )


@register_source("hf")
def load_hf(req: LoadRequest) -> LoadedModel:
    """Load ``hf:<org>/<name>[@revision]`` or ``hf:/local/dir`` (see module docstring)."""
    name = req.name
    local = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) or local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelLoadError(
                f"{req.model_id}: {local} is not a folder saved with save_pretrained (no config.json)",
                hint="point at the folder that holds config.json and the weights",
            )
        return load_hf_folder(local, req)
    mid = req.mid or ModelId.parse(req.model_id)
    repo = mid.name
    revision: str | None = mid.tag or req.params.get("revision") or None
    offline = is_offline(req.offline)
    config = None
    if offline and hf_cached_file(repo, "config.json", revision) is None:
        if req.pretrained:
            raise unavailable_hf(req.model_id, repo, "not in the local Hugging Face cache and offline")
        config = _catalog_config(req.model_id)
        if config is None:
            raise unavailable_hf(
                req.model_id, repo, "its config is not cached and the catalog has no architecture spec"
            )
    return load_hf_model(
        repo,
        model_id=req.model_id,
        pretrained=req.pretrained,
        offline=offline,
        revision=revision,
        trust_remote_code=req.trust_remote_code,
        params=req.params,
        config=config,
    )
