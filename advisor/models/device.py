"""Device selection for model code: `auto` picks cuda, then mps, then cpu; never a hard-coded device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advisor.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a device name into a `torch.device`.

    Args:
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or a `torch.device`.

    Returns:
        The torch device.

    Raises:
        UsageError: the name is unknown, or the requested accelerator is not available.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {device!r} requested but CUDA is not available", hint="use --device auto or cpu"
            )
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(
                "device 'mps' requested but MPS is not available", hint="use --device auto or cpu"
            )
        return torch.device("mps")
    raise UsageError(f"unknown device {device!r}", hint=f"use one of {', '.join(DEVICE_CHOICES)}")
