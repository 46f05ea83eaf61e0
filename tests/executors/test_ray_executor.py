"""`RayExecutor` on a local Ray instance: the same ranking as the serial executor, failures isolated, privacy.

Skipped when Ray is not installed (CI does not install the ``ray`` extra). Ray's servers listen on every network
interface whatever address they are given, so the Ray tests run only inside a private network namespace that has
nothing but the loopback interface: `test_ray_tests_pass_in_a_loopback_only_namespace` re-runs this file under
``unshare -rn`` (``lo`` brought up) and skips, with the reason, where such a namespace cannot be made. By hand:

    unshare -rn sh -c 'ip link set lo up && ADVISOR_TEST_NETNS=1 python3 -m pytest -q tests/executors/test_ray_executor.py'
"""  # noqa: E501

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
timm = pytest.importorskip("timm")

from advisor.executors.ray_executor import RayExecutor  # noqa: E402
from advisor.executors.scratch import remote_work  # noqa: E402
from advisor.recommend.work import CandidateOutcome, CandidateSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
INNER = os.environ.get("ADVISOR_TEST_NETNS") == "1"
INNER_TESTS = 7  # the tests below that run inside the namespace
in_netns = pytest.mark.skipif(
    not INNER, reason="runs inside a loopback-only network namespace (see the module docstring)"
)
NETNS = ["unshare", "-rn", "sh", "-c"]


def _can_make_a_namespace() -> bool:
    try:
        return subprocess.run([*NETNS, "ip link set lo up"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(INNER, reason="already inside the namespace")
def test_ray_tests_pass_in_a_loopback_only_namespace():
    if not _can_make_a_namespace():
        pytest.skip("cannot make a private network namespace here (`unshare -rn` failed)")
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$1"'
    r = subprocess.run(
        [*NETNS, script, sys.executable, str(Path(__file__))],
        cwd=REPO,
        env=os.environ | {"ADVISOR_TEST_NETNS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert re.search(rf"\b{INNER_TESTS} passed\b", r.stdout), r.stdout[-2000:]


# ----------------------------------------------------------------------------------------------- fixtures
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


@pytest.fixture(scope="module")
def ray_up():
    """One local Ray instance for the tests below (started as `RayExecutor` starts one)."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the stubs below travel by value
    with RayExecutor(num_cpus=2).session() as r:
        yield r


# eager, not the default auto: the runtime choice is a timed speed decision, and trials that run
# side by side can time differently, so the figures compared below would not be bit-identical
OPTS = dict(device="cpu", folds=3, out=None, bench=False, baselines=False, runtime="eager")
TIMING_KEYS = {"seconds", "timings"}


def _figures(res) -> list[dict]:
    """The ranked candidates' records without wall-clock timings (which no two runs share)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMING_KEYS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return [strip(c.to_dict()) for c in res.ranked]


# ----------------------------------------------------------------------------------------------- in the namespace
@in_netns
def test_recommend_on_ray_ranks_as_serial_and_leaves_no_ray_running(toy, tmp_path, monkeypatch):
    from advisor import api

    data, models = toy
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "serial-cache"))
    serial = api.recommend(data, models=models, executor="serial", **OPTS)
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "ray-cache"))
    ex = RayExecutor(num_cpus=2)
    on_ray = api.recommend(data, models=models, executor=ex, **OPTS)
    assert [c.model_id for c in on_ray.ranked] == [c.model_id for c in serial.ranked] and len(
        serial.ranked
    ) == 2
    assert _figures(on_ray) == _figures(serial)  # features, scores, signals and probes: the same numbers
    assert all(c.cached["features"] is False for c in on_ray.ranked)  # computed in the tasks, not here
    # the driver wrote the tasks' features into its cache: one entry and one index file per model
    assert len(list((tmp_path / "ray-cache" / "features" / "index").glob("*.json"))) == 2
    assert ex.startup_s is not None and ex.startup_s > 0 and not ray.is_initialized()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"


def _node_bench(model_id: str, settings: dict) -> dict:
    """Stands in for `remote_bench`: says which node ran it."""
    import ray as _ray

    node = _ray.get_runtime_context().get_node_id()
    return {
        "record": {"latency_ms_p50": 1.0, "node": node},
        "error": None,
        "hardware": {"hostname_hash": node},
    }


@in_netns
def test_a_two_node_cluster_places_benchmarks_only_on_the_benchmark_slot_node():
    from ray.cluster_utils import Cluster

    from advisor.executors.ray_bench import has_bench_slots, run_benches
    from advisor.recommend.config import RunConfig

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        ray.init(address=cluster.address, logging_level="WARNING")
        assert not has_bench_slots(ray)  # the head offers no slot
        slot = cluster.add_node(num_cpus=1, resources={"advisor_bench": 1})
        cluster.wait_for_nodes()
        assert has_bench_slots(ray)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        got = run_benches(ray, ["a", "b", "c"], RunConfig(data="x"), fn=_node_bench)
        assert sorted(got) == ["a", "b", "c"]
        assert {r["node"] for r in got.values()} == {slot.node_id}
        assert all(r["hardware"]["hostname_hash"] == slot.node_id for r in got.values())
    finally:
        ray.shutdown()
        cluster.shutdown()


@in_netns
def test_ray_binds_loopback_without_usage_stats_or_dashboard(ray_up):
    from ray._common.usage import usage_lib

    assert [name for _, name in socket.if_nameindex()] == ["lo"]  # the namespace: nothing else to reach
    assert usage_lib.usage_stats_enabled() is False
    assert [n["NodeManagerAddress"] for n in ray_up.nodes()] == ["127.0.0.1"]
    assert ray_up.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert not ray_up._private.worker.global_worker.node.address_info.get("webui_url")


def _stub_work(spec: dict, threads=None) -> dict:
    """Stands in for `remote_work`: the model id says what the task does."""
    m = spec["model_id"]
    if m == "raises":
        raise RuntimeError("boom in the task")
    if m.startswith("crash:"):  # the worker dies each time; a marker file per attempt counts the retries
        marker = Path(m.split(":", 1)[1])
        marker.mkdir(exist_ok=True)
        (marker / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        os._exit(3)
    if m == "hangs":
        time.sleep(120)
    time.sleep(0.5 if m == "good-slow" else 0.0)  # the first spec finishes after the second one
    blas = os.environ.get("OPENBLAS_NUM_THREADS")  # as many as the driver's torch threads, like torch's own
    out = CandidateOutcome(
        m, ok=True, feature_key=None, notes=[f"{m} done", f"threads {threads} blas {blas}"]
    )
    return {"outcome": out.to_dict(), "files": {f"probes/stub-{m}.json": b'{"v": 1}'}}


def _spec(model_id: str, timeout_s: float | None = None) -> CandidateSpec:
    return CandidateSpec(model_id, "/nowhere", "fp", ("a",), "h", timeout_s=timeout_s)


@in_netns
def test_failed_crashed_and_hung_tasks_fail_alone_and_results_come_in_spec_order(ray_up, tmp_path):
    from advisor.paths import cache_root

    crash = tmp_path / "attempts"
    specs = [_spec("good-slow"), _spec("raises"), _spec(f"crash:{crash}"), _spec("hangs", 0.5), _spec("good")]
    ex = RayExecutor(max_retries=1, grace_s=0.5, work=_stub_work)
    started, done = [], []
    t0 = time.monotonic()
    outs = ex.run(specs, on_start=lambda i, s: started.append(i), on_done=lambda o: done.append(o.model_id))
    assert time.monotonic() - t0 < 60  # the hung task was cancelled, not waited for
    assert [o.model_id for o in outs] == [s.model_id for s in specs] == done
    assert sorted(started) == [1, 2, 3, 4, 5]
    ok = {o.model_id: o.ok for o in outs}
    assert ok == {"good-slow": True, "raises": False, f"crash:{crash}": False, "hangs": False, "good": True}
    assert outs[1].error == "RuntimeError: boom in the task"
    assert outs[1].notes == ["raises skipped: RuntimeError: boom in the task"]
    assert outs[2].error.startswith("task lost (WorkerCrashedError")
    assert len(list(crash.iterdir())) == 2  # one attempt and one retry
    assert outs[3].error == "timed out after 0.5 s (candidate_timeout_s)"
    import torch

    want = f"threads {torch.get_num_threads()} blas {torch.get_num_threads()}"
    assert [outs[0].notes, outs[4].notes] == [["good-slow done", want], ["good done", want]]
    # the driver, not the task, wrote the successful tasks' files into the cache
    assert sorted(p.name for p in (cache_root() / "probes").glob("stub-*")) == [
        "stub-good-slow.json",
        "stub-good.json",
    ]


def _work_with_a_broken_model(spec: dict, threads=None) -> dict:
    if "test_efficientnet" in spec["model_id"]:
        raise ValueError("broken loader")
    return remote_work(spec, threads)


@in_netns
def test_a_task_that_raises_fails_only_its_candidate_in_a_run(toy, ray_up):
    from advisor import api

    data, models = toy
    res = api.recommend(data, models=models, executor=RayExecutor(work=_work_with_a_broken_model), **OPTS)
    assert [c.model_id for c in res.ranked] == [models[0]]
    bad = res.candidate(models[1])
    assert bad.status == "failed" and bad.error == "ValueError: broken loader" and bad.rank is None
    assert f"{models[1]} skipped: ValueError: broken loader" in res.notes
    assert res.candidate(models[0]).probe["accuracy"] is not None


@in_netns
def test_recommend_benchmarks_on_the_slot_with_each_figures_hardware(toy, ray_up):
    from advisor import api

    data, models = toy
    opts = OPTS | {"bench": True, "bench_min_time_s": 0.01, "bench_max_time_s": 0.2}
    res = api.recommend(data, models=models, executor=RayExecutor(), **opts)
    assert len(res.ranked) == 2
    for c in res.ranked:
        assert c.bench["latency_ms_p50"] > 0
        assert c.bench["hardware"]["key"] == res.hardware["key"]  # one node: the driver's machine
    assert any("benchmark tasks, one at a time per node" in n for n in res.notes)


SCORES = ("logme", "ncm_loo")


@in_netns
def test_tasks_without_the_dataset_path_get_the_subsample_through_the_object_store(
    toy, tmp_path, monkeypatch
):
    import dataclasses
    import shutil

    from advisor.data.spec import DatasetSpec
    from advisor.recommend.work import CandidateSpec, WorkContext, evaluate_candidate

    data, models = toy
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    ds = DatasetSpec.of(copy).load()
    ids = tuple(s.id for s in ds.samples)
    specs = [
        CandidateSpec(m, str(copy), ds.fingerprint, ids, "h", device="cpu", progress=False, scores=SCORES)
        for m in models
    ]
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "serial"))
    serial = [evaluate_candidate(s) for s in specs]
    ctx = WorkContext(ds, list(ds.samples))  # the driver's loaded dataset: its files are readable here
    elsewhere = str(tmp_path / "not-on-this-node")  # the path the tasks are given does not exist for them
    specs = [dataclasses.replace(s, data_path=elsewhere) for s in specs]
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "ray"))
    out = RayExecutor(num_cpus=2, ship_data="always").run(specs, context=ctx)
    assert all(o.ok for o in out), [o.error for o in out]
    assert [o.feature_key for o in out] == [o.feature_key for o in serial]
    untimed = [{k: {f: v for f, v in r.items() if f != "seconds"} for k, r in o.scores.items()} for o in out]
    assert untimed == [
        {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in o.scores.items()} for o in serial
    ]
    assert all(len(o.scores) == 2 for o in out)
    assert [o.domain for o in out] == [o.domain for o in serial]  # the signals computed from those features
