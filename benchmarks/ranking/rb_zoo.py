"""Model zoos of the ranking benchmark and their features: packaged pretrained models and random-init controls
through the product (`advisor.models.load_model` + `advisor.features.extract_features` and its cache), and the
no-pretraining floors (raw pixels, TF-IDF, MFCC statistics) computed here and cached as .npz.

Also the catalog priors (published ImageNet top-1, parameter count) each zoo member gets as a baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rb_zoo_extra as X

ASSETS = Path(os.environ.get("ADVISOR_ASSETS", Path(__file__).resolve().parents[3] / "shared" / "assets"))


@dataclass(frozen=True)
class ZooModel:
    """One zoo member.

    Attributes:
        key: display key in tables and results (``pkg:efficientnet_lite0``, ``random:pkg:efficientnet_lite0``,
            ``floor:pixels16``...).
        kind: ``pretrained`` | ``random`` (the architecture with random weights: a negative control) | ``floor``.
        model_id: product model id (pretrained/random), or the floor name.
    """

    key: str
    kind: str
    model_id: str
    prior_top1: float | None = None
    prior_params: float | None = None
    prior_source: str | None = None


def _pre(mid: str) -> ZooModel:
    return ZooModel(mid, "pretrained", mid)


def _coral(stem: str, top1: float | None, n_params: float) -> ZooModel:
    src = X.CORAL_PRIOR_SOURCE if top1 is not None else None
    return ZooModel(X.coral_key(stem), "pretrained", X.coral_key(stem), top1, n_params, src)


def _cifar(depth: int) -> ZooModel:
    n_params = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6}[depth]
    return ZooModel(X.cifar_key(depth), "pretrained", X.cifar_key(depth), None, n_params, None)


def _rand(mid: str) -> ZooModel:
    return ZooModel(f"random:{mid}", "random", mid)


def _floor(name: str) -> ZooModel:
    return ZooModel(f"floor:{name}", "floor", name)


ZOOS: dict[str, list[ZooModel]] = {
    "image": [
        _pre("pkg:efficientnet_lite0"),
        _pre("pkg:efficientnet_lite1"),
        _pre("pkg:efficientnet_lite2"),
        *(_coral(stem, top1, n) for stem, _labels, top1, n in X.CORAL),
        *(_cifar(d) for d in X.CIFAR_DEPTHS),
        _rand("pkg:efficientnet_lite0"),
        _floor("pixels16"),
    ],
    "text": [
        _pre("pkg:all-MiniLM-L6-v2"),
        _pre("pkg:paraphrase-MiniLM-L3-v2"),
        _pre("pkg:wordllama-l2-supercat-256"),
        _rand("pkg:all-MiniLM-L6-v2"),
        _floor("tfidf"),
    ],
    "audio": [
        _pre("pkg:resemblyzer-ge2e"),
        _pre("bench:google-speech-embedding"),
        _rand("pkg:resemblyzer-ge2e"),
        _floor("mfcc"),
    ],
}

SMOKE_IMAGE_ZOO = [
    *(_cifar(d) for d in X.CIFAR_DEPTHS),
    _coral("mobilenet_v1_0.25_128_quant", 41.5, 0.47e6),
    _floor("pixels16"),
]
SMOKE_ZOO = [_pre("pkg:wordllama-l2-supercat-256"), _rand("pkg:wordllama-l2-supercat-256"), _floor("tfidf")]

# Same TF-official weights under another catalog id, for entries that carry no published figure themselves.
PRIOR_ALIASES = {
    "pkg:efficientnet_lite0": "timm:tf_efficientnet_lite0.in1k",
    "pkg:efficientnet_lite1": "timm:tf_efficientnet_lite1.in1k",
    "pkg:efficientnet_lite2": "timm:tf_efficientnet_lite2.in1k",
}


def catalog_prior(m: ZooModel) -> dict:
    """Published ImageNet top-1 (%) and parameter count of a zoo member from the product catalog.

    Random-init controls keep their architecture's parameter count but have no accuracy prior (they are not the
    published weights); floors have neither (0 parameters). A pkg entry without its own figure borrows the figure
    of the same weights under their timm id (`PRIOR_ALIASES`), and says so.
    """
    if m.kind == "floor":
        return {"imagenet_top1": None, "n_params": 0, "prior_source": None}
    if m.prior_params is not None or m.model_id.startswith("bench:"):
        return {"imagenet_top1": m.prior_top1, "n_params": m.prior_params, "prior_source": m.prior_source}
    from advisor.catalog.store import load_catalog

    cat = load_catalog()
    top1, src, n_params = None, None, None
    if m.model_id in cat:
        e = cat.get(m.model_id)
        n_params = e.n_params
        top1 = e.imagenet_top1
        src = m.model_id if top1 is not None else None
    alias = PRIOR_ALIASES.get(m.model_id)
    if top1 is None and alias and alias in cat:
        top1 = cat.get(alias).imagenet_top1
        src = f"{alias} (same TF weights; the pkg entry has no published figure)"
    if m.kind == "random":
        top1, src = None, None
    return {"imagenet_top1": top1, "n_params": n_params, "prior_source": src}


@dataclass
class FeatureBlock:
    """Features of one zoo member on a target's sample pool."""

    ids: list[str]
    features: np.ndarray
    logits: np.ndarray | None
    seconds: float
    cached: bool
    note: str = ""
    cold_seconds: float | None = (
        None  # compute time when the features were first extracted (product cache meta)
    )

    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.ids)}


def _ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\x00".join(ids).encode()).hexdigest()[:16]


def _load_random(model_id: str):
    """The architecture of `model_id` with seeded random weights (seed 0), through the product's model layer."""
    import torch

    from advisor.models import load_model

    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return load_model(model_id, pretrained=False, device="cpu")
    finally:
        torch.random.set_rng_state(state)


def resolve_model(m: ZooModel, cache: Path):
    """What the product is given for a zoo member: a model id (catalog, ``pkg:`` or ``local:``) or a `LoadedModel`."""
    if m.kind == "random":
        return _load_random(m.model_id)
    if m.model_id.startswith("coral:"):
        stem = m.model_id.split(":", 1)[1]
        labels = next(lab for s, lab, _t, _n in X.CORAL if s == stem)
        return X.coral_model_id(ASSETS, stem, labels)
    if m.model_id.startswith("cifar:resnet"):
        return X.cifar_model_id(ASSETS, int(m.model_id.removeprefix("cifar:resnet")), cache)
    if m.model_id == "bench:google-speech-embedding":
        return X.speech_embedding_model(ASSETS)
    return m.model_id


def product_features(target, m: ZooModel, cache: Path, batch_size: int = 32) -> FeatureBlock:
    """Features through the product: `advisor.features.extract_features` (its own cache) when available, else the
    same `LoadedModel.preprocess/forward` loop cached here as .npz."""
    t0 = time.perf_counter()
    hit = _fallback_path(target, m, cache)
    if hit.exists():  # computed earlier by the loop below (the same model layer); reuse
        return _fallback_features(target, m, m.model_id, cache, batch_size, t0)
    pool = target.pool
    model = resolve_model(m, cache)
    try:
        from advisor.features import extract_features
    except ImportError:
        extract_features = None
    if extract_features is not None and os.environ.get("RANKBENCH_FEATURES", "product") == "product":
        fs = extract_features(
            target.dataset,
            model,
            samples=pool,
            device="cpu",
            batch_size=batch_size,
            progress=False,
            offline=True,
            runtime=os.environ.get("RANKBENCH_RUNTIME", "auto"),
        )
        cached = bool((fs.meta or {}).get("cached") or (fs.meta or {}).get("cache_hit"))
        return FeatureBlock(
            list(fs.ids),
            np.asarray(fs.features, np.float32),
            None if fs.logits is None else np.asarray(fs.logits, np.float32),
            time.perf_counter() - t0,
            cached,
            "advisor.features.extract_features, runtime "
            + str(((fs.meta or {}).get("runtime") or {}).get("runtime", "?")),
            cold_seconds=(fs.meta or {}).get("compute_seconds_original")
            or (fs.meta or {}).get("compute_seconds"),
        )
    return _fallback_features(target, m, model, cache, batch_size, t0)


def _fallback_path(target, m: ZooModel, cache: Path) -> Path:
    ids = [s.id for s in target.pool]
    key = hashlib.sha256(json.dumps([target.spec.name, m.key, _ids_hash(ids)]).encode()).hexdigest()[:20]
    return cache / "ranking" / "features" / f"{key}.npz"


def _fallback_features(target, m: ZooModel, model, cache: Path, batch_size: int, t0: float) -> FeatureBlock:
    import torch

    from advisor.data import load_audio, load_image
    from advisor.models import load_model

    pool = target.pool
    ids = [s.id for s in pool]
    path = _fallback_path(target, m, cache)
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return FeatureBlock(
            ids,
            z["features"],
            z["logits"] if "logits" in z.files else None,
            time.perf_counter() - t0,
            True,
            "fallback loop (advisor.features absent)",
        )
    lm = model if not isinstance(model, str) else load_model(model, device="cpu", offline=True)
    feats, logits = [], []
    with torch.inference_mode():
        for i in range(0, len(pool), batch_size):
            chunk = pool[i : i + batch_size]
            if lm.modality == "image":
                items = [load_image(s) for s in chunk]
            elif lm.modality == "audio":
                items = [load_audio(s, lm.sample_rate or 16000) for s in chunk]
            else:
                items = [s.text for s in chunk]
            out = lm.forward(lm.preprocess(items))
            feats.append(out.features.cpu().numpy())
            if out.logits is not None:
                logits.append(out.logits.cpu().numpy())
    f = np.concatenate(feats).astype(np.float32)
    lg = np.concatenate(logits).astype(np.float32) if logits else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, features=f, **({"logits": lg} if lg is not None else {}))
    os.replace(tmp, path)
    return FeatureBlock(
        ids, f, lg, time.perf_counter() - t0, False, "fallback loop (advisor.features absent)"
    )


def _floor_pixels(pool: list) -> np.ndarray:
    from PIL import Image

    from advisor.data import load_image

    rows = []
    for s in pool:
        im = load_image(s).resize((16, 16), Image.Resampling.BILINEAR)
        rows.append(np.asarray(im, dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows)


def _floor_tfidf(pool: list, fit_ids: set[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=4096)
    fit_texts = [s.text for s in pool if s.id in fit_ids]
    vec.fit(fit_texts)
    return vec.transform([s.text for s in pool]).toarray().astype(np.float32)


def _floor_mfcc(pool: list) -> np.ndarray:
    import librosa

    from advisor.data import load_audio

    rows = []
    for s in pool:
        y = load_audio(s, 16000)
        mf = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=20, n_fft=400, hop_length=160)
        rows.append(np.concatenate([mf.mean(1), mf.std(1)]).astype(np.float32))
    return np.stack(rows)


FLOOR_NOTES = {
    "pixels16": "raw pixels: RGB resized to 16x16 (bilinear), /255, 768-d",
    "tfidf": "TF-IDF 1-2-grams, sublinear tf, min_df=2, max 4096 features; vocabulary fitted on the ground-truth "
    "train texts (unlabelled use)",
    "mfcc": "MFCC statistics: 20 MFCCs (librosa, 16 kHz, 25 ms/10 ms), mean and std over time, 40-d",
}


def floor_features(target, m: ZooModel, cache: Path) -> FeatureBlock:
    """A no-pretraining floor on the target's sample pool, cached as .npz under the benchmark cache."""
    t0 = time.perf_counter()
    pool = target.pool
    ids = [s.id for s in pool]
    key = hashlib.sha256(json.dumps([target.spec.name, m.key, _ids_hash(ids), 1]).encode()).hexdigest()[:20]
    path = cache / "ranking" / "floors" / f"{key}.npz"
    if path.exists():
        return FeatureBlock(
            ids, np.load(path)["features"], None, time.perf_counter() - t0, True, FLOOR_NOTES[m.model_id]
        )
    if m.model_id == "pixels16":
        f = _floor_pixels(pool)
    elif m.model_id == "tfidf":
        f = _floor_tfidf(pool, {s.id for fold in target.folds for s in fold.train})
    elif m.model_id == "mfcc":
        f = _floor_mfcc(pool)
    else:
        raise KeyError(m.model_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, features=f)
    os.replace(tmp, path)
    return FeatureBlock(ids, f, None, time.perf_counter() - t0, False, FLOOR_NOTES[m.model_id])


def features_for(target, m: ZooModel, cache: Path) -> FeatureBlock:
    """Features of one zoo member on a prepared target (floors here, models through the product)."""
    if m.kind == "floor":
        return floor_features(target, m, cache)
    return product_features(target, m, cache)
