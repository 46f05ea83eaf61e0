"""The dense benchmark's ground-truth trainers (benchmarks/dense/dense_ft.py) on tiny synthetic feature maps."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from advisor.dense.types import DenseDataset, DenseSample

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "dense"
sys.path.insert(0, str(BENCH))
D = pytest.importorskip("dense_ft")


def _seg_case(n: int, seed: int) -> tuple[list[list[torch.Tensor]], list[np.ndarray]]:
    """Masks of a random square; stride-8 maps whose channel 0 is the mask (+noise), stride-16 maps pure noise."""
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for _ in range(n):
        m = np.zeros((64, 64), dtype=np.int64)
        y, x = rng.integers(0, 32, size=2)
        m[y : y + 32, x : x + 32] = 1
        m[0, :4] = 255  # a few ignored pixels
        f8 = rng.normal(0, 0.3, size=(4, 8, 8)).astype(np.float32)
        f8[0] += (m != 0).reshape(8, 8, 8, 8).mean(axis=(1, 3))
        f16 = rng.normal(0, 1, size=(6, 4, 4)).astype(np.float32)
        maps.append([torch.from_numpy(f8), torch.from_numpy(f16)])
        masks.append(m)
    return maps, masks


def test_segmenter_learns_a_separable_mask(tmp_path: Path) -> None:
    maps, masks = _seg_case(12, 0)
    dec, info = D.train_segmenter(maps[:8], masks[:8], 2, 255, D.TrainSettings(steps=60, lr=1e-2))
    ds = DenseDataset(tmp_path, "segmentation", "demo", ["background", "foreground"], [], ignore_index=255)
    m = D.eval_segmenter(dec, maps[8:], masks[8:], ds)
    assert info["final_loss"] < 0.6  # ln 2 = 0.69 at chance
    assert m["miou"] > 0.7  # chance (all background) is about 0.4
    assert sum(map(sum, m["matrix"])) == 4 * (64 * 64 - 4)  # ignored pixels not scored


def test_det_targets_scale_boxes_and_drop_degenerate(tmp_path: Path) -> None:
    s = DenseSample(
        "a.jpg",
        tmp_path / "a.jpg",
        640,
        480,
        boxes=np.array([[64, 48, 128, 96], [10, 10, 10.5, 40]], dtype=np.float32),
        labels=np.array([2, 1], dtype=np.int64),
    )
    t = D.det_targets([s], (240, 320))[0]
    assert t["boxes"].tolist() == [[32.0, 24.0, 64.0, 48.0]]
    assert t["labels"].tolist() == [2]
