"""Issue 11: reference names compute the published methods, probability outputs are not softmaxed twice, and an
unknown score name is a usage error."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.errors import UsageError
from advisor.scores import Prepared, compute_scores
from advisor.scores import metrics as M
from advisor.scores.registry import list_scorers
from tests.scores.test_scores_reference import _data, _sfda_ref, _softmax, rel


def test_sfda_is_the_in_sample_published_score_and_sfda_cv_the_variant():
    x, y = _data(40, 30, 4, seed=3)  # few samples per class, D close to N: where the two differ
    ref = _sfda_ref(x, y)  # straightforward re-derivation of TencentARC/SFDA SFDA_Score
    assert rel(M.sfda(Prepared(x, y)), ref) < 1e-8
    assert abs(M.sfda_cv(Prepared(x, y)) - ref) > 1e-3


def test_gbc_is_pca64_diagonal_as_published():
    x, y = _data(150, 80, 3, seed=5, sep=0.3)
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    z = xc @ vt[:64].T  # PCA to 64 dims (exact, as sklearn's full solver)
    mus = [z[y == c].mean(0) for c in range(3)]
    vs = [np.maximum(z[y == c].var(0), 1e-4) for c in range(3)]
    ref = 0.0
    for a in range(3):
        for b in range(3):
            if a != b:
                avg = (vs[a] + vs[b]) / 2
                db = ((mus[a] - mus[b]) ** 2 / avg).sum() / 8 + 0.5 * (
                    np.log(avg).sum() - 0.5 * np.log(vs[a]).sum() - 0.5 * np.log(vs[b]).sum()
                )
                ref -= np.exp(-db)
    assert rel(M.gbc(Prepared(x, y)), ref) < 1e-8
    assert abs(M.gbc_spherical(Prepared(x, y)) - ref) > 1e-6 * abs(ref)


def test_variants_are_registered_and_listed():
    names = list_scorers()
    assert {"sfda", "sfda_cv", "gbc", "gbc_spherical", "parc"} <= set(names)


def test_probability_outputs_are_not_softmaxed_twice():
    x, y = _data(90, 6, 3, seed=2)
    logits = np.random.default_rng(0).standard_normal((90, 10)) * 3
    p = _softmax(logits)
    q = np.round(p * 256) / 256  # a dequantized uint8 softmax (TFLite): rows no longer sum to exactly 1
    want = compute_scores(x, y, probs=p, metrics="leep,nce")
    got = compute_scores(x, y, logits=p, metrics="leep,nce")
    assert got["leep"].value == pytest.approx(want["leep"].value, rel=1e-9)
    assert got["leep"].value > -np.log(10) + 0.05  # softmaxing probabilities again gives about -ln C
    gq = compute_scores(x, y, logits=q, metrics="leep")["leep"].value
    assert gq == pytest.approx(want["leep"].value, abs=0.05)
    assert Prepared(x, y, logits=q).logits_kind == "probabilities"
    assert Prepared(x, y, logits=logits).logits_kind == "logits"


def test_domain_signals_use_probabilities_as_given():
    from advisor.recommend.run import domain_signals

    p = _softmax(np.random.default_rng(1).standard_normal((50, 10)) * 4)
    f = np.random.default_rng(2).standard_normal((50, 4))
    by_value = domain_signals(f, p)
    declared = domain_signals(f, p, "probabilities")
    assert by_value["source_confidence"] == pytest.approx(float(p.max(1).mean()))
    assert declared["source_confidence"] == pytest.approx(float(p.max(1).mean()))
    assert by_value["source_entropy_norm"] < 0.9  # a second softmax flattens everything to about 1.0


def test_unknown_score_name_is_a_usage_error_listing_valid_names():
    x, y = _data()
    with pytest.raises(UsageError, match="unknown score name 'logmee'") as ei:
        compute_scores(x, y, metrics="logmee")
    assert "valid names:" in (ei.value.hint or "") and "knn_loo" in (ei.value.hint or "")
    from advisor.recommend.run import RunConfig

    with pytest.raises(UsageError, match="sfdaa"):
        RunConfig(data="x", scores=("logme", "sfdaa"))
