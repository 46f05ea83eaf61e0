"""One candidate's work as a pure function of a serialisable spec: round trips, executors, the deadline."""

from __future__ import annotations

import json
import signal
import threading
import time

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.recommend.work import (
    CandidateOutcome,
    CandidateSpec,
    CandidateTimeout,
    SerialExecutor,
    WorkContext,
    evaluate_candidate,
    run_with_deadline,
)


def _sleep_forever(*args, **kwargs):
    while True:
        time.sleep(0.05)


def _spec(**kw) -> CandidateSpec:
    base = dict(
        model_id="timm:test_vit",
        data_path="/data/x",
        dataset_fingerprint="fp",
        sample_ids=("a/1.png", "b/2.png"),
        ids_hash="h",
        scores=("logme", "leep"),
        timeout_s=2.5,
    )
    return CandidateSpec(**(base | kw))


def test_spec_round_trips_through_json():
    spec = _spec()
    back = CandidateSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and isinstance(back.sample_ids, tuple) and isinstance(back.scores, tuple)


def test_spec_from_dict_refuses_unknown_and_missing_fields():
    d = _spec().to_dict()
    with pytest.raises(UsageError, match="unknown field"):
        CandidateSpec.from_dict(d | {"colour": "red"})
    del d["dataset_fingerprint"]
    with pytest.raises(UsageError, match="incomplete"):
        CandidateSpec.from_dict(d)


def test_outcome_round_trip_drops_the_in_process_features():
    o = CandidateOutcome(
        "m", ok=True, feature_key="k", feature_dim=3, scores={"logme": {"value": 1.0}}, features=[1]
    )
    back = CandidateOutcome.from_dict(json.loads(json.dumps(o.to_dict())))
    assert back == o and back.features is None and "features" not in o.to_dict()


def test_deadline_in_the_main_thread_interrupts_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    assert run_with_deadline(lambda: 42, 5.0) == 42
    with pytest.raises(CandidateTimeout):
        run_with_deadline(_sleep_forever, 0.2)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_deadline_outside_the_main_thread_uses_a_thread():
    got: dict[str, object] = {}

    def worker() -> None:
        got["value"] = run_with_deadline(lambda: "done", 5.0)
        try:
            run_with_deadline(_sleep_forever, 0.2)
        except CandidateTimeout:
            got["timeout"] = True
        try:
            run_with_deadline(lambda: 1 / 0, 5.0)
        except ZeroDivisionError:
            got["error"] = True

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert got == {"value": "done", "timeout": True, "error": True}


def test_no_limit_calls_directly():
    assert run_with_deadline(lambda: threading.current_thread() is threading.main_thread(), None) is True


def test_a_candidate_past_its_deadline_is_failed_with_a_note(monkeypatch):
    monkeypatch.setattr("advisor.features.extract_features", _sleep_forever)
    spec = _spec(timeout_s=0.3)
    out = evaluate_candidate(spec, context=WorkContext(None, []))
    assert not out.ok and out.error == "timed out after 0.3 s (candidate_timeout_s)"
    assert out.notes == ["timm:test_vit skipped: timed out after 0.3 s (candidate_timeout_s)"]


def test_serial_executor_keeps_order_and_reports_progress(monkeypatch):
    def fake(dataset, model, **kw):
        raise RuntimeError(f"no {model}")

    monkeypatch.setattr("advisor.features.extract_features", fake)
    specs = [_spec(model_id=m, timeout_s=None) for m in ("m1", "m2", "m3")]
    started, done = [], []
    outs = SerialExecutor().run(
        specs,
        context=WorkContext(None, []),
        on_start=lambda i, s: started.append((i, s.model_id)),
        on_done=lambda o: done.append(o.model_id),
    )
    assert [o.model_id for o in outs] == ["m1", "m2", "m3"] == done
    assert started == [(1, "m1"), (2, "m2"), (3, "m3")]
    assert all(not o.ok and o.error == f"RuntimeError: no {o.model_id}" for o in outs)


# ----------------------------------------------------------------------------------------------- end to end
timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 classes x 8 images of 32x32 px whose colour depends on the class; two tiny random local models."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("toy")
    data = root / "shapes"
    rng = np.random.default_rng(0)
    for cls, rgb in {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}.items():
        (data / cls).mkdir(parents=True)
        for i in range(8):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(data / cls / f"{i:02d}.png")
    models = []
    for arch in ("test_vit", "test_efficientnet"):
        torch.manual_seed(0)
        m = timm.create_model(arch, pretrained=False)
        f = root / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:{arch}&input_size=64")
    return data, models


OPTS = dict(device="cpu", folds=3, out=None, bench=False, baselines=False)


def test_model_whose_forward_never_returns_times_out_and_the_others_are_ranked(toy, monkeypatch):
    import advisor
    import advisor.models

    data, models = toy
    advisor.recommend(data, models=models[:1], **OPTS)  # the good model's features are cached: fast below
    real_load = advisor.models.load_model

    def load_hanging(model, *a, **k):
        m = real_load(model, *a, **k)
        if str(model) == models[1]:
            m.forward = _sleep_forever
        return m

    monkeypatch.setattr("advisor.models.load_model", load_hanging)
    before = signal.getsignal(signal.SIGALRM)
    res = advisor.recommend(data, models=models, candidate_timeout_s=10, **OPTS)
    assert [c.model_id for c in res.ranked] == [models[0]]
    hung = res.candidate(models[1])
    assert hung.status == "failed" and hung.rank is None
    assert hung.error == "timed out after 10 s (candidate_timeout_s)"
    assert f"{models[1]} skipped: timed out after 10 s (candidate_timeout_s)" in res.notes
    assert res.config["candidate_timeout_s"] == 10
    assert signal.getsignal(signal.SIGALRM) is before


class JsonRoundTripExecutor:
    """Stands in for a remote executor: only JSON crosses, and the worker loads the dataset itself."""

    def __init__(self) -> None:
        self.specs: list[dict] = []

    def run(self, specs, *, context=None, on_start=None, on_done=None):
        outs = []
        for i, spec in enumerate(specs, 1):
            if on_start:
                on_start(i, spec)
            wire = json.loads(json.dumps(spec.to_dict()))
            self.specs.append(wire)
            o = evaluate_candidate(CandidateSpec.from_dict(wire))  # no context: loads by path + fingerprint
            o = CandidateOutcome.from_dict(json.loads(json.dumps(o.to_dict())))
            if on_done:
                on_done(o)
            outs.append(o)
        return outs


def test_a_serialising_executor_gives_the_same_results_as_the_serial_one(toy, tmp_path, monkeypatch):
    from advisor.recommend.run import RunConfig, run

    data, models = toy
    cfg = RunConfig(data=str(data), models=tuple(models), **OPTS)
    ex = JsonRoundTripExecutor()
    remote = run(cfg, executor=ex)
    assert [s["model_id"] for s in ex.specs] == models and ex.specs[0]["sample_ids"]
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "fresh-cache"))  # recompute everything in-process
    local = run(cfg)
    assert [c.model_id for c in remote.ranked] == [c.model_id for c in local.ranked]
    for a, b in zip(remote.ranked, local.ranked, strict=True):
        assert a.probe["accuracy"] == b.probe["accuracy"]
        assert {k: s["value"] for k, s in a.scores.items()} == {k: s["value"] for k, s in b.scores.items()}
        assert a.cached["features"] is False and b.cached["features"] is False


def test_the_stages_go_through_the_run_task(toy, monkeypatch):
    from advisor.recommend.run import RunConfig, run
    from advisor.tasks import TASKS
    from advisor.tasks.classification import ClassificationTask

    calls: list[str] = []

    class SpyTask(ClassificationTask):
        name = "spy"

        def load_dataset(self, cfg):
            calls.append("load_dataset")
            return super().load_dataset(cfg)

        def select_candidates(self, modality, constraints, catalog=None):
            calls.append("select_candidates")
            return super().select_candidates(modality, constraints, catalog)

        def signals(self, candidate, modality):
            calls.append("signals")
            return super().signals(candidate, modality)

        def evaluate(self, features, labels, **kw):
            calls.append("evaluate")
            return super().evaluate(features, labels, **kw)

        def floors(self, modality):
            calls.append("floors")
            return super().floors(modality)

    monkeypatch.setitem(TASKS._entries, "spy", SpyTask())
    data, models = toy
    res = run(RunConfig(data=str(data), models=tuple(models[:1]), task="spy", **(OPTS | {"baselines": True})))
    assert calls == ["load_dataset", "select_candidates", "signals", "evaluate", "floors", "evaluate"]
    assert res.config["task_effective"] == "spy" and res.config["task"] == "spy"
    assert [c.model_id for c in res.ranked] == models[:1]
