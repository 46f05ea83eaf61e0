"""Which backbone parameters train (head / last-N blocks / all), their train/eval modes and the optimizer groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from advisor.errors import UsageError
from advisor.finetune.config import parse_unfreeze


@dataclass
class UnfreezePlan:
    """The outcome of applying an unfreeze spec to a backbone.

    Attributes:
        mode: ``head``, ``last`` or ``all``.
        n_blocks: blocks unfrozen (0 for head, all blocks for ``all``).
        trainable: names (as in ``backbone.named_parameters()``) of the backbone parameters that train.
        state_keys: backbone ``state_dict`` keys that can change during training (trainable params plus the
            buffers, e.g. BatchNorm statistics, of modules that train); what checkpoints must keep.
    """

    mode: str
    n_blocks: int
    trainable: list[str]
    state_keys: list[str]

    @property
    def frozen_backbone(self) -> bool:
        """True when no backbone parameter trains (features can be computed without autograd)."""
        return not self.trainable


def _block_param_ids(blocks: Sequence[nn.Module]) -> set[int]:
    return {id(p) for b in blocks for p in b.parameters()}


def apply_unfreeze(backbone: nn.Module, blocks: Sequence[nn.Module], spec: str) -> UnfreezePlan:
    """Set ``requires_grad`` on the backbone's parameters according to ``spec``.

    ``last-N`` unfreezes the last N of ``blocks`` plus every parameter registered *after* the last block that
    belongs to no block (the final norm / conv head / pooler of timm, EfficientNet and transformers models),
    since those sit between the unfrozen blocks and the new head.

    Args:
        backbone: the feature module (its forward returns pooled features).
        blocks: ordered backbone blocks, input side first (``LoadedModel.blocks()``).
        spec: ``head``, ``all`` or ``last-N``.

    Returns:
        The plan (which parameter names train, which state keys can change).

    Raises:
        UsageError: bad spec, or ``last-N`` on a model that exposes no blocks.
    """
    mode, n = parse_unfreeze(spec)
    named = list(backbone.named_parameters())
    for _, p in named:
        p.requires_grad_(False)
    if mode == "all":
        for _, p in named:
            p.requires_grad_(True)
        n_blocks = len(blocks)
    elif mode == "last":
        if not blocks:
            raise UsageError(
                "this model exposes no backbone blocks, so --unfreeze last-N is not available",
                hint="use --unfreeze head or --unfreeze all",
            )
        n_blocks = min(n, len(blocks))
        chosen = _block_param_ids(blocks[-n_blocks:])
        in_blocks = _block_param_ids(blocks)
        last_block_pos = max((i for i, (_, p) in enumerate(named) if id(p) in in_blocks), default=-1)
        for i, (_, p) in enumerate(named):
            if id(p) in chosen or (i > last_block_pos and id(p) not in in_blocks):
                p.requires_grad_(True)
    else:
        n_blocks = 0
    trainable = [name for name, p in named if p.requires_grad]
    return UnfreezePlan(mode=mode, n_blocks=n_blocks, trainable=trainable, state_keys=_state_keys(backbone))


def _state_keys(backbone: nn.Module) -> list[str]:
    """State-dict keys of trainable params and of the buffers of modules that own a trainable param."""
    keys: list[str] = []
    for mod_name, mod in backbone.named_modules():
        own_params = list(mod.named_parameters(recurse=False))
        if not any(p.requires_grad for _, p in own_params):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        keys += [prefix + n for n, p in own_params if p.requires_grad]
        keys += [prefix + n for n, b in mod.named_buffers(recurse=False) if b is not None]
    return keys


def set_train_modes(backbone: nn.Module, training: bool) -> None:
    """Put modules that train in train mode and frozen ones in eval mode (frozen BatchNorm keeps its statistics).

    A module with parameters, none trainable, goes to eval with its whole subtree. Parameter-free modules
    (dropout, activations) follow their parent, so dropout inside an unfrozen block stays active.
    """
    if not training:
        backbone.eval()
        return

    def visit(mod: nn.Module) -> None:
        params = list(mod.parameters())
        if params and not any(p.requires_grad for p in params):
            mod.eval()
            return
        mod.training = True
        for child in mod.children():
            visit(child)

    visit(backbone)


def _no_decay(name: str, p: torch.Tensor) -> bool:
    # Biases and norm scales/shifts (1-d) are not decayed: decay would pull them towards 0 for no benefit.
    return p.ndim <= 1 or name.endswith(".bias")


def build_param_groups(
    head: nn.Module,
    backbone: nn.Module,
    *,
    lr: float,
    backbone_lr_mult: float,
    weight_decay: float,
) -> list[dict]:
    """AdamW parameter groups with discriminative learning rates.

    Groups (empty ones dropped): head decay / head no-decay at ``lr``, backbone decay / backbone no-decay at
    ``lr * backbone_lr_mult``. Each group carries a ``name`` for logging and the scheduler.
    """
    groups: list[dict] = []

    def add(name: str, params: list[torch.Tensor], group_lr: float, wd: float) -> None:
        if params:
            groups.append(
                {"name": name, "params": params, "lr": group_lr, "initial_lr": group_lr, "weight_decay": wd}
            )

    head_named = [(n, p) for n, p in head.named_parameters() if p.requires_grad]
    bb_named = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    add("head", [p for n, p in head_named if not _no_decay(n, p)], lr, weight_decay)
    add("head_no_decay", [p for n, p in head_named if _no_decay(n, p)], lr, 0.0)
    if backbone_lr_mult > 0:
        blr = lr * backbone_lr_mult
        add("backbone", [p for n, p in bb_named if not _no_decay(n, p)], blr, weight_decay)
        add("backbone_no_decay", [p for n, p in bb_named if _no_decay(n, p)], blr, 0.0)
    return groups


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``, shared tensors counted once."""
    seen: dict[int, int] = {}
    for p in module.parameters():
        if not trainable_only or p.requires_grad:
            seen[id(p)] = p.numel()
    return sum(seen.values())


def freeze_unused(backbone: nn.Module, plan: UnfreezePlan, example: tuple[torch.Tensor, ...]) -> list[str]:
    """Freeze trainable parameters that the feature forward never reaches (e.g. a source classifier kept on
    the module for logits), so they are neither counted, optimised nor checkpointed.

    Runs one forward/backward on ``example`` in eval mode (no BatchNorm statistics change, dropout off, so
    the model's state and the RNG are untouched) and updates ``plan`` in place.

    Returns:
        The names of the parameters that were frozen.
    """
    if plan.frozen_backbone:
        return []
    was_training = backbone.training
    backbone.eval()
    named = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    for _, p in named:
        p.grad = None
    with torch.enable_grad():
        out = backbone(*example)
        out.float().sum().backward()
    unused = [n for n, p in named if p.grad is None]
    for n, p in named:
        p.grad = None
        if n in unused:
            p.requires_grad_(False)
    backbone.train(was_training)
    if unused:
        plan.trainable = [n for n in plan.trainable if n not in set(unused)]
        plan.state_keys = _state_keys(backbone)
    return unused
