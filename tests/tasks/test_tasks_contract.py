"""The task registry, and the contract every registered task keeps (parametrized over all of them)."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.tasks import TASKS, FeatureTask, Registry, Task, detect_task, get_task, task_names


def test_registry_refuses_duplicates_and_suggests_on_a_miss():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)

    @reg.register("beta")
    def beta() -> int:
        return 2

    assert reg.get("alpha") == 1 and reg.get("beta") is beta and reg.names() == ["alpha", "beta"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 3)
    with pytest.raises(UsageError) as e:
        reg.get("alpah")
    assert e.value.message == "unknown widget 'alpah'"
    assert e.value.hint == "did you mean alpha? valid: alpha, beta"


def test_registry_loads_lazy_entries_on_first_get():
    reg: Registry[object] = Registry("thing")
    reg.register("dumps", "json:dumps")
    import json

    assert "dumps" in reg and reg.get("dumps") is json.dumps


def test_unknown_task_is_a_usage_error_listing_the_valid_ones():
    from advisor.recommend.run import RunConfig

    with pytest.raises(UsageError) as e:
        RunConfig(data="x", task="detektion")
    assert "unknown task 'detektion'" in str(e.value) and "valid: " + ", ".join(task_names()) in str(e.value)
    assert RunConfig(data="x", task="classification").task == "classification"


def test_candidate_timeout_must_be_positive():
    from advisor.recommend.run import RunConfig

    with pytest.raises(UsageError, match="--candidate-timeout"):
        RunConfig(data="x", candidate_timeout_s=0)


@pytest.fixture()
def folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, cls in enumerate(("a", "b", "c")):
        (tmp_path / cls).mkdir()
        for i in range(4):
            arr = np.clip(rng.normal(60 * k + 40, 20, size=(16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    return tmp_path


def test_classification_is_detected_for_a_class_folder(folder):
    assert detect_task(folder) == "classification"


def _coco_folder(root, polygons=False):
    import json

    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(3):
        Image.fromarray(np.full((32, 40, 3), 60 * i, dtype=np.uint8)).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 32})
        anns.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [2, 2, 10, 8], "iscrowd": 0}
        )
        if polygons:  # instance segmentation: a mask per object
            anns[-1]["segmentation"] = [[2, 2, 12, 2, 12, 10, 2, 10]]
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    (root / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


def _mask_folder(root):
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 50 * i, dtype=np.uint8)).save(root / "images" / f"{i}.png")
        m = np.zeros((16, 16), dtype=np.uint8)
        m[4:10, 4:10] = 1 + i % 2
        Image.fromarray(m, mode="L").save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    return root


@pytest.mark.parametrize("name", TASKS.names())
def test_task_contract(name, folder, tmp_path_factory):
    """Every task: the core protocol, recognition of its own data (and not of the others'), its reader."""
    from advisor.recommend.run import RunConfig

    task = get_task(name)
    assert isinstance(task, Task) and task.name == name and task.summary
    own = {
        "classification": folder,
        "detection": _coco_folder(tmp_path_factory.mktemp("det")),
        "instance-segmentation": _coco_folder(tmp_path_factory.mktemp("inst"), polygons=True),
        "segmentation": _mask_folder(tmp_path_factory.mktemp("seg")),
    }
    assert set(own) == set(TASKS.names())  # a new task adds its example here
    assert detect_task(own[name]) == name
    ds = task.load_dataset(RunConfig(data=str(own[name])))
    assert len(ds.samples) == (12 if name == "classification" else 3) and len(ds.classes) >= 2
    sections = task.report_sections()
    assert sections and all(isinstance(s, str) and s for s in sections)
    assert callable(task.run)


@pytest.mark.parametrize("name", [n for n in TASKS.names() if isinstance(get_task(n), FeatureTask)])
def test_feature_task_contract(name, folder):
    """Tasks run by the frozen-feature stages: candidate filter, signals, evaluation and floors."""
    from advisor.recommend.candidates import Candidate, Constraints, Exclusion
    from advisor.recommend.results import CandidateResult
    from advisor.recommend.run import RunConfig

    task = get_task(name)
    assert isinstance(task, FeatureTask)
    ds = task.load_dataset(RunConfig(data=str(folder)))
    assert ds.fingerprint and ds.modality
    cands, excluded = task.select_candidates(ds.modality, Constraints(offline=True))
    assert all(isinstance(c, Candidate) for c in cands) and all(isinstance(x, Exclusion) for x in excluded)
    cr = CandidateResult("m", scores={"s": {"value": 0.5, "higher_is_better": False}}, n_params=10**6)
    sig = task.signals(cr, ds.modality)
    assert sig and all(isinstance(v, float) and (h is None or isinstance(h, bool)) for v, h in sig.values())
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.normal(size=(30, 4)) + 3.0 * y[:, None]
    res = task.evaluate(x.astype(np.float32), y, folds=3, seed=0, device="cpu")
    assert 0.9 <= res.accuracy <= 1.0 and res.to_dict()["accuracy"] == res.accuracy
    floors = task.floors(ds.modality)
    assert all(isinstance(f, str) for f in floors)
    for f in floors:
        fx, kept = task.floor_features(f, ds.samples)
        assert fx.shape[0] == len(kept) == len(ds.samples)


def test_cli_task_option_reaches_the_config(folder):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    r = CliRunner().invoke(app, ["recommend", str(folder), "--task", "clasification", "--dry-run"])
    assert r.exit_code == 2
    assert "unknown task 'clasification'" in r.output and "did you mean classification?" in r.output
