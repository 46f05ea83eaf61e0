"""Device selection for model code: `auto` picks cuda, then mps, then cpu (implemented once, in `advisor.runtime`)."""

from __future__ import annotations

from advisor.runtime import DEVICE_CHOICES, resolve_device

__all__ = ["DEVICE_CHOICES", "resolve_device"]
