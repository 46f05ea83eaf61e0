"""advisor: which pretrained model should I use for my data, on my hardware?

The package is import-light: torch, timm and transformers load only when a function that needs them runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
