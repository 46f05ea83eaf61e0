"""What one candidate's task asks of a cluster, from its catalog entry: GPU fraction, CPUs, memory.

The rule (stated, so a user can predict the placement and override it):
- GPU, only when the cluster has GPUs: by parameter count, a quarter of a GPU up to `SMALL_PARAMS` (several small
  models share one device), half up to `LARGE_PARAMS`, a whole GPU above or when the size is unknown; a given
  ``--gpus-per-candidate`` wins.
- CPUs: 2 for image and audio candidates (the task decodes and resizes its own inputs), 1 for text.
- Memory: ``BASE_MEMORY`` for the process and a batch, plus three copies of the fp32 weights (the loaded model, a
  state-dict copy while loading, the optimiser-free forward's workspace); `UNKNOWN_PARAMS` when the catalog does not
  know the size. Ray schedules by this figure; it does not cap the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SMALL_PARAMS = 30e6
LARGE_PARAMS = 150e6
UNKNOWN_PARAMS = 100e6
BASE_MEMORY = 768 * 2**20
MIB = 2**20


@dataclass(frozen=True)
class TaskResources:
    """Ray task options of one candidate, with the reason in words."""

    num_cpus: float
    num_gpus: float
    memory: int  # bytes
    why: str

    def ray_options(self) -> dict[str, Any]:
        """The keyword arguments of ``ray.remote(...).options``."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "memory": self.memory}


def candidate_resources(
    entry: Any | None,
    *,
    modality: str | None = None,
    cluster_has_gpu: bool,
    gpus_per_candidate: float | None = None,
    cpus_per_candidate: float | None = None,
) -> TaskResources:
    """The resources of one candidate's task (see the module docstring for the rule).

    Args:
        entry: its `advisor.catalog.CatalogEntry` (None: a model the catalog does not list, e.g. a local file).
        modality: the data's modality, when the entry does not say.
        cluster_has_gpu: whether the cluster has any GPU (no GPU: every task asks for 0).
        gpus_per_candidate: an explicit GPU fraction (overrides the size rule).
        cpus_per_candidate: an explicit CPU count (overrides the modality rule).
    """
    params = getattr(entry, "n_params", None)
    n = float(params) if params else None
    mod = getattr(entry, "modality", None) or modality or "image"
    if gpus_per_candidate is not None:
        gpus, gwhy = float(gpus_per_candidate), f"{gpus_per_candidate:g} GPU (given)"
    elif not cluster_has_gpu:
        gpus, gwhy = 0.0, "no GPU in the cluster"
    elif n is None:
        gpus, gwhy = 1.0, "1 GPU (size unknown)"
    elif n <= SMALL_PARAMS:
        gpus, gwhy = 0.25, f"0.25 GPU ({n / 1e6:.0f} M params <= {SMALL_PARAMS / 1e6:.0f} M)"
    elif n <= LARGE_PARAMS:
        gpus, gwhy = 0.5, f"0.5 GPU ({n / 1e6:.0f} M params <= {LARGE_PARAMS / 1e6:.0f} M)"
    else:
        gpus, gwhy = 1.0, f"1 GPU ({n / 1e6:.0f} M params)"
    if cpus_per_candidate is not None:
        cpus, cwhy = float(cpus_per_candidate), f"{cpus_per_candidate:g} CPU (given)"
    else:
        cpus = 1.0 if mod == "text" else 2.0
        cwhy = f"{cpus:g} CPU ({'tokenising' if mod == 'text' else 'decoding'} {mod} inputs)"
    memory = int(BASE_MEMORY + 3 * 4 * (n if n is not None else UNKNOWN_PARAMS))
    mwhy = f"{memory / MIB:.0f} MiB ({'3x fp32 weights' if n is not None else 'size unknown'} + base)"
    return TaskResources(cpus, gpus, memory, f"{gwhy}, {cwhy}, {mwhy}")
