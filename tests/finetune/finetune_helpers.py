"""Helpers for the fine-tuning tests: tiny torch backbones, synthetic separable data, fake models and datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from advisor.finetune.loop import Split, TrainTask


class TinyBackbone(nn.Module):
    """stem -> 3 blocks (Linear, BatchNorm, ReLU, Dropout) -> LayerNorm: pooled features (N, width)."""

    def __init__(self, d_in: int = 8, width: int = 16, n_blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.1))
                for _ in range(n_blocks)
            ]
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.stem(x)))


def make_backbone(seed: int = 0, **kw) -> TinyBackbone:
    torch.manual_seed(seed)
    return TinyBackbone(**kw)


def blobs(n_per_class: int = 24, n_classes: int = 3, d: int = 8, seed: int = 0, spread: float = 0.6):
    """Gaussian blobs around well-separated class means: an easy, separable problem."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, size=(n_classes, d))
    x = np.concatenate([means[c] + spread * rng.normal(size=(n_per_class, d)) for c in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y.astype(np.int64)


def stack(items: list) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(np.stack(items).astype(np.float32)),)


def jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)


def make_task(
    backbone: nn.Module | None = None,
    *,
    seed: int = 0,
    n_per_class: int = 24,
    n_classes: int = 3,
    augment: bool = True,
) -> TrainTask:
    x, y = blobs(n_per_class, n_classes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    is_val = np.zeros(len(y), dtype=bool)
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        is_val[rng.choice(idx, size=len(idx) // 3, replace=False)] = True
    ids = [f"item{i}" for i in range(len(y))]

    def split(mask: np.ndarray) -> Split:
        return Split(
            items=[x[i] for i in np.flatnonzero(mask)],
            labels=y[mask],
            ids=[ids[i] for i in np.flatnonzero(mask)],
        )

    bb = backbone if backbone is not None else make_backbone(seed)
    return TrainTask(
        backbone=bb,
        feature_dim=bb.norm.normalized_shape[0],
        blocks=list(bb.blocks),
        classes=[f"c{i}" for i in range(n_classes)],
        load=lambda item: item,
        preprocess=stack,
        train=split(~is_val),
        val=split(is_val),
        augment=jitter if augment else None,
    )


@dataclass
class FakeLoadedModel:
    """The parts of advisor.models.LoadedModel that fine-tuning uses."""

    model_id: str
    modality: str
    feature_dim: int
    module: nn.Module | None
    runtime: str = "torch"
    pretrained: bool = True

    def preprocess(self, items: list) -> tuple[torch.Tensor, ...]:
        # Text -> letter counts a..h: "aaab" style texts become separable count vectors.
        rows = [[t.count(ch) for ch in "abcdefgh"] for t in items]
        return (torch.tensor(rows, dtype=torch.float32),)

    def blocks(self) -> list[nn.Module]:
        return list(self.module.blocks) if self.module is not None else []


def text_dataset(root: Path, n_per_class: int = 12, with_splits: bool = False, seed: int = 0):
    """A Dataset-shaped text dataset: classes differ by their dominant letter."""
    rng = np.random.default_rng(seed)
    classes = ["alpha", "beta", "gamma"]
    letters = {"alpha": "a", "beta": "b", "gamma": "c"}
    samples = []
    for c in classes:
        for i in range(n_per_class):
            text = letters[c] * int(rng.integers(4, 8)) + "".join(rng.choice(list("defgh"), size=3))
            split = ("train" if i < n_per_class * 2 // 3 else "val") if with_splits else None
            samples.append(SimpleNamespace(id=f"row:{c}{i}", label=c, path=None, text=text, split=split))
    return SimpleNamespace(
        root=root,
        modality="text",
        samples=samples,
        classes=classes,
        skipped=[],
        fingerprint=f"fake-{n_per_class}-{with_splits}-{seed}",
        layout="manifest",
    )


class TinyCNN(nn.Module):
    """Two conv blocks + global average pool: pooled features (N, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean((2, 3))


@dataclass
class FakeImageModel:
    """An image LoadedModel look-alike: PIL images -> 16x16 normalised tensors -> TinyCNN features."""

    model_id: str = "fake:tinycnn"
    modality: str = "image"
    feature_dim: int = 8
    runtime: str = "torch"
    pretrained: bool = True

    def __post_init__(self) -> None:
        torch.manual_seed(0)
        self.module = TinyCNN()

    def preprocess(self, items: list) -> tuple[torch.Tensor, ...]:
        arr = np.stack([np.asarray(im.convert("RGB").resize((16, 16)), dtype=np.float32) for im in items])
        return (torch.from_numpy((arr - 127.5) / 127.5).permute(0, 3, 1, 2).contiguous(),)

    def blocks(self) -> list[nn.Module]:
        return list(self.module.blocks)


def colour_image_folder(root: Path, n_per_class: int = 8, seed: int = 0) -> Path:
    """class folders red/green/blue of noisy 20x20 PNGs (an easy image problem)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            px = np.clip(np.array(rgb) + rng.normal(0, 40, size=(20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(root / name / f"{i:03d}.png")
    return root


@dataclass
class FakeAudioModel:
    """An audio LoadedModel look-alike: waveforms at 8 kHz -> 8 log-spectrum bands -> TinyBackbone features."""

    model_id: str = "fake:tinyaudio"
    modality: str = "audio"
    feature_dim: int = 16
    runtime: str = "torch"
    pretrained: bool = True
    sample_rate: int = 8000

    def __post_init__(self) -> None:
        self.module = make_backbone(d_in=8, width=16)

    def preprocess(self, items: list) -> tuple[torch.Tensor, ...]:
        rows = []
        for w in items:
            spec = np.abs(np.fft.rfft(np.asarray(w, dtype=np.float32), n=1024))
            rows.append(np.log1p([b.sum() for b in np.array_split(spec, 8)]))
        return (torch.tensor(np.array(rows), dtype=torch.float32),)

    def blocks(self) -> list[nn.Module]:
        return list(self.module.blocks)


def tone_folder(root: Path, n_per_class: int = 8, seed: int = 0) -> Path:
    """class folders low/high of 0.25 s noisy sine tones (WAV, 8 kHz)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(2000) / 8000
    for name, freq in (("low", 300.0), ("high", 2500.0)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            f = freq * rng.uniform(0.9, 1.1)
            wave = 0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=t.shape)
            sf.write(root / name / f"{i:03d}.wav", wave.astype(np.float32), 8000)
    return root
