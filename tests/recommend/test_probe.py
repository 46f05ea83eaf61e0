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


def test_probe_cv_matches_sklearn_grid_search():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from advisor.probe import stratified_folds

    x, y = _blobs(n_per=30, sep=0.8, seed=1)
    grid = [0.01, 0.1, 1.0]
    res = linear_probe(x, y, folds=3, c_grid=grid, dtype="float64", tol=1e-8, seed=3)
    splits = stratified_folds(y, 3, 3)
    cv = []
    for c in grid:
        accs = []
        for tr, te in splits:
            sc = StandardScaler().fit(x[tr])
            m = LogisticRegression(C=c, tol=1e-10, max_iter=5000).fit(sc.transform(x[tr]), y[tr])
            accs.append((m.predict(sc.transform(x[te])) == y[te]).mean())
        cv.append(np.mean(accs))
    np.testing.assert_allclose(res.cv_accuracy, cv, atol=1e-9)
    assert res.best_c == grid[int(np.argmax(cv))]
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
