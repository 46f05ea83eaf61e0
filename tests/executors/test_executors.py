"""The executor registry and the driver-side pieces of `RayExecutor` that need no Ray: the cache merge, the
in-order release, the look-up of cached features (a fully cached run starts no Ray at all)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.executors import EXECUTORS, get_executor, register_executor
from advisor.executors.ray_executor import RayExecutor, failed, features_cached
from advisor.executors.scratch import merge_files
from advisor.paths import cache_root
from advisor.recommend.work import CandidateOutcome, CandidateSpec, Executor, SerialExecutor, WorkContext


def test_registry_gives_serial_and_refuses_unknown_names_and_stray_options():
    assert isinstance(get_executor("serial"), SerialExecutor)
    assert {"serial", "ray"} <= set(EXECUTORS)
    with pytest.raises(UsageError, match="unknown executor 'dask'") as e:
        get_executor("dask")
    assert "ray, serial" in e.value.hint
    with pytest.raises(UsageError, match="takes no options") as e:
        get_executor("serial", address="auto")
    assert "--executor ray" in e.value.hint
    assert isinstance(get_executor("serial", address=None), SerialExecutor)  # None: not given
    with pytest.raises(ValueError, match="already registered"):
        register_executor("serial")(lambda **kw: SerialExecutor())


def test_ray_executor_without_ray_installed_is_a_usage_error_with_the_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(UsageError, match="needs Ray") as e:
        get_executor("ray")
    assert e.value.hint == "pip install 'advisor[ray]'"


def test_ray_executor_options_are_checked_and_nothing_starts_on_construction():
    # the registry refuses to build a Ray executor without Ray (tested above); CI does not install the extra
    pytest.importorskip("ray")
    ex = get_executor("ray", address="ray://head:10001", num_gpus_per_candidate=0.5)
    assert (
        isinstance(ex, RayExecutor) and ex.address == "ray://head:10001" and ex.num_gpus_per_candidate == 0.5
    )
    assert ex._init_options() == {"logging_level": 30, "log_to_driver": True, "address": "ray://head:10001"}
    local = RayExecutor()._init_options()
    assert local["_node_ip_address"] == "127.0.0.1" and local["include_dashboard"] is False
    with pytest.raises(UsageError, match="does not take these options"):
        get_executor("ray", colour="red")


def test_merge_writes_entries_before_index_files_keeps_existing_ones_and_refuses_escapes():
    root = cache_root()
    (root / "probes").mkdir(parents=True)
    (root / "probes" / "scores-k.json").write_bytes(b"old")
    files = {
        "features/index/i.json": b'{"key": "e"}',
        "features/e/features.npz": b"npz",
        "probes/scores-k.json": b"new",
    }
    assert list(files)[0].startswith("features/index/")
    assert merge_files(files) == 2
    assert (root / "features" / "e" / "features.npz").read_bytes() == b"npz"
    assert (root / "features" / "index" / "i.json").read_bytes() == b'{"key": "e"}'
    assert (root / "probes" / "scores-k.json").read_bytes() == b"old"  # content-addressed: already there
    for bad in ("../outside.json", "/etc/x"):
        with pytest.raises(ValueError, match="refusing cache path"):
            merge_files({bad: b"x"})
    assert not (root.parent / "outside.json").exists()


def test_outcomes_finishing_out_of_order_reach_on_done_in_spec_order():
    specs = [CandidateSpec(m, "/d", "fp", ("x",), "h") for m in "abc"]

    class Backwards(Executor):  # finishes b, then a, then c: on_done must still see a, b, c
        def outcomes(self, specs, context, on_start):
            order = [1, 0, 2]
            for i in order:
                on_start(i + 1, specs[i])
            seen_when.append(list(seen))
            yield 1, CandidateOutcome("b", ok=True)
            seen_when.append(list(seen))  # b alone is held back until a is in
            yield 0, CandidateOutcome("a", ok=True)
            seen_when.append(list(seen))
            yield 2, failed(specs[2], "task lost")

    seen: list[str] = []
    seen_when: list[list[str]] = []
    started: list[int] = []
    out = Backwards().run(
        specs, on_start=lambda i, s: started.append(i), on_done=lambda o: seen.append(o.model_id)
    )
    assert seen_when == [[], [], ["a", "b"]] and seen == ["a", "b", "c"] and started == [2, 1, 3]
    assert (
        [o.model_id for o in out] == ["a", "b", "c"]
        and out[2].notes == ["c skipped: task lost"]
        and not out[2].ok
    )


# ----------------------------------------------------------------------------------------------- cached features
timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """2 classes x 4 images of 32x32 px and one tiny random local timm model."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                root / "data" / cls / f"{i}.png"
            )
    torch.manual_seed(0)
    f = root / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_vit").state_dict().items()}, str(f))
    return root / "data", f"local:{f}?arch=timm:test_vit&input_size=64"


def test_features_cached_matches_the_features_cache_and_a_cached_run_starts_no_ray(tiny, monkeypatch):
    from advisor.data.spec import DatasetSpec
    from advisor.features import extract_features

    data, model = tiny
    ds = DatasetSpec.of(data).load()
    spec = CandidateSpec(model, str(data), ds.fingerprint, tuple(s.id for s in ds.samples), "h", device="cpu")
    ctx = WorkContext(ds, list(ds.samples))
    assert not features_cached(spec, ctx)
    extract_features(ds, model, samples=ctx.samples, device="cpu", progress=False)
    assert features_cached(spec, ctx)
    assert not features_cached(spec, WorkContext(ds, ctx.samples[:-1]))  # other samples: another entry

    def no_ray(self):
        raise AssertionError("a fully cached run must not start Ray")

    monkeypatch.setattr(RayExecutor, "session", no_ray)
    done: list[str] = []
    (out,) = RayExecutor().run([spec], context=ctx, on_done=lambda o: done.append(o.model_id))
    assert out.ok and out.cached["features"] is True and out.features is not None and done == [model]


def test_a_shipped_subsample_gives_the_features_and_scores_read_by_path(tiny, tmp_path, monkeypatch):
    """Without any access to the dataset's path, the packed subsample's bytes give the same key, features and
    scores as the path (what a Ray task on a node without the shared filesystem computes)."""
    import shutil

    from advisor.data.spec import DatasetSpec
    from advisor.executors.scratch import remote_work
    from advisor.executors.shipping import pack_subsample, unpack_subsample
    from advisor.recommend.work import evaluate_candidate

    data, model = tiny
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    ds = DatasetSpec.of(copy).load()
    ids = tuple(s.id for s in ds.samples[1:])  # a subsample
    spec = CandidateSpec(
        model, str(copy), ds.fingerprint, ids, "h", device="cpu", progress=False, scores=("logme", "ncm_loo")
    )
    by_id = {s.id: s for s in ds.samples}
    ctx = WorkContext(ds, [by_id[i] for i in ids])
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "by-path"))
    by_path = evaluate_candidate(spec)
    pack = pack_subsample(ctx)
    assert set(pack["files"]) == set(ids) and pack["bytes"] == sum(len(b) for b in pack["files"].values())
    shutil.rmtree(copy)  # the worker cannot read the dataset any more
    unpacked = unpack_subsample(pack, tmp_path / "unpacked")
    assert [s.id for s in unpacked.samples] == list(ids) and all(s.path.is_file() for s in unpacked.samples)
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "shipped"))
    sent = remote_work(spec.to_dict(), None, pack)  # a fresh scratch cache, the shipped bytes
    shipped = CandidateOutcome.from_dict(sent["outcome"])
    assert shipped.ok and by_path.ok and shipped.feature_key == by_path.feature_key
    untimed = lambda o: {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in o.scores.items()}  # noqa: E731
    assert untimed(shipped) == untimed(by_path) and set(shipped.scores) == {"logme", "ncm_loo"}
    assert shipped.domain == by_path.domain
    assert not any("unpacked" in f or f.endswith(".png") for f in sent["files"])  # only cache files come back
