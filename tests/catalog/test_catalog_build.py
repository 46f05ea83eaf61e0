"""The generated catalog equals a rebuild, and its figures equal the instantiated architectures and source tables."""

from __future__ import annotations

import csv

import pytest

from advisor.catalog.build import (
    SOURCES_DIR,
    TIMM_RESULTS,
    curated_entries,
    pretrain_chain,
    timm_entries,
    torchvision_entries,
)
from advisor.catalog.store import load_catalog

TIMM_SAMPLE = [
    "resnet18.a1_in1k",
    "resnet50.a1_in1k",
    "efficientnet_b0.ra_in1k",
    "mobilenetv3_small_100.lamb_in1k",
    "vit_tiny_patch16_224.augreg_in21k_ft_in1k",
    "deit_tiny_patch16_224.fb_in1k",
    "convnext_atto.d2_in1k",
    "regnety_002.pycls_in1k",
    "densenet121.tv_in1k",
    "vgg11.tv_in1k",
    "inception_v3.tv_in1k",
    "ghostnet_100.in1k",
    "mobilevit_xxs.cvnets_in1k",
    "levit_128s.fb_dist_in1k",
    "efficientvit_b0.r224_in1k",
    "resnet10t.c3_in1k",
    "lcnet_050.ra2_in1k",
    "tinynet_e.in1k",
    "mixnet_s.ft_in1k",
    "semnasnet_075.rmsp_in1k",
    "vit_small_patch14_dinov2.lvd142m",
    "swin_tiny_patch4_window7_224.ms_in1k",
]
TV_SAMPLE = [
    "resnet18.IMAGENET1K_V1",
    "mobilenet_v3_small.IMAGENET1K_V1",
    "squeezenet1_0.IMAGENET1K_V1",
    "alexnet.IMAGENET1K_V1",
    "shufflenet_v2_x0_5.IMAGENET1K_V1",
    "mnasnet0_5.IMAGENET1K_V1",
    "efficientnet_b0.IMAGENET1K_V1",
    "regnet_y_400mf.IMAGENET1K_V2",
    "densenet121.IMAGENET1K_V1",
    "googlenet.IMAGENET1K_V1",
]


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_rebuilt_timm_sample_matches_committed(cat):
    rebuilt = timm_entries(only=TIMM_SAMPLE)
    assert len(rebuilt) == len(TIMM_SAMPLE)
    for e in rebuilt:
        assert cat.get(e.id) == e, e.id


def test_rebuilt_torchvision_sample_matches_committed(cat):
    rebuilt = torchvision_entries(only=TV_SAMPLE)
    assert len(rebuilt) == len(TV_SAMPLE)
    for e in rebuilt:
        assert cat.get(e.id) == e, e.id


def test_curated_entries_match_committed(cat):
    for e in curated_entries():
        assert cat.get(e.id) == e, e.id


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", TIMM_SAMPLE[:20])
def test_timm_params_equal_instantiated_architecture(cat, name):
    import timm

    e = cat.get(f"timm:{name}")
    model = timm.create_model(e.architecture, pretrained=False, num_classes=e.num_classes)
    assert e.n_params == _count(model)
    assert e.feature_dim == model.num_features


# torchvision builds GoogLeNet/Inception-v3 with auxiliary heads for training, and drops them when it loads the
# pretrained weights; the published parameter count is of that inference model.
TV_INFERENCE_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}


@pytest.mark.parametrize("name", TV_SAMPLE)
def test_torchvision_params_equal_instantiated_architecture(cat, name):
    import torchvision

    e = cat.get(f"torchvision:{name}")
    model = torchvision.models.get_model(
        e.architecture, weights=None, **TV_INFERENCE_KWARGS.get(e.architecture, {})
    )
    assert e.n_params == _count(model)


def test_published_accuracies_equal_source_tables(cat):
    for fname, dataset in TIMM_RESULTS.items():
        with open(SOURCES_DIR / fname, newline="") as fh:
            rows = {r["model"]: r for r in csv.DictReader(fh)}
        for name in TIMM_SAMPLE:
            if name in rows:
                assert cat.get(f"timm:{name}").metric(dataset, "top1") == float(rows[name]["top1"]), (
                    fname,
                    name,
                )
    with open(SOURCES_DIR / "torchvision-weights.csv", newline="") as fh:
        tv = {f"{r['builder']}.{r['weights']}": r for r in csv.DictReader(fh)}
    for name in TV_SAMPLE:
        e = cat.get(f"torchvision:{name}")
        assert e.imagenet_top1 == float(tv[name]["ImageNet-1K:acc@1"])
        assert e.gmacs == float(tv[name]["gflops"])


def test_published_gmacs_for_reference_models(cat):
    # timm's benchmark tables at the native 224 px input; torchvision's `_ops`, which count multiply-adds.
    assert cat.get("timm:resnet50.a1_in1k").gmacs == pytest.approx(4.11)
    assert cat.get("torchvision:resnet50.IMAGENET1K_V2").gmacs == pytest.approx(4.089)


@pytest.mark.parametrize(
    "tag, chain",
    [
        ("a1_in1k", "imagenet-1k"),
        ("fb_in22k_ft_in1k", "imagenet-22k -> imagenet-1k"),
        ("clip_laion2b_augreg_ft_in12k_in1k", "laion-2b -> imagenet-12k -> imagenet-1k"),
        ("lvd142m", "lvd-142m"),
        ("tv_in1k", "imagenet-1k"),
        ("gluon", None),
    ],
)
def test_pretrain_chain_from_tags(tag, chain):
    assert pretrain_chain(tag) == chain
