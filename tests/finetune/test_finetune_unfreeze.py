"""Unfreezing (head / last-N / all): which parameters train, their modes, and the discriminative lr groups."""

from __future__ import annotations

import pytest
from finetune_helpers import make_backbone
from torch import nn

from advisor.errors import UsageError
from advisor.finetune.config import FinetuneConfig, parse_unfreeze
from advisor.finetune.unfreeze import apply_unfreeze, build_param_groups, count_params, set_train_modes


def _trainable(bb: nn.Module) -> set[str]:
    return {n for n, p in bb.named_parameters() if p.requires_grad}


def test_parse_unfreeze():
    assert parse_unfreeze("head") == ("head", 0)
    assert parse_unfreeze("ALL") == ("all", -1)
    assert parse_unfreeze("last-3") == ("last", 3)
    for bad in ("last-0", "last", "top-2", "2"):
        with pytest.raises(UsageError):
            parse_unfreeze(bad)
    with pytest.raises(UsageError):
        FinetuneConfig(unfreeze="middle")


def test_head_freezes_the_whole_backbone():
    bb = make_backbone()
    plan = apply_unfreeze(bb, list(bb.blocks), "head")
    assert _trainable(bb) == set() and plan.frozen_backbone and plan.state_keys == []


def test_last_n_unfreezes_last_blocks_and_the_layers_after_them():
    bb = make_backbone()
    plan = apply_unfreeze(bb, list(bb.blocks), "last-2")
    expected = {n for n, _ in bb.named_parameters() if n.startswith(("blocks.1.", "blocks.2.", "norm."))}
    assert _trainable(bb) == expected == set(plan.trainable)
    assert plan.n_blocks == 2
    # BN running statistics of the unfrozen blocks are part of the state to checkpoint; frozen ones are not
    assert "blocks.2.1.running_mean" in plan.state_keys and "blocks.0.1.running_mean" not in plan.state_keys
    # more blocks than exist: everything in blocks unfrozen, stem stays frozen
    apply_unfreeze(bb, list(bb.blocks), "last-9")
    assert not any(n.startswith("stem.") for n in _trainable(bb)) and "blocks.0.0.weight" in _trainable(bb)


def test_all_unfreezes_everything_and_counts():
    bb = make_backbone()
    apply_unfreeze(bb, list(bb.blocks), "all")
    assert _trainable(bb) == {n for n, _ in bb.named_parameters()}
    assert (
        count_params(bb, trainable_only=True) == count_params(bb) == sum(p.numel() for p in bb.parameters())
    )


def test_last_n_without_blocks_is_a_usage_error():
    with pytest.raises(UsageError, match="no backbone blocks"):
        apply_unfreeze(make_backbone(), [], "last-1")


def test_train_modes_keep_frozen_batchnorm_in_eval_and_dropout_active():
    bb = make_backbone()
    apply_unfreeze(bb, list(bb.blocks), "last-1")
    set_train_modes(bb, True)
    assert not bb.blocks[0][1].training  # frozen BN keeps its statistics
    assert not bb.blocks[0][3].training  # dropout in a frozen block is off
    assert bb.blocks[2][1].training and bb.blocks[2][3].training
    set_train_modes(bb, False)
    assert not any(m.training for m in bb.modules())


def test_param_groups_have_discriminative_lrs_and_no_decay_on_biases():
    bb = make_backbone()
    apply_unfreeze(bb, list(bb.blocks), "last-1")
    head = nn.Linear(16, 3)
    groups = build_param_groups(head, bb, lr=1e-3, backbone_lr_mult=0.1, weight_decay=0.05)
    by = {g["name"]: g for g in groups}
    assert set(by) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
    assert by["head"]["lr"] == 1e-3 and by["backbone"]["lr"] == pytest.approx(1e-4)
    assert by["head_no_decay"]["weight_decay"] == 0 and by["backbone"]["weight_decay"] == 0.05
    assert [p.shape for p in by["head"]["params"]] == [head.weight.shape]
    n_bb = sum(p.numel() for g in groups if g["name"].startswith("backbone") for p in g["params"])
    assert n_bb == count_params(bb, trainable_only=True)
    # head only: no backbone groups at all
    apply_unfreeze(bb, list(bb.blocks), "head")
    assert {
        g["name"] for g in build_param_groups(head, bb, lr=1e-3, backbone_lr_mult=0.1, weight_decay=0.0)
    } == {"head", "head_no_decay"}


def test_parameters_the_features_never_use_stay_frozen():
    from finetune_helpers import make_task

    from advisor.finetune.config import FinetuneConfig
    from advisor.finetune.loop import train

    bb = make_backbone()
    bb.classifier = nn.Linear(16, 1000)  # a source head kept on the module but not in the feature forward
    out = train(make_task(bb), FinetuneConfig(unfreeze="last-1", epochs=1, batch_size=8))
    assert "blocks.2.0.weight" in out.plan.trainable and "norm.weight" in out.plan.trainable
    assert not any(n.startswith("classifier.") for n in out.plan.trainable)
    assert not bb.classifier.weight.requires_grad
    assert any("never use" in n for n in out.notes)
