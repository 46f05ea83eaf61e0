"""The ``hf:`` dense source: the entries, tiny random-init builds through each processor's pre/post-processing,
the published architectures' sizes, offline errors without a socket, a fake hub cache loaded offline, OWL-ViT
prompting, and `recommend` naming an hf model offline (no weights: an architecture row; cached: zero-shot)."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from advisor.dense import models_hf
from advisor.dense.models import DenseModel, dense_candidates, dense_info, load_dense_model
from advisor.dense.types import Detections
from advisor.errors import UsageError, WeightsUnavailableOffline

IDS = list(models_hf.ENTRIES)
DET_IDS = [m for m in IDS if models_hf.ENTRIES[m].task == "detection"]
SIZES = ((96, 64), (50, 70))  # (width, height) of the two test images
# published parameter counts (millions) of each checkpoint (papers / hub cards), against the offline architecture
PUBLISHED_M = {
    "hf:facebook/detr-resnet-50": 41.3,
    "hf:PekingU/rtdetr_r18vd": 20.0,
    "hf:hustvl/yolos-tiny": 6.5,
    "hf:microsoft/conditional-detr-resnet-50": 44.0,
    "hf:SenseTime/deformable-detr": 40.0,
    "hf:google/owlvit-base-patch32": 153.0,
    "hf:nvidia/segformer-b0-finetuned-ade-512-512": 3.8,
    "hf:facebook/mask2former-swin-tiny-ade-semantic": 47.0,
    "hf:openmmlab/upernet-convnext-tiny": 60.0,
}


@pytest.fixture(scope="module")
def images():
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for w, h in SIZES]


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    """Offline, an empty Hugging Face cache in tmp_path, and any socket connect an error."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ADVISOR_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_socket(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    return tmp_path / "hf"


def _tiny(model_id, size=(96, 64)):
    return models_hf.load(dense_info(model_id), pretrained=False, device="cpu", input_size=size, tiny=True)


def test_the_entries_carry_label_sets_licences_and_sizes():
    import torchvision.models.detection as det

    infos = {
        i.model_id: i for t in ("detection", "segmentation") for i in dense_candidates(t, include=set(IDS))
    }
    assert set(IDS) <= set(infos) and len(IDS) == 9
    n_classes = {"coco-91": 91, "coco-80": 80, "ade-150": 150, "open": 0}
    for mid in IDS:
        i, e = infos[mid], models_hf.ENTRIES[mid]
        assert i.task == e.task and len(i.classes) == n_classes[i.label_set] and i.license
        assert i.input_size == e.size and min(i.input_size) >= 384 and "post_process" in i.postprocess
    detr = infos["hf:facebook/detr-resnet-50"]
    # torchvision's COCO-91 names: the same ids, "__background__" at 0
    tv = det.SSDLite320_MobileNet_V3_Large_Weights.DEFAULT.meta["categories"]
    assert detr.classes[1:] == tuple(tv[1:]) and detr.classes[0] == "N/A" and detr.classes[12] == "N/A"
    rt = infos["hf:PekingU/rtdetr_r18vd"]
    assert rt.label_set == "coco-80" and rt.classes[0] == "person" and rt.classes[-1] == "toothbrush"
    seg = infos["hf:nvidia/segformer-b0-finetuned-ade-512-512"]
    assert seg.classes[:3] == ("wall", "building", "sky") and seg.classes[12] == "person"
    assert seg.classes[-1] == "flag" and "non-commercial" in seg.license
    assert infos["hf:openmmlab/upernet-convnext-tiny"].license == "MIT"
    owl = infos["hf:google/owlvit-base-patch32"]
    assert owl.label_set == "open" and owl.classes == () and owl.license == "Apache-2.0"
    assert all(e.revision is None or len(e.revision) == 40 for e in models_hf.ENTRIES.values())


def test_license_commercial_drops_the_non_commercial_segformer_and_says_why():
    from advisor.dense.candidates import _excluded_by_license

    seg = "hf:nvidia/segformer-b0-finetuned-ade-512-512"
    kept = {i.model_id for i in dense_candidates("segmentation", license="commercial")}
    assert seg not in kept and "hf:openmmlab/upernet-convnext-tiny" in kept
    assert seg in {i.model_id for i in dense_candidates("segmentation", license=None)}
    (row,) = _excluded_by_license("segmentation", frozenset({seg}), kept, "commercial")
    assert row.model_id == seg and "is non-commercial, and --license commercial" in (row.error or "")
    m2f = "hf:facebook/mask2former-swin-tiny-ade-semantic"  # the hub card states no licence: not cleared
    assert m2f not in kept and m2f in {i.model_id for i in dense_candidates("segmentation", license=None)}
    (row,) = _excluded_by_license("segmentation", frozenset({m2f}), kept, "commercial")
    assert "is unverified, and --license commercial asks for none" in (row.error or "")


def test_the_open_vocabulary_detector_is_a_candidate_only_when_named():
    from advisor.dense.candidates import choose_rows
    from advisor.recommend.config import RunConfig

    owl = "hf:google/owlvit-base-patch32"
    default = choose_rows(
        "detection", ["person", "car"], RunConfig(data="/d", baselines=False, offline=False)
    )
    assert owl not in {r.model_id for r in default}
    named = RunConfig(data="/d", models=(owl,), baselines=False, offline=False)
    (row,) = choose_rows("detection", ["person", "car"], named)
    assert (
        row.model_id == owl and row.role == "zero-shot" and any("open vocabulary" in r for r in row.reasons)
    )


@pytest.mark.parametrize("model_id", IDS)
def test_a_tiny_random_build_predicts_in_each_images_pixels(model_id, images):
    m = _tiny(model_id)
    assert isinstance(m, DenseModel) and m.pretrained is False and 0 < m.n_params < 1_000_000
    if m.label_set == "open":
        m.set_classes(["cat", "dog"])
    m.threshold = 0.0  # random weights score low: keep every box so the boxes are checked
    out = m.predict(images)
    assert len(out) == 2
    for o, (w, h) in zip(out, SIZES, strict=True):
        if m.task == "segmentation":
            assert o.shape == (h, w) and o.dtype == np.int64 and 0 <= o.min() and o.max() < 150
            continue
        assert isinstance(o, Detections) and len(o) > 0 and o.boxes.shape == (len(o), 4)
        assert o.boxes.dtype == np.float32 and o.scores.dtype == np.float32 and o.labels.dtype == np.int64
        assert (o.boxes >= 0).all() and (o.boxes[:, 0::2] <= w).all() and (o.boxes[:, 1::2] <= h).all()
        assert (o.boxes[:, 2:] >= o.boxes[:, :2]).all() and o.labels.max() < len(m.classes)


def test_owlvit_detects_only_the_classes_it_is_prompted_with(images):
    m = _tiny("hf:google/owlvit-base-patch32")
    assert m.input_size == (64, 64)  # its position embeddings fix the size: the override is not taken
    with pytest.raises(UsageError, match="call set_classes"):
        m.predict(images)
    with pytest.raises(UsageError, match="at least one class name"):
        m.set_classes([])
    m.set_classes(["person", "bicycle"])
    m.threshold = 0.0
    dets = m.predict(images)
    assert m.classes == ["person", "bicycle"] and all(len(d) > 0 and d.labels.max() < 2 for d in dets)
    assert {int(v) for d in dets for v in d.labels} <= {0, 1}


@pytest.mark.parametrize("model_id", IDS)
def test_the_offline_architecture_has_the_published_size(model_id):
    m = load_dense_model(model_id, pretrained=False)
    assert m.n_params == pytest.approx(PUBLISHED_M[model_id] * 1e6, rel=0.05)
    assert m.input_size == models_hf.ENTRIES[model_id].size


def test_a_full_random_build_predicts_at_an_overridden_size(images):
    m = load_dense_model("hf:hustvl/yolos-tiny", pretrained=False, input_size=(128, 96))
    assert m.input_size == (128, 96)
    d = m.predict(images[:1])[0]
    assert isinstance(d, Detections) and d.boxes.shape[1] == 4  # random weights: few or no boxes at 0.05


@pytest.mark.parametrize("model_id", IDS)
def test_pretrained_offline_without_the_weights_fails_fast_without_a_socket(model_id, offline):
    assert not dense_info(model_id).pretrained_available_offline
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableOffline, match="not available offline") as e:
        load_dense_model(model_id, pretrained=True)
    assert time.perf_counter() - t0 < 5.0
    assert model_id in e.value.message and models_hf.ENTRIES[model_id].repo in (e.value.hint or "")


def _fake_cache(root, model_id, processor=None):
    """Save a tiny random build of `model_id` where the hub cache keeps the entry's revision (weights, config,
    processor), as a download would have left it."""
    e = models_hf.ENTRIES[model_id]
    m = _tiny(model_id)
    m.net.config.id2label = dict(enumerate(models_hf.LABEL_SET_CLASSES[e.label_set]))
    snap = root / f"models--{e.repo.replace('/', '--')}" / "snapshots" / (e.revision or "0" * 40)
    if e.revision is None:
        (snap.parents[1] / "refs").mkdir(parents=True)
        (snap.parents[1] / "refs" / "main").write_text("0" * 40)
    m.net.save_pretrained(snap)
    (processor or m.image_processor).save_pretrained(snap)
    return snap


@pytest.mark.parametrize("model_id", ["hf:hustvl/yolos-tiny", "hf:openmmlab/upernet-convnext-tiny"])
def test_cached_weights_load_offline_with_the_checkpoints_classes(model_id, offline, images):
    snap = _fake_cache(offline, model_id)
    assert (snap / "model.safetensors").is_file() and dense_info(model_id).pretrained_available_offline
    m = load_dense_model(model_id, pretrained=True)
    e = models_hf.ENTRIES[model_id]
    assert m.pretrained and m.revision == e.revision and m.input_size == (96, 64)
    assert m.classes == [c.strip() for c in models_hf.LABEL_SET_CLASSES[e.label_set]]
    out = m.predict(images)
    assert len(out) == 2 and (m.task == "detection" or out[1].shape == (70, 50))


def test_cached_owlvit_is_prompted_through_the_checkpoints_clip_tokenizer(offline, images):
    import transformers
    from tokenizers import pre_tokenizers

    from advisor.dense.models_hf_arch import build_processor

    chars = sorted(
        pre_tokenizers.ByteLevel.alphabet()
    )  # a byte-level vocabulary without merges, specials last
    vocab = {
        t: i for i, t in enumerate([*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"])
    }
    tok = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    proc = transformers.OwlViTProcessor(image_processor=build_processor("owlvit", (64, 64)), tokenizer=tok)
    _fake_cache(offline, "hf:google/owlvit-base-patch32", processor=proc)
    m = load_dense_model("hf:google/owlvit-base-patch32", pretrained=True)
    assert m.pretrained and type(m.processor).__name__ == "OwlViTProcessor" and m.input_size == (64, 64)
    m.set_classes(["cat", "dog"])
    ids = m._text["input_ids"]
    assert ids.shape == (2, 16) and ids[0, 0] == tok.bos_token_id and int(ids.max()) == tok.eos_token_id
    m.threshold = 0.0
    assert all(len(d) > 0 and d.labels.max() < 2 for d in m.predict(images))


def _coco(root):
    """Six 96x64 images, one box each, classes ``person`` and ``car`` (both in COCO)."""
    from PIL import Image, ImageDraw

    root.mkdir()
    images, anns = [], []
    for i in range(6):
        im = Image.new("RGB", (96, 64), (200, 200, 200))
        x = 10 + 8 * i
        ImageDraw.Draw(im).rectangle([x, 10, x + 30, 50], fill=(30, 60, 200))
        im.save(root / f"im{i}.png")
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 96, "height": 64})
        anns.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [x, 10, 30, 40], "iscrowd": 0}
        )
    cats = [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    (root / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


def test_recommend_offline_keeps_a_named_hf_detector_as_an_architecture_row(offline, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    data = _coco(tmp_path / "det")
    args = ["recommend", str(data), "--models", "hf:hustvl/yolos-tiny", "--offline", "--no-bench"]
    r = CliRunner().invoke(app, [*args, "--format", "json", "--out", str(tmp_path / "run")])
    assert r.exit_code in (0, 1) and "Traceback" not in r.output
    assert not isinstance(r.exception, AssertionError)  # `offline` makes any socket connect an AssertionError
    (row,) = [c for c in json.loads(r.stdout)["candidates"] if c["model_id"] == "hf:hustvl/yolos-tiny"]
    assert row["role"] == "architecture" and row["reasons"] == ["weights not reachable offline"]


def test_recommend_scores_cached_hf_weights_zero_shot_offline(offline, tmp_path, monkeypatch):
    from advisor.api import recommend

    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "cache"))
    _fake_cache(offline, "hf:hustvl/yolos-tiny")
    data = _coco(tmp_path / "det")
    res = recommend(
        data, models=("hf:hustvl/yolos-tiny",), offline=True, bench=False, baselines=False, out=None
    )
    (row,) = res.candidates
    assert row.role == "zero-shot" and row.error is None
    z = row.zero_shot
    assert z["matched"] == {"person": "person", "car": "car"} and z["classes_matched"] == 2
    assert 0.0 <= z["value"] <= 1.0 and z["images"] == 6


def test_zero_shot_prompts_an_open_vocabulary_model_with_the_data_classes(tmp_path, monkeypatch):
    import advisor.dense.models as dense_models
    from advisor.dense.readers import load_dense
    from advisor.dense.results import DenseCandidate
    from advisor.dense.zero_shot import evaluate_zero_shot

    owl = _tiny("hf:google/owlvit-base-patch32")
    monkeypatch.setattr(dense_models, "load_dense_model", lambda *a, **k: owl)
    ds = load_dense(_coco(tmp_path / "det"), task="detection")
    row = DenseCandidate("hf:google/owlvit-base-patch32", "zero-shot")
    evaluate_zero_shot(row, ds)
    assert row.error is None and owl.classes == ["person", "car"]
    assert (
        row.zero_shot["matched"] == {"person": "person", "car": "car"} and 0.0 <= row.zero_shot["value"] <= 1
    )


def test_an_open_vocabulary_row_is_timed_prompted_with_the_data_classes(monkeypatch):
    import advisor.dense.latency as latency
    import advisor.dense.models as dense_models
    from advisor.dense.candidates import measure_row_latency
    from advisor.dense.results import DenseCandidate

    owl = _tiny("hf:google/owlvit-base-patch32")
    monkeypatch.setattr(dense_models, "load_dense_model", lambda *a, **k: owl)
    timed = latency.measure_dense_latency  # the real timing, cut to half a second
    monkeypatch.setattr(latency, "measure_dense_latency", lambda *a, **k: timed(*a, **k, max_time=0.5))
    row = DenseCandidate("hf:google/owlvit-base-patch32", "architecture", pretrained=False)
    measure_row_latency(row, (64, 48), device="cpu", repeats=2, classes=["background", "person", "car"])
    assert row.error is None and owl.classes == ["person", "car"]  # background is not a prompt
    assert row.latency["p50_ms"] > 0 and row.n_params == owl.n_params
