"""Network/offline detection and hub-cache lookups, so that missing weights fail in seconds with a clear message.

Offline is decided once per process: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``/``ADVISOR_OFFLINE`` set to a true
value, else a TCP connect probe (<= 2 s) to the Hugging Face hub host. Nothing is sent; the probe only connects.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from advisor.errors import WeightsUnavailableOffline

HUB_HOST = "huggingface.co"
PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "true", "yes", "on"}


def env_offline() -> bool:
    """True when an environment variable asks for offline mode."""
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ADVISOR_OFFLINE")
    )


@lru_cache(maxsize=4)
def _probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_offline(offline: bool | None = None) -> bool:
    """Whether to behave offline: the explicit flag, else the environment, else a cached connect probe."""
    if offline is not None:
        return bool(offline)
    if env_offline():
        return True
    return not _probe(HUB_HOST, 443, PROBE_TIMEOUT_S)


def hf_cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The path of `filename` of `repo_id` in the local Hugging Face cache, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers/timm
        return None
    try:
        p = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:
        return None
    return Path(p) if isinstance(p, (str, os.PathLike)) else None


def hf_home_hint() -> str:
    """Where the Hugging Face cache is, for error hints."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def unavailable_hf(model_id: str, repo_id: str, why: str) -> WeightsUnavailableOffline:
    """The error for Hugging Face weights that are neither cached nor downloadable now."""
    return WeightsUnavailableOffline(
        f"{model_id}: weights are not available offline ({why}; looked in {hf_home_hint()})",
        hint=f"run once with network access, or `huggingface-cli download {repo_id}` on a connected machine and "
        "copy the cache, or point HF_HOME at a cache that has it",
    )


def torch_hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps the file downloaded from `url` (it may not exist)."""
    import torch

    name = os.path.basename(url.split("?")[0])
    return Path(torch.hub.get_dir()) / "checkpoints" / name
