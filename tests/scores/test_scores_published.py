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


def test_covariance_scores_are_flagged_when_d_exceeds_half_n():
    rng = np.random.default_rng(4)
    y = np.arange(60) % 3
    for x in (rng.standard_normal((60, 200)), rng.standard_normal((60, 200)) + 3 * np.eye(3, 200)[y]):
        res = compute_scores(x, y, metrics="hscore,transrate,hscore_shrinkage")
        for m in ("hscore", "transrate"):
            assert not res[m].applicable and "D = 200 > N/2 = 30" in (res[m].degenerate_reason or "")
            assert res[m].value is not None  # kept for display, never ranked
    assert "D = " not in (res["hscore_shrinkage"].reason or "")


def test_single_class_knn_and_ncm_are_not_applicable():
    x, _ = _data(40, 5, 2)
    res = compute_scores(x, np.zeros(40, dtype=int), metrics="knn_loo,ncm_loo")
    for m in ("knn_loo", "ncm_loo"):
        assert not res[m].applicable and res[m].value is None and "2 classes" in (res[m].reason or "")


def test_shuffled_label_control_flags_random_features_not_real_ones():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    real = rng.standard_normal((200, 16)) + 2 * rng.standard_normal((4, 16))[y]
    noise = rng.standard_normal((200, 16))
    good = compute_scores(real, y, metrics="logme,knn_loo,ncm_loo,hscore")
    assert all(r.applicable and r.degenerate_reason is None for r in good.values())
    bad = compute_scores(noise, y, metrics="hscore,ncm_loo,logme")
    for m in ("hscore", "ncm_loo"):
        assert not bad[m].applicable and "shuffled-label control" in (bad[m].degenerate_reason or "")
    assert bad["logme"].degenerate_reason is None  # not in the (cheap) controlled set
    unflagged = compute_scores(noise, y, metrics="hscore", flag_degenerate=False)["hscore"]
    assert unflagged.applicable and unflagged.value == bad["hscore"].value


def test_control_rule_edges():
    from advisor.scores.api import control_reason, high_dim_reason

    assert control_reason(2.0, 2.0, True) is not None  # equal (e.g. H-score = C - 1 both ways): flagged
    assert control_reason(1.0, 0.5, True) is None
    assert control_reason(0.5, 1.0, False) is None  # lower is better
    assert high_dim_reason("hscore", 100, 50) is None and high_dim_reason("hscore", 100, 51) is not None
    assert high_dim_reason("logme", 10, 1000) is None


def test_cli_help_lists_every_score_and_unknown_name_exits_2(tmp_path):
    from typer.testing import CliRunner

    from advisor.cli.main import app

    r = CliRunner().invoke(app, ["score", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for name in list_scorers():
        assert f"{name}:" in r.stdout, name
    x, y = _data(30, 4, 3)
    f = tmp_path / "f.npz"
    np.savez(f, features=x, labels=y)
    bad = CliRunner().invoke(app, ["score", str(f), "-m", "logme,sfdaa"])
    assert bad.exit_code == 2 and "sfda_cv" in bad.output


def test_parc_default_is_pca32_standardised_spearman_as_published():
    import scipy.stats

    x, y = _data(80, 40, 4, seed=21)
    from sklearn.decomposition import PCA

    z = PCA(n_components=32, svd_solver="full").fit_transform(
        x
    )  # the authors' step (its sign convention too)
    z = (z - z.mean(0)) / z.std(0)  # StandardScaler
    rdm1 = 1 - np.corrcoef(z)
    rdm2 = np.round(1 - np.corrcoef(np.eye(4)[y]), 12)  # one-hot label RDM (rounding: see the reference test)
    iu = np.triu_indices(80, 1)
    ref = scipy.stats.spearmanr(rdm1[iu], rdm2[iu])[0] * 100
    assert rel(M.parc(Prepared(x, y)), ref) < 1e-8
