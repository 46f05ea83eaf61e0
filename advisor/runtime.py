"""The execution runtime, coded once: device resolution, precision/autocast, OOM detection and batch back-off, threads.

Everything that runs a model (features, bench, probe, fine-tune, recommend) asks this module which device to use,
which autocast context to enter, whether an exception was an out-of-memory error, how to retry a smaller batch, and
how many CPU threads to run with. Importing it does not import torch; each function imports it when called.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from advisor.errors import UsageError, check_choice

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
# Feature-extraction precisions: ``auto`` picks per device (see `resolve_precision`).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


# ------------------------------------------------------------------------------------------------ devices
def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


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
        if _mps_available():
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
        if not _mps_available():
            raise UsageError(
                "device 'mps' requested but MPS is not available", hint="use --device auto or cpu"
            )
        return torch.device("mps")
    raise UsageError(f"unknown device {device!r}", hint=f"use one of {', '.join(DEVICE_CHOICES)}")


def device_kind(device: str | torch.device | None) -> str:
    """The device type (``cpu``, ``cuda``, ``mps``) a device name stands for; ``auto`` is resolved, and falls back
    to ``cpu`` when it cannot be (no torch). Explicit names are not checked for availability."""
    name = str(device or "auto")
    if name == "auto":
        try:
            return resolve_device("auto").type
        except Exception:  # noqa: BLE001 - planning must work without a usable torch
            return "cpu"
    return name.split(":")[0]


def synchronize_fn(device: str | torch.device) -> Callable[[], None] | None:
    """A zero-argument function that waits for the device's queued work (read a clock only after it), or None
    for the CPU, whose calls are synchronous."""
    import torch

    name = str(device)
    if name.startswith("cuda"):
        return lambda: torch.cuda.synchronize(name)
    if name.startswith("mps"):
        return torch.mps.synchronize
    return None


# ------------------------------------------------------------------------------------------------ precision
# Runtimes of a model's forward pass (`advisor.models.runtimes`); ``auto`` chooses by a short timed trial.
RUNTIMES = ("eager", "channels-last", "onnxruntime", "compile")
RUNTIME_CHOICES = ("auto", *RUNTIMES)


def check_runtime(name: str) -> str:
    """`name` if it is a known runtime choice (`RUNTIME_CHOICES`).

    Raises:
        UsageError: an unknown name (with the known ones).
    """
    if name not in RUNTIME_CHOICES:
        raise UsageError(f"unknown runtime {name!r}", hint=f"use one of: {', '.join(RUNTIME_CHOICES)}")
    return name


def resolve_precision(precision: str, device: torch.device) -> str:
    """The feature-extraction precision to run: ``auto`` is bf16 on CUDA with bf16 support, fp16 on other GPUs
    (and MPS), fp32 on CPU; an explicit bf16/fp16 on CPU runs as fp32 (no CPU autocast for inference).

    Raises:
        UsageError: unknown precision.
    """
    check_choice(precision, PRECISIONS, "precision")
    if precision != "auto":
        return "fp32" if device.type == "cpu" else precision
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"


def autocast(
    device: str | torch.device, precision: str | None, *, on_cpu: bool = True
) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for ``precision``: ``torch.autocast`` to bf16 (``bf16``, ``amp_bf16``) or fp16
    (``fp16``, ``amp_fp16``) on the device's type; a null context for ``fp32``/None, and on a CPU device when
    ``on_cpu`` is False."""
    import torch

    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    p = (precision or "fp32").removeprefix("amp_")
    if p == "fp32" or (kind == "cpu" and not on_cpu):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if p == "bf16" else torch.float16
    return torch.autocast(device_type=kind, dtype=dtype)


# ------------------------------------------------------------------------------------------------ memory
def is_oom_error(exc: BaseException) -> bool:
    """True for an out-of-memory error from torch (CUDA, MPS or CPU allocator) or Python's `MemoryError`."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def free_device_memory(device: str | torch.device) -> None:
    """Release cached blocks after an OOM so the next, smaller attempt starts clean."""
    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


@dataclass
class BackoffResult:
    """What `run_with_oom_backoff` did: the batch size that ran, its result, and every batch that did not fit."""

    requested: int
    batch_size: int | None  # None when even the smallest batch ran out of memory
    result: Any = None
    oom_batches: list[int] = field(default_factory=list)


def run_with_oom_backoff(
    run: Callable[[int], Any],
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    min_batch: int = 1,
    shrink: float = 0.5,
) -> BackoffResult:
    """Call ``run(batch_size)``; on an out-of-memory error retry with a smaller batch (x ``shrink``) down to
    ``min_batch``. Other exceptions propagate.

    Returns:
        `BackoffResult` with the batch that fitted (``None`` if none did) and the batches that ran out of memory.
    """
    out = BackoffResult(requested=batch_size, batch_size=None)
    bs = batch_size
    while bs >= min_batch:
        try:
            out.result = run(bs)
            out.batch_size = bs
            return out
        except Exception as e:  # noqa: BLE001 - only OOMs are handled; the rest re-raise below
            if not is_oom_error(e):
                raise
            out.oom_batches.append(bs)
            log.debug("out of memory at batch %d on %s", bs, device)
        # Outside the except block: the traceback (and the tensors its frames hold) is gone, so memory can be freed.
        free_device_memory(device)
        if bs == min_batch:
            break
        bs = max(min_batch, int(bs * shrink))
    return out


def find_max_batch(
    fits: Callable[[int], bool | None],
    *,
    start: int = 1,
    limit: int = 4096,
    device: str | torch.device = "cpu",
) -> tuple[int | None, list[int]]:
    """Largest batch size in [start, limit] for which ``fits(bs)`` runs without an out-of-memory error.

    Doubles from ``start`` until an OOM (or ``limit``), then bisects between the last fit and the first failure.
    ``fits`` may also return False to mean "does not fit". Returns (largest fitting batch or None, OOM batches).
    """
    oom: list[int] = []

    def ok(bs: int) -> bool:
        try:
            r = fits(bs)
            return r is not False
        except Exception as e:  # noqa: BLE001
            if not is_oom_error(e):
                raise
            oom.append(bs)
        free_device_memory(device)  # after the except block: the failed attempt's tensors are unreferenced
        return False

    if not ok(start):
        return None, oom
    good, bad = start, None
    while bad is None:
        nxt = min(good * 2, limit)
        if nxt == good:
            return good, oom
        if ok(nxt):
            good = nxt
        else:
            bad = nxt
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, oom


# ------------------------------------------------------------------------------------------------ threads
@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch intra-op CPU threads (None or 0: leave the count alone); restore the
    previous count after. Yields the count in effect."""
    import torch

    before = torch.get_num_threads()
    try:
        if n:
            torch.set_num_threads(int(n))
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def numerics(
    device: str | torch.device, *, tf32: bool, threads: int | None, cudnn_benchmark: bool = True
) -> Iterator[int]:
    """Set TF32 explicitly (off unless asked), cudnn.benchmark and the CPU thread count for a block; restore all.
    Yields the thread count in effect."""
    import torch

    old_bench = torch.backends.cudnn.benchmark
    old_mm = torch.backends.cuda.matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = cudnn_benchmark
        with num_threads(threads) as n:
            yield n
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_mm
        torch.backends.cudnn.allow_tf32 = old_cudnn
        torch.backends.cudnn.benchmark = old_bench


__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "BackoffResult",
    "DeviceName",
    "autocast",
    "device_kind",
    "find_max_batch",
    "free_device_memory",
    "is_oom_error",
    "num_threads",
    "numerics",
    "resolve_device",
    "resolve_precision",
    "run_with_oom_backoff",
    "synchronize_fn",
]
