"""Candidate selection under constraints, on a small synthetic catalog."""

from __future__ import annotations

import pytest

from advisor.catalog.schema import CatalogEntry, Metric
from advisor.catalog.store import Catalog
from advisor.errors import CatalogEntryNotFound, UsageError
from advisor.recommend.candidates import Constraints, diverse_default, select_candidates


def _e(
    id_,
    *,
    modality="image",
    task="image-classification",
    n=5_000_000,
    lic="permissive",
    probeable=True,
    pre="imagenet-1k",
    top1=None,
    family=None,
):
    src = id_.split(":", 1)[0]
    return CatalogEntry(
        id=id_,
        source=src,
        source_id=id_.split(":", 1)[1] if src != "pkg" else "definitely-not-installed-pkg==1",
        family=family or id_.split(":", 1)[1].split("_")[0],
        architecture=id_.split(":", 1)[1],
        modality=modality,
        task=task,
        n_params=n,
        license_class=lic,
        license="MIT" if lic == "permissive" else "CC-BY-NC-4.0",
        pretrain_data=pre,
        probeable=probeable,
        probe_note=None if probeable else "detector",
        metrics=(Metric("imagenet-1k", "top1", top1, "test"),) if top1 else (),
    )


@pytest.fixture
def catalog():
    return Catalog(
        [
            _e("timm:small_a", n=3_000_000, top1=70.0),
            _e("timm:small_b", n=4_000_000, top1=75.0, pre="imagenet-22k"),
            _e("timm:mid_a", n=25_000_000, top1=80.0),
            _e("timm:big_a", n=300_000_000, top1=86.0, pre="laion-2b"),
            _e("timm:nc_model", n=20_000_000, lic="non-commercial", top1=85.0),
            _e("timm:detector", task="object-detection", probeable=False),
            _e("hf:org/bert", modality="text", task="text-encoder", n=100_000_000),
            _e("pkg:effnet", n=4_600_000),
        ]
    )


def test_modality_probeable_and_default_count(catalog):
    cands, excl = select_candidates("image", Constraints(), catalog, default_count=4)
    ids = [c.model_id for c in cands]
    assert len(ids) == 4
    assert "hf:org/bert" not in ids and "timm:detector" not in ids
    # diverse: more than one size bucket represented
    assert any(i in ids for i in ("timm:mid_a", "timm:big_a")) and any(
        i.startswith("timm:small") for i in ids
    )


def test_license_and_params_filters(catalog):
    cands, excl = select_candidates(
        "image", Constraints(license="permissive", max_params=30e6), catalog, default_count=10
    )
    ids = {c.model_id for c in cands}
    assert ids == {"timm:small_a", "timm:small_b", "timm:mid_a"}
    assert "timm:nc_model" not in ids and "timm:big_a" not in ids
    # packaged default listed but not installed -> excluded with a reason
    assert any(x.model_id == "pkg:effnet" for x in excl) is False  # not a PACKAGED_DEFAULTS id
    with pytest.raises(UsageError):
        Constraints(license="free-ish")


def test_explicit_models_checked_against_constraints(catalog, tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    cands, excl = select_candidates(
        "image",
        Constraints(models=("timm:small_a", "timm:nc_model", str(f), "timm:test_vit"), license="commercial"),
        catalog,
    )
    assert [c.model_id for c in cands] == ["timm:small_a", str(f), "timm:test_vit"]
    assert excl[0].model_id == "timm:nc_model" and "license" in excl[0].reason
    with pytest.raises(CatalogEntryNotFound):
        select_candidates("image", Constraints(models=("smal_a",)), catalog)


def test_offline_keeps_only_local_weights(catalog):
    cands, excl = select_candidates("image", Constraints(offline=True), catalog)
    assert cands == []  # nothing cached in the isolated test environment, pkg not installed
    cands, excl = select_candidates("image", Constraints(offline=True, models=("timm:small_a",)), catalog)
    assert cands == [] and "offline" in excl[0].reason


def test_max_candidates_limit(catalog):
    cands, excl = select_candidates("image", Constraints(max_candidates=2), catalog, default_count=5)
    assert len(cands) == 2
    assert any("limit" in x.reason for x in excl)


def test_diverse_default_prefers_new_pretraining_sources(catalog):
    es = [e for e in catalog if e.modality == "image" and e.probeable]
    picked = diverse_default(es, 2)
    assert picked[0].n_params <= 10e6 and picked[1].n_params > 10e6


def test_budget_shrinks_subsample_then_candidates(catalog):
    from types import SimpleNamespace

    from advisor.recommend.run import RunConfig, make_plan

    ds = SimpleNamespace(
        classes=[f"c{i}" for i in range(10)],
        samples=list(range(5000)),
        modality="image",
        root="/x",
        fingerprint="f",
    )
    plan, cands, sampling = make_plan(RunConfig(data="/x", device="cpu"), ds, offline=False, catalog=catalog)
    assert plan.subsample["n"] == 2000 and len(cands) >= 4 and plan.budget_seconds is None
    tight, cands2, sampling2 = make_plan(
        RunConfig(data="/x", device="cpu", budget_minutes=2, runtime="eager"),
        ds,
        offline=False,
        catalog=catalog,
    )
    # the subsample shrinks first, down to its floor of 20 per class ...
    assert tight.subsample["n"] == 20 * 10 and tight.estimated_seconds < plan.estimated_seconds
    # ... then candidates are dropped from the end of the list, down to 2, each with the budget as the reason
    assert [c.model_id for c in cands2] == [c.model_id for c in cands[:2]]
    over = [x["model_id"] for x in tight.excluded if x["reason"] == "over the --budget of 2 min"]
    assert over == [c.model_id for c in reversed(cands[2:])]
    # the smallest plan still costs more than 2 min under the cost model: said, not hidden
    assert tight.estimated_seconds > 120
    assert tight.warnings[0].startswith("the smallest plan (subsample 200, 2 candidates) is estimated at")
    assert sampling2["max_samples"] == tight.subsample["max_samples"]


def test_cost_model_counts_the_cpu_runtime_and_the_floor_probe(catalog):
    """ONNX Runtime / auto on CPU divide the forward time by RUNTIME_SPEEDUP (not on GPU); the fixed costs stay;
    the no-pretraining floor's probe is part of the plan's cost."""
    from types import SimpleNamespace

    from advisor.recommend.config import DECODE_S, FIXED_S, RUNTIME_SPEEDUP
    from advisor.recommend.plan import estimate_candidate_seconds
    from advisor.recommend.run import RunConfig, make_plan

    c = SimpleNamespace(entry=SimpleNamespace(gmacs=1.0))
    fixed = FIXED_S["load"] + FIXED_S["scores"] + FIXED_S["bench"]
    eager = estimate_candidate_seconds(c, 1000, "cpu", True, "eager") - fixed  # type: ignore[arg-type]
    auto = estimate_candidate_seconds(c, 1000, "cpu", True, "auto") - fixed  # type: ignore[arg-type]
    assert abs((eager - 1000 * DECODE_S) / (auto - 1000 * DECODE_S) - RUNTIME_SPEEDUP["auto"]) < 1e-9
    gpu = [estimate_candidate_seconds(c, 1000, "cuda", True, r) for r in ("eager", "auto")]  # type: ignore[arg-type]
    assert gpu[0] == gpu[1]
    ds = SimpleNamespace(
        classes=["a", "b"], samples=list(range(100)), modality="image", root="/x", fingerprint="f"
    )
    with_floor, _, _ = make_plan(RunConfig(data="/x", device="cpu"), ds, offline=False, catalog=catalog)
    no_floor, _, _ = make_plan(
        RunConfig(data="/x", device="cpu", baselines=False), ds, offline=False, catalog=catalog
    )
    assert with_floor.estimated_seconds - no_floor.estimated_seconds == FIXED_S["probe"]
