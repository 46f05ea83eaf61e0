"""The winner-vs-floor verdict uses the paired test on shared predictions (as the tie groups do), not
overlapping marginal intervals: 81 % vs 76 % on the same 400 samples is a clear difference."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.probe.stats import wilson_ci
from advisor.recommend.config import RunConfig
from advisor.recommend.ranking import PairedCandidate
from advisor.recommend.results import CandidateResult
from advisor.recommend.stages.floors import _compare_with_winner
from advisor.recommend.state import RunState


def _state(winner_right: np.ndarray, floor_right: np.ndarray, *, floor_preds: bool = True):
    n = len(winner_right)
    ids = [f"s{i}" for i in range(n)]
    y = np.zeros(n, dtype=np.int64)
    state = RunState(cfg=RunConfig(data="x"))
    best = CandidateResult(model_id="m:best", status="ranked")
    acc = float(winner_right.mean())
    best.probe = {"accuracy": acc, "accuracy_ci": list(wilson_ci(int(winner_right.sum()), n))}  # type: ignore[typeddict-item]
    state.probed = [best]
    state.oof["m:best"] = (ids, y, list(np.where(winner_right, 0, 1)))
    f_acc = float(floor_right.mean())
    f_ci = wilson_ci(int(floor_right.sum()), n)
    rec = {"accuracy": f_acc, "accuracy_ci": list(f_ci)}
    floor = PairedCandidate(
        "baseline:raw-pixels",
        f_acc,
        f_ci,
        ids,
        list(y),
        list(np.where(floor_right, 0, 1)) if floor_preds else None,
    )
    cr = CandidateResult(model_id="baseline:raw-pixels", status="baseline")
    return state, cr, rec, floor


def _floor_ahead(floor_right: int):
    """The floor right on the first `floor_right` of 100 samples, the best model on the first 60, compared."""
    floor, winner = np.arange(100) < floor_right, np.arange(100) < 60
    state, cr, rec, fl = _state(winner, floor)
    _compare_with_winner(state, "baseline:raw-pixels", cr, rec, fl)
    return state, cr, rec, fl


def test_paired_test_separates_what_overlapping_intervals_would_call_tied():
    winner = np.zeros(400, dtype=bool)
    winner[:324] = True  # 81.0 %
    floor = winner.copy()
    floor[304:324] = False  # 76.0 %: wrong on 20 more, never right where the winner is wrong
    state, cr, rec, fl = _state(winner, floor)
    lo_w = state.probed[0].probe["accuracy_ci"][0]  # type: ignore[index]
    assert lo_w <= rec["accuracy_ci"][1]  # the marginal intervals overlap ...
    _compare_with_winner(state, "baseline:raw-pixels", cr, rec, fl)
    assert not any("not significantly better" in n for n in state.notes)  # ... but McNemar separates them


def test_no_discordance_is_reported_as_not_established_with_the_test_named():
    winner = np.zeros(40, dtype=bool)
    winner[:30] = True
    floor = winner.copy()
    floor[29] = False  # one discordant pair: p = 1
    state, cr, rec, fl = _state(winner, floor)
    _compare_with_winner(state, "baseline:raw-pixels", cr, rec, fl)
    (note,) = [n for n in state.notes if "not significantly better" in n]
    assert "exact McNemar p = 1 on 40 shared samples" in note


def test_without_floor_predictions_the_interval_rule_is_named():
    winner = np.zeros(40, dtype=bool)
    winner[:30] = True
    floor = winner.copy()
    floor[28:30] = False
    state, cr, rec, fl = _state(winner, floor, floor_preds=False)
    _compare_with_winner(state, "baseline:raw-pixels", cr, rec, fl)
    (note,) = [n for n in state.notes if "not significantly better" in n]
    assert "95 % intervals overlap" in note


def test_floor_ahead_is_the_headline_with_its_test():
    state, cr, rec, fl = _floor_ahead(90)
    (head,) = state.floor_headlines
    assert head.startswith(
        "no candidate beats the no-pretraining floor baseline:raw-pixels: 90.0 % vs 60.0 %"
    )
    assert "(significantly, exact McNemar p = " in head


def test_floor_ahead_makes_a_rerun_on_more_samples_the_next_step():
    """No model beats the floor on a 100-sample subsample of 1000: the next command reruns recommend on twice the
    samples for the best model (with the run's data options), not `advisor finetune` of the loser."""
    import shlex
    from types import SimpleNamespace

    import typer

    from advisor.cli.main import app
    from advisor.recommend.stages.advise import _rerun_for_floor

    state, cr, rec, fl = _floor_ahead(62)  # two discordant pairs: not significantly apart
    assert state.floors_ahead == [("baseline:raw-pixels", False)]
    state.cfg = RunConfig(data="/my data", group_column="site", split_column="part", seed=2)
    state.samples = list(range(100))
    state.dataset = SimpleNamespace(samples=list(range(1000)))
    advice = {"next_command": "advisor finetune --data x --model m:best --unfreeze head"}
    _rerun_for_floor(state, advice)
    argv = shlex.split(advice["next_command"])
    assert argv[:2] == ["advisor", "recommend"] and argv[argv.index("--data") + 1] == "/my data"
    flags = (
        ("--models", "m:best"),
        ("--max-samples", "200"),
        ("--group-column", "site"),
        ("--split-column", "part"),
    )
    for flag, value in flags:
        assert argv[argv.index(flag) + 1] == value, argv
    recommend = typer.main.get_group(app).commands["recommend"]
    known = {o for p in recommend.params for o in (*p.opts, *p.secondary_opts)}
    assert {a for a in argv if a.startswith("--")} <= known
    assert advice["train_command"].startswith("advisor finetune") and "floor" in advice["next_why"]
    # with every sample already used, more labelled data is the only way on: no command, a note
    state.dataset = SimpleNamespace(samples=list(range(100)))
    advice = {"next_command": "advisor finetune --data x --model m:best --unfreeze head"}
    _rerun_for_floor(state, advice)
    assert advice["next_command"] is None and "every sample was used" in advice["next_why"]
    assert state.notes[-1] == advice["next_why"]


def test_a_floor_significantly_ahead_makes_other_candidates_the_next_step_not_more_samples():
    from types import SimpleNamespace

    from advisor.recommend.stages.advise import _rerun_for_floor

    state, cr, rec, fl = _floor_ahead(90)
    assert state.floors_ahead == [("baseline:raw-pixels", True)]
    state.samples, state.dataset = list(range(100)), SimpleNamespace(samples=list(range(1000)))
    advice = {"next_command": "advisor finetune --data x --model m:best --unfreeze head"}
    _rerun_for_floor(state, advice)
    assert advice["next_command"] is None and advice["train_command"].startswith("advisor finetune")
    assert "baseline:raw-pixels is significantly better" in advice["next_why"]


@pytest.mark.parametrize(
    ("revised", "floor_decides"),
    [
        ({"strategy": "partial-finetune", "revised_by": "finetune_check"}, False),
        ({"strategy": "linear-probe", "revised_by": "finetune_check"}, True),
        ({}, True),
    ],
)
def test_a_measured_finetune_that_beat_its_probe_keeps_its_command(monkeypatch, revised, floor_decides):
    """The floor's next step is decided after `--finetune-top`: a fine-tune that beat its probe keeps its own
    command; one that did not (frozen features advised) or no check at all leaves the floor to decide."""
    import importlib
    from types import SimpleNamespace

    import advisor.recommend.strategy as strategy

    adv = importlib.import_module(
        "advisor.recommend.stages.advise"
    )  # the package re-exports a function of that name

    state, cr, rec, fl = _floor_ahead(90)
    state.cfg = RunConfig(data="x", finetune_top=1 if revised else 0)
    state.dataset = SimpleNamespace(labels_array=lambda: [0, 1], classes=["a", "b"], samples=[])
    cmd = "advisor finetune --data x --model m:best --unfreeze last-1"
    monkeypatch.setattr(strategy, "build_advice", lambda *a, **k: {"next_command": cmd, "strategy": "x"})
    monkeypatch.setattr(strategy, "revise_with_finetune_check", lambda a, c, o: {**a, **revised})
    monkeypatch.setattr(adv, "_finetune_check", lambda *a, **k: [])
    adv.advise(state, lambda _m: None)
    assert state.advice["headline"].startswith("no candidate beats the no-pretraining floor")
    assert (state.advice["next_command"] is None) is floor_decides
    assert ("train_command" in state.advice) is floor_decides


def _add_ranked(state: RunState, mid: str, right: np.ndarray) -> CandidateResult:
    n = len(right)
    c = CandidateResult(model_id=mid, status="ranked", reasons=["probe accuracy ..."])
    c.probe = {"accuracy": float(right.mean()), "accuracy_ci": list(wilson_ci(int(right.sum()), n))}  # type: ignore[typeddict-item]
    state.probed.append(c)
    state.oof[mid] = ([f"s{i}" for i in range(n)], np.zeros(n, dtype=np.int64), list(np.where(right, 0, 1)))
    return c


def test_a_ranked_model_under_the_floor_says_so_in_its_reason():
    # Seen in a run: #3 at 64.5 % with the raw-pixel floor at 74.2 %, and nothing in its line said so
    state, cr, rec, fl = _state(np.arange(100) < 90, np.arange(100) < 75)
    state.probed[0].reasons = ["best probe accuracy ..."]
    far = _add_ranked(state, "m:far", np.arange(100) < 50)
    near = _add_ranked(state, "m:near", np.arange(100) < 74)
    above = _add_ranked(state, "m:above", np.arange(100) < 80)
    _compare_with_winner(state, "baseline:raw-pixels", cr, rec, fl)
    assert (
        "; below the no-pretraining floor baseline:raw-pixels (75.0 %, significantly, exact McNemar p = "
        in (far.reasons[0])
    )
    assert "(75.0 %, not significantly, exact McNemar p = 1 on 100 shared samples)" in near.reasons[0]
    assert above.reasons == ["probe accuracy ..."]
    assert state.probed[0].reasons == ["best probe accuracy ..."]  # #1 above the floor: its line is unchanged
