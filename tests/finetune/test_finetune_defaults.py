"""Defaults per unfreeze mode (issue 11, must-have 5): a new head on frozen, L2-normalised features reaches what a
linear probe reaches, where the old one-size default (lr 1e-3, 10 epochs) left it near chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from finetune_helpers import stack
from torch import nn
from torch.nn import functional as F

from advisor.errors import UsageError
from advisor.finetune import FinetuneConfig
from advisor.finetune.config import MODE_DEFAULTS, mode_defaults
from advisor.finetune.loop import Split, TrainTask, train


@pytest.mark.parametrize(
    ("unfreeze", "lr", "epochs", "augment"),
    [("head", 0.05, 30, False), ("last-2", 1e-3, 10, True), ("all", 5e-4, 10, True)],
)
def test_each_unfreeze_mode_has_its_own_defaults(unfreeze, lr, epochs, augment):
    cfg = FinetuneConfig(unfreeze=unfreeze)
    assert (cfg.lr, cfg.epochs, cfg.augment) == (lr, epochs, augment)
    assert (cfg.head_lr, cfg.max_epochs, cfg.augments) == (lr, epochs, augment)
    assert cfg.to_dict()["lr"] == lr and cfg.training_key()["epochs"] == epochs  # recorded, not None
    assert mode_defaults(unfreeze) == {"lr": lr, "epochs": epochs, "augment": augment}


def test_explicit_values_win_over_the_mode_defaults():
    cfg = FinetuneConfig(unfreeze="head", lr=1e-3, epochs=2, augment=True)
    assert (cfg.lr, cfg.epochs, cfg.augment) == (1e-3, 2, True)
    with pytest.raises(UsageError, match="lr must be > 0"):
        FinetuneConfig(unfreeze="head", lr=0.0)
    with pytest.raises(UsageError, match="invalid --unfreeze"):
        FinetuneConfig(unfreeze="some")
    assert set(MODE_DEFAULTS) == {"head", "last", "all"}


class UnitFeatures(nn.Module):
    """A fixed random projection, L2-normalised: sentence-embedding-like features of norm 1."""

    def __init__(self, d: int = 32, width: int = 64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(d, width)
        self.blocks = nn.ModuleList([self.proj])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x), dim=1)


def _task(n_classes: int = 20, per_class: int = 8, d: int = 32) -> TrainTask:
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, size=(n_classes, d))

    def side(tag: str) -> Split:
        x = np.concatenate([means[c] + 0.5 * rng.normal(size=(per_class, d)) for c in range(n_classes)])
        y = np.repeat(np.arange(n_classes), per_class)
        return Split(items=list(x.astype(np.float32)), labels=y, ids=[f"{tag}{i}" for i in range(len(y))])

    bb = UnitFeatures(d)
    return TrainTask(
        backbone=bb,
        feature_dim=64,
        blocks=list(bb.blocks),
        classes=[f"c{i}" for i in range(n_classes)],
        load=lambda item: item,
        preprocess=stack,
        train=side("t"),
        val=side("v"),
    )


def test_head_defaults_reach_the_probe_on_normalised_features_where_the_old_default_did_not():
    from sklearn.linear_model import LogisticRegression

    task = _task()
    with torch.no_grad():
        f_tr = task.backbone(torch.from_numpy(np.stack(task.train.items))).numpy()
        f_va = task.backbone(torch.from_numpy(np.stack(task.val.items))).numpy()
    probe = LogisticRegression(C=10, max_iter=2000).fit(f_tr, task.train.labels).score(f_va, task.val.labels)
    assert probe >= 0.95  # an easy problem for a linear model

    new = train(_task(), FinetuneConfig(unfreeze="head", device="cpu"))
    assert new.best_val_accuracy >= probe - 0.02
    old = train(_task(), FinetuneConfig(unfreeze="head", lr=1e-3, epochs=10, augment=True, device="cpu"))
    assert old.best_val_accuracy < 0.6  # the defect: the head barely moved from its initialisation
