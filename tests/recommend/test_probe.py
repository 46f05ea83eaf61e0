"""The linear probe: same objective and solution as scikit-learn's LogisticRegression, and CV bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.probe import ProbeResult, fit_logreg, linear_probe, macro_f1_score


def _blobs(n_per=40, d=12, k=4, sep=2.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * sep
    x = np.concatenate([centers[c] + rng.normal(size=(n_per, d)) for c in range(k)]).astype(np.float64)
    y = np.repeat(np.arange(k), n_per)
    return x, y


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_fit_matches_sklearn(c):
    torch = pytest.importorskip("torch")
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    x = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=c, solver="lbfgs", tol=1e-10, max_iter=5000).fit(x, y)
    w, b, _ = fit_logreg(
        torch.from_numpy(x), torch.from_numpy(y), 4, 1.0 / (c * len(y)), tol=1e-9, max_iter=2000
    )
    w, b = w.numpy(), b.numpy()
    # softmax is invariant to a shared shift of the bias; sklearn's multinomial bias is not centred in general
    np.testing.assert_allclose(w, ref.coef_, atol=2e-4, rtol=1e-3)
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, ref.predict_proba(x), atol=1e-5)
    assert (p.argmax(1) == ref.predict(x)).all()


def test_probe_nested_cv_matches_sklearn():
    """Each outer fold's C is sklearn's inner-CV argmax on the outer-train part; predictions match a refit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from advisor.probe import effective_folds, inner_seed, stratified_folds

    x, y = _blobs(n_per=30, sep=0.8, seed=1)
    grid = [0.01, 0.1, 1.0]
    res = linear_probe(x, y, folds=3, c_grid=grid, dtype="float64", tol=1e-8, seed=3)

    def fit(xtr, ytr, c):
        sc = StandardScaler().fit(xtr)
        return sc, LogisticRegression(C=c, tol=1e-10, max_iter=5000).fit(sc.transform(xtr), ytr)

    pred = np.full(len(y), -1)
    for f, (tr, te) in enumerate(stratified_folds(y, 3, 3)):
        inner = stratified_folds(y[tr], effective_folds(y[tr], 3), inner_seed(3, f))
        cv = []
        for c in grid:
            accs = []
            for itr, ite in inner:
                sc, m = fit(x[tr][itr], y[tr][itr], c)
                accs.append((m.predict(sc.transform(x[tr][ite])) == y[tr][ite]).mean())
            cv.append(np.mean(accs))
        c_best = grid[int(np.argmax(cv))]
        assert res.chosen_c[f] == c_best
        sc, m = fit(x[tr], y[tr], c_best)
        pred[te] = m.predict(sc.transform(x[te]))
    assert (np.array(res.oof_pred) == pred).mean() >= 0.98  # L-BFGS vs lbfgs: a borderline sample may flip
    assert res.selection == "nested-cv" and res.inner_folds == 3 and len(res.chosen_c) == 3
    assert res.folds == 3 and res.n_samples == len(y) and res.n_classes == 4


def test_probe_result_fields_and_ci():
    x, y = _blobs(n_per=25, sep=1.0, seed=2)
    res = linear_probe(x.astype(np.float32), y, folds=5)
    assert 0.5 < res.accuracy <= 1.0
    assert res.accuracy_ci[0] <= res.accuracy <= res.accuracy_ci[1]
    assert res.macro_f1_ci[0] <= res.macro_f1 <= res.macro_f1_ci[1]
    assert len(res.per_class_accuracy) == 4 and all(0 <= a <= 1 for a in res.per_class_accuracy)
    assert res.accuracy == pytest.approx(np.mean(np.array(res.oof_pred) == y))
    assert res.macro_f1 == pytest.approx(macro_f1_score(y, np.array(res.oof_pred), 4))
    again = ProbeResult.from_dict(res.to_dict(include_predictions=True))
    assert again.accuracy == res.accuracy and again.accuracy_ci == res.accuracy_ci


def test_probe_random_features_near_chance_and_small_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), 40)
    res = linear_probe(x, y, folds=5)
    assert res.accuracy < 0.6  # chance is 1/3
    # a class with 2 samples caps the folds at 2
    y2 = np.concatenate([np.zeros(20, int), np.ones(2, int)])
    res2 = linear_probe(rng.normal(size=(22, 4)), y2, folds=5)
    assert res2.folds == 2


def test_macro_f1_known_value():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 1])
    # class 0: P=1, R=.5 -> F1=2/3; class 1: P=2/3, R=1 -> F1=.8
    assert macro_f1_score(y, p, 2) == pytest.approx((2 / 3 + 0.8) / 2)


def test_stratified_folds_partition_and_balance():
    from advisor.probe import effective_folds, stratified_folds

    y = np.repeat(np.arange(3), [10, 7, 5])
    splits = stratified_folds(y, 5, seed=1)
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests.tolist()) == list(range(len(y)))  # every sample tested exactly once
    for tr, te in splits:
        assert set(tr).isdisjoint(te) and len(tr) + len(te) == len(y)
        assert (
            np.bincount(y[te], minlength=3).min() >= 1
        )  # each class in each test fold (min count 5 = folds)
    assert [te.tolist() for _, te in stratified_folds(y, 5, seed=1)] == [te.tolist() for _, te in splits]
    assert effective_folds(np.array([0, 0, 0, 1, 1]), 5) == 2


def test_wilson_interval_at_100_percent_has_width():
    from scipy.stats import binomtest

    from advisor.probe import wilson_ci

    lo, hi = wilson_ci(50, 50)
    assert lo == pytest.approx(0.9287, abs=5e-4) and hi == 1.0
    for k, n in ((50, 50), (0, 20), (37, 50), (324, 400)):
        ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_ci(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)
    # in the probe: perfectly separable data, 100 % accuracy, an interval of non-zero width (not (1.0, 1.0))
    x, y = _blobs(n_per=25, d=4, k=2, sep=20.0, seed=4)
    res = linear_probe(x, y, folds=5, n_boot=50)
    assert res.accuracy == 1.0 and res.accuracy_ci_method == "wilson"
    assert res.accuracy_ci == pytest.approx(wilson_ci(50, 50))
    assert res.accuracy_ci[1] - res.accuracy_ci[0] > 0.05


def test_nested_cv_choice_of_c_never_sees_the_outer_test_fold(monkeypatch):
    import advisor.probe as probe

    x, y = _blobs(n_per=20, d=6, k=3, sep=1.0, seed=5)
    x[:, 0] = np.arange(len(y))  # a row id, recoverable after slicing (the fit standardises it, harmlessly)
    seen: list[set[int]] = []
    real = probe.select_c

    def spy(x_tr, y_tr, *args, **kwargs):
        seen.append({int(v) for v in x_tr[:, 0]})
        return real(x_tr, y_tr, *args, **kwargs)

    monkeypatch.setattr(probe, "select_c", spy)
    res = probe.linear_probe(x, y, folds=4, seed=2, n_boot=20)
    splits = probe.stratified_folds(y, 4, 2)
    assert len(seen) == 4 and len(res.chosen_c) == 4
    for rows, (tr, te) in zip(seen, splits, strict=True):
        assert rows == set(tr.tolist()) and rows.isdisjoint(te.tolist())


def test_probe_on_pure_noise_is_near_chance_not_optimistic():
    # many features, few samples: any selection on the reported predictions would favour lucky grid points
    accs = []
    for s in range(3):
        rng = np.random.default_rng(100 + s)
        y = np.repeat(np.arange(4), 10)
        res = linear_probe(rng.normal(size=(40, 60)), y, seed=s, n_boot=20, c_grid=[1e-3, 1e-2, 1e-1, 1.0])
        assert res.accuracy_ci[0] <= 0.25 <= res.accuracy_ci[1]  # chance inside the interval
        accs.append(res.accuracy)
    assert np.mean(accs) < 0.35  # chance is 0.25


def test_c_at_grid_edge_is_flagged():
    x, y = _blobs(n_per=15, d=4, k=2, sep=20.0, seed=6)
    res = linear_probe(x, y, folds=3, c_grid=[1e-4, 1e-2, 1.0], n_boot=20)
    assert res.chosen_c and all(c in res.c_grid for c in res.chosen_c)
    edge = any(c in (1e-4, 1.0) for c in res.chosen_c)
    assert res.c_at_grid_edge == edge
    assert edge == bool(res.notes) and (not edge or "edge of the grid" in res.notes[0])
    assert ProbeResult.from_dict(res.to_dict()).chosen_c == res.chosen_c


def test_inner_sweep_early_stop_matches_the_full_sweep_where_it_ran():
    import torch

    from advisor.probe import _inner_curve, _sweep, stratified_folds

    x, y = _blobs(n_per=15, d=6, k=3, sep=0.7, seed=7)
    grid = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    splits = stratified_folds(y, 3, 0)
    args = (x, y, splits, grid, 3, torch.device("cpu"), torch.float64, 100, 1e-6)
    full = _sweep(*args)[1].mean(1)
    curve, _ = _inner_curve(*args, patience=2)
    ran = ~np.isnan(curve)
    np.testing.assert_allclose(curve[ran], full[ran], atol=1e-12)
    assert np.nanargmax(curve) == int(np.flatnonzero(full[ran] >= full[ran].max() - 1e-12)[0])
    np.testing.assert_allclose(_inner_curve(*args, patience=len(grid))[0], full, atol=1e-12)
