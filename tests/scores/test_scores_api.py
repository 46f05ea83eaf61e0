"""Robustness edge cases, the scorer registry, compute_scores/bootstrap and the `advisor score` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advisor.errors import ScoreError
from advisor.scores import (
    Prepared,
    ScoreResult,
    compute_scores,
    get_scorer,
    list_scorers,
    register_scorer,
    stratified_resample,
)
from advisor.scores import registry as reg

ALL = [
    "logme", "leep", "nce", "nleep", "hscore", "hscore_shrinkage", "transrate", "gbc", "gbc_spherical", "sfda",
    "sfda_cv", "etran_lda", "etran_energy", "parc", "knn_loo", "ncm_loo",
]  # fmt: skip


def _data(n=60, d=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    x = rng.standard_normal((n, d)) + rng.standard_normal((c, d))[y]
    return x, y, rng.standard_normal((n, 5))


def _all_finite(res: dict[str, ScoreResult]):
    for name, r in res.items():
        assert r.applicable, (name, r.reason)
        assert r.value is not None and np.isfinite(r.value), (name, r.value)


def test_registry_lists_all_metrics_with_direction():
    names = list_scorers()
    assert set(ALL) <= set(names)
    assert all(get_scorer(n).higher_is_better for n in ALL)
    assert get_scorer("leep").needs == ("probs", "labels")


def test_registry_order_is_the_documented_one():
    # the metrics package registers its modules in import order; "all" (and every report) lists them so
    assert list_scorers()[:16] == [
        "logme",
        "leep",
        "nce",
        "nleep",
        "hscore",
        "hscore_shrinkage",
        "transrate",
        "gbc",
        "gbc_spherical",
        "sfda",
        "sfda_cv",
        "etran_lda",
        "etran_energy",
        "parc",
        "knn_loo",
        "ncm_loo",
    ]


def test_registry_duplicate_raises_and_miss_suggests():
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("logme")(lambda prep: 0.0)
    with pytest.raises(ScoreError) as e:
        get_scorer("lgome")
    assert "logme" in e.value.hint
    with pytest.raises(ValueError):
        register_scorer("x_bad_needs", needs=("images",))
    try:

        @register_scorer("x_test_const", higher_is_better=False)
        def _const(prep):
            """Constant test scorer."""
            return 1.5

        r = compute_scores(*_data()[:2], metrics=["x_test_const"])
        assert r["x_test_const"].value == 1.5 and r["x_test_const"].higher_is_better is False
    finally:
        reg._REGISTRY.pop("x_test_const", None)


def test_compute_scores_all_and_probs_applicability():
    x, y, logits = _data()
    res = compute_scores(x, y, logits=logits, flag_degenerate=False)
    assert list(res) == list_scorers()
    _all_finite(res)
    no_src = compute_scores(x, y, metrics="leep,nce,logme")
    assert not no_src["leep"].applicable and "logits or probs" in no_src["leep"].reason
    assert no_src["nce"].value is None and no_src["logme"].applicable
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert compute_scores(x, y, probs=probs, metrics="leep")["leep"].value == pytest.approx(
        res["leep"].value, rel=1e-12
    )


@pytest.mark.parametrize(
    "case",
    ["duplicates", "constant", "d_much_larger", "tiny_classes", "two_classes", "float16", "float32"],
)
def test_edge_cases_stay_finite(case):
    x, y, logits = _data(60, 8, 3)
    if case == "duplicates":
        x = np.concatenate([x, x[:20]])
        y = np.concatenate([y, y[:20]])
        logits = np.concatenate([logits, logits[:20]])
    elif case == "constant":
        x[:, :3] = 7.0
    elif case == "d_much_larger":
        x = np.random.default_rng(1).standard_normal((30, 500))
        y = np.arange(30) % 3
        logits = logits[:30]
    elif case == "tiny_classes":
        y = y.copy()
        y[0] = 10  # a class with one sample
        y[1:3] = 11  # and one with two
    elif case == "two_classes":
        y = y % 2
    elif case == "float16":
        x, logits = x.astype(np.float16), logits.astype(np.float16)
    elif case == "float32":
        x, logits = x.astype(np.float32), logits.astype(np.float32)
    res = compute_scores(x, y, logits=logits, flag_degenerate=False)  # finiteness, not meaningfulness
    assert set(res) == set(ALL)  # every metric ran
    _all_finite(res)  # asserts each is applicable with a finite value


def test_many_classes_stay_finite():
    rng = np.random.default_rng(2)
    y = np.arange(2000) % 1000
    x = rng.standard_normal((2000, 6)) + rng.standard_normal((1000, 6))[y]
    metrics = [m for m in ALL if m not in ("leep", "nce")]
    res = compute_scores(x, y, metrics=metrics, options={"nleep": {"max_iter": 5}}, flag_degenerate=False)
    assert set(res) == set(metrics)
    _all_finite(res)  # asserts each is applicable with a finite value


def test_one_class_is_reported_not_applicable():
    x, _, _ = _data()
    res = compute_scores(x, np.zeros(len(x), dtype=int), metrics="logme,hscore,etran_energy")
    assert not res["logme"].applicable and "2 classes" in res["logme"].reason
    assert res["etran_energy"].applicable


def test_bad_inputs_raise_score_error():
    x, y, _ = _data()
    with pytest.raises(ScoreError, match="labels"):
        compute_scores(x, y[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ScoreError, match="NaN"):
        compute_scores(bad, y)
    with pytest.raises(ScoreError, match="unknown score name"):
        compute_scores(x, y, metrics="logme,hscroe")


def test_unlabelled_rows_are_dropped():
    x, y, _ = _data()
    y2 = y.copy()
    y2[:5] = -1
    assert Prepared(x, y2).N == len(y) - 5


def test_bootstrap_is_seeded_and_stratified():
    x, y, logits = _data(90, 6, 3)
    a = compute_scores(
        x, y, logits=logits, metrics="logme,leep,hscore", bootstrap=8, seed=3, flag_degenerate=False
    )
    b = compute_scores(
        x, y, logits=logits, metrics="logme,leep,hscore", bootstrap=8, seed=3, flag_degenerate=False
    )
    c = compute_scores(
        x, y, logits=logits, metrics="logme,leep,hscore", bootstrap=8, seed=4, flag_degenerate=False
    )
    for m in ("logme", "leep", "hscore"):
        assert a[m].ci is not None and a[m].ci == b[m].ci
        assert a[m].ci[0] <= a[m].ci[1]
    assert a["logme"].ci != c["logme"].ci
    y_odd = np.array([0] * 50 + [1] * 2 + [2])
    idx = stratified_resample(y_odd, np.random.default_rng(0))
    assert np.array_equal(np.bincount(y_odd[idx]), np.bincount(y_odd))


# ---------------------------------------------------------------- CLI
@pytest.fixture()
def runner():
    return CliRunner()


def _app():
    from advisor.cli.main import app

    return app


def test_cli_json_output(tmp_path, runner):
    x, y, logits = _data()
    logits = logits + 4 * np.eye(5)[y]  # a source head that tells the classes apart (passes the control)
    f = tmp_path / "feats.npz"
    np.savez(f, features=x.astype(np.float32), labels=y, logits=logits)
    r = runner.invoke(_app(), ["score", str(f), "--metrics", "logme,leep,hscore", "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data) == ["logme", "leep", "hscore"]
    for v in data.values():
        assert set(v) == {
            "value",
            "higher_is_better",
            "applicable",
            "reason",
            "ci",
            "seconds",
            "degenerate_reason",
        }
        assert np.isfinite(v["value"]) and v["applicable"] and v["ci"] is None
    r2 = runner.invoke(
        _app(), ["score", str(f), "-m", "logme", "--bootstrap", "4", "--seed", "1", "-f", "json"]
    )
    ci = json.loads(r2.stdout)["logme"]["ci"]
    assert len(ci) == 2 and ci[0] <= ci[1]
    r3 = runner.invoke(_app(), ["score", str(f), "-m", "all"])
    assert r3.exit_code == 0 and "sfda" in r3.stdout


def test_cli_without_logits_marks_leep_not_applicable(tmp_path, runner):
    x, y, _ = _data()
    f = tmp_path / "nolog.npz"
    np.savez(f, features=x, labels=y)
    data = json.loads(runner.invoke(_app(), ["score", str(f), "-m", "leep,nce", "-f", "json"]).stdout)
    assert data["leep"]["applicable"] is False and data["leep"]["value"] is None
    assert "logits" in data["nce"]["reason"]


@pytest.mark.parametrize("kind", ["missing_key", "shape", "not_zip", "object", "no_file", "bad_metric"])
def test_cli_bad_npz_one_line_error(tmp_path, runner, kind):
    x, y, _ = _data()
    f = tmp_path / f"{kind}.npz"
    args = []
    if kind == "missing_key":
        np.savez(f, features=x)
    elif kind == "shape":
        np.savez(f, features=x, labels=y[:-3])
    elif kind == "not_zip":
        f.write_text("not a zip")
    elif kind == "object":
        np.savez(f, features=np.array([{"a": 1}, 2], dtype=object), labels=np.arange(2))
    elif kind == "bad_metric":
        np.savez(f, features=x, labels=y)
        args = ["-m", "logmee"]
    r = runner.invoke(_app(), ["score", str(f), *args, "-f", "json"])
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    assert f.name in r.output.replace("\n", "")


def test_torch_tensor_inputs_match_numpy():
    import torch

    x, y, logits = _data()
    a = compute_scores(x, y, logits=logits, metrics="logme,leep,gbc")
    b = compute_scores(torch.from_numpy(x), torch.from_numpy(y), logits=torch.from_numpy(logits),
                       metrics="logme,leep,gbc", device="cpu")  # fmt: skip
    for m in ("logme", "leep", "gbc"):
        assert a[m].value == pytest.approx(b[m].value, rel=1e-12)
