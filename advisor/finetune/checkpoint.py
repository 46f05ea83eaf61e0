"""Fine-tuning checkpoints: the best weights (safetensors) and the resumable training state (``state.pt``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advisor.errors import ResultsError
from advisor.io import atomic_write

STATE_FILE = "state.pt"
BEST_FILE = "best.safetensors"
STATE_FORMAT = "advisor-finetune-state-v1"
CHECKPOINT_FORMAT = "advisor-finetune-v1"


def rng_state() -> dict[str, Any]:
    """The torch, numpy, python (and CUDA) RNG states, as tensors and plain values (``weights_only`` loadable)."""
    # Only tensors and plain python values: the state file must load with torch.load(weights_only=True).
    np_state: Any = np.random.get_state()  # (name, keys, pos, has_gauss, cached_gaussian)
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cpu_clone(t: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU copy (safe to store while training goes on)."""
    return t.detach().to("cpu", copy=True).contiguous()


def save_best_checkpoint(
    path: Path, head: nn.Module, backbone_state: dict[str, torch.Tensor], meta: dict[str, str]
) -> None:
    """Write the head and the trained backbone tensors as one safetensors file (``head.*``, ``backbone.*``)."""
    from safetensors.torch import save_file

    tensors = {f"head.{k}": cpu_clone(v) for k, v in head.state_dict().items()}
    tensors.update({f"backbone.{k}": cpu_clone(v) for k, v in backbone_state.items()})
    metadata = {"format": CHECKPOINT_FORMAT, **{k: str(v) for k, v in meta.items()}}
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def load_best_checkpoint(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint written by `save_best_checkpoint`: (head state, backbone state, metadata).

    Raises:
        ResultsError: missing or not an advisor fine-tuning checkpoint.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no fine-tuning checkpoint at {path}", hint="run `advisor finetune` first")
    head: dict[str, torch.Tensor] = {}
    backbone: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ResultsError(f"{path} is not an advisor fine-tuning checkpoint")
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            target, name = (head, k[5:]) if k.startswith("head.") else (backbone, k[len("backbone.") :])
            target[name] = f.get_tensor(k)
    return head, backbone, meta


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a resumable training state atomically."""
    atomic_write(path, lambda p: torch.save(state, str(p)))


def load_state(path: Path) -> dict[str, Any]:
    """Load a resumable training state (tensors and plain python values only: ``weights_only=True``)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which and what to do
        raise ResultsError(
            f"cannot read the fine-tuning state {path}: {e}",
            hint="delete the out dir or choose another --out to start over",
        ) from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResultsError(
            f"{path} is not an advisor fine-tuning state file", hint="choose another --out to start over"
        )
    return state
