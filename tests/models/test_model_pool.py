"""`advisor.models.pool`: a run loads each model once; the pool is bounded, thread-safe and closed after the run."""

from __future__ import annotations

import threading

import pytest

from advisor.models.pool import ModelPool, Pooled, active_pool, load_on_runtime, reuse_models
from tests.data.data_synth import class_colour_images


class _Fake:
    model_id = "fake"


def _item(mb: float) -> Pooled:
    m = _Fake()
    return Pooled(m, m, None, mb)  # type: ignore[arg-type]


def test_the_pool_evicts_the_least_recently_used_entry_over_its_budget_and_never_keeps_an_oversized_model():
    pool = ModelPool(budget_mb=100)
    pool.put(("a", "cpu", True, "eager"), _item(40))
    pool.put(("b", "cpu", True, "eager"), _item(40))
    assert pool.get(("a", "cpu", True, "eager")) is not None  # a is now the most recently used
    pool.put(("c", "cpu", True, "eager"), _item(40))  # 120 MB > 100: b goes, not a
    assert pool.get(("b", "cpu", True, "eager")) is None
    assert pool.get(("a", "cpu", True, "eager")) is not None
    assert pool.get(("c", "cpu", True, "eager")) is not None
    pool.put(("huge", "cpu", True, "eager"), _item(101))
    assert pool.get(("huge", "cpu", True, "eager")) is None and len(pool) == 2


def test_find_prefers_the_published_weights_and_matches_device_and_runtime():
    pool = ModelPool()
    rand, real = _item(1), _item(1)
    pool.put(("m", "cpu", False, "auto"), rand)
    pool.put(("m", "cpu", True, "auto"), real)
    assert pool.find("m", "cpu", "auto") is real
    assert pool.find("m", "cpu", "eager") is None
    assert pool.find("m", "cuda", "auto") is None


def test_a_pool_is_open_only_inside_reuse_models_and_a_nested_block_shares_it():
    assert active_pool() is None
    with reuse_models() as outer:
        with reuse_models() as inner:
            assert inner is outer
        assert active_pool() is outer  # the inner block does not close the outer pool
    assert active_pool() is None


def test_threads_see_the_one_pool_of_the_run():
    seen = []
    with reuse_models() as pool:
        t = threading.Thread(target=lambda: seen.append(active_pool()))
        t.start()
        t.join()
    assert seen == [pool]


@pytest.fixture
def calls(monkeypatch):
    """The model ids `advisor.models.load_model` was called with, in order (the loads still happen)."""
    import advisor.models as am

    seen: list[str] = []
    real = am.load_model

    def counting(model_id, **kw):
        seen.append(model_id)
        return real(model_id, **kw)

    monkeypatch.setattr(am, "load_model", counting)
    return seen


def test_outside_a_pool_every_call_loads_and_inside_one_the_second_call_is_served(calls):
    kw = dict(device="cpu", pretrained=False, runtime="eager")
    load_on_runtime("timm:test_resnet", **kw)
    load_on_runtime("timm:test_resnet", **kw)
    assert calls == ["timm:test_resnet"] * 2
    with reuse_models() as pool:
        a = load_on_runtime("timm:test_resnet", **kw)
        b = load_on_runtime("timm:test_resnet", **kw)
        assert a is b and pool.hits == 1
    assert calls == ["timm:test_resnet"] * 3


def test_a_check_runs_before_the_model_is_used_even_when_it_is_pooled():
    from advisor.errors import UsageError

    def refuse(lm):
        raise UsageError(f"{lm.model_id} refused")

    with reuse_models():
        load_on_runtime("timm:test_resnet", device="cpu", pretrained=False, runtime="eager")
        with pytest.raises(UsageError, match="refused"):
            load_on_runtime("timm:test_resnet", device="cpu", pretrained=False, runtime="eager", check=refuse)


def test_a_recommend_run_loads_each_model_once_and_the_bench_record_says_it_was_reused(tmp_path, calls):
    import timm
    import torch
    from safetensors.torch import save_file

    from advisor import api
    from advisor.bench.runner import REUSED_METHOD

    data = class_colour_images(tmp_path / "imgs")
    models = []
    for arch in ("test_efficientnet", "test_resnet"):
        torch.manual_seed(0)
        f = tmp_path / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in timm.create_model(arch).state_dict().items()}, str(f))
        models.append(f"local:{f}?arch=timm:{arch}&input_size=64")
    res = api.recommend(
        data,
        models=models,
        device="cpu",
        folds=3,
        out=None,
        baselines=False,
        runtime="eager",
        bench_min_time_s=0.01,
        bench_max_time_s=0.2,
    )
    assert sorted(calls) == sorted(models)  # features and bench shared one load (before: two or three each)
    assert {c.model_id for c in res.ranked} == set(models)
    assert all(c.latency_ms is not None and c.latency_ms > 0 for c in res.ranked)
    assert active_pool() is None  # the run closed its pool
    from advisor.bench.store import ResultsStore

    stored = [r for m in models for r in ResultsStore().find(m)]
    assert stored and all(r["cold_start"]["method"] == REUSED_METHOD for r in stored)
    assert all(r["cold_start"]["load_s"] is None and r["cold_start"]["first_call_s"] is None for r in stored)
