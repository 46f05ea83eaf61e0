"""Memory measurement: peak resident memory on CPU (sampling thread), peak allocated/reserved on CUDA, and a
weights-only estimate on the meta device (no download, no allocation).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# OOM detection and batch back-off live in the runtime (one implementation for bench, features and fine-tune);
# re-exported here, where the benchmark harness and its tests have always found them.
from advisor.runtime import (
    BackoffResult,
    find_max_batch,
    free_device_memory,
    is_oom_error,
    run_with_oom_backoff,
)

MB = 1024.0 * 1024.0  # memory figures are MiB (2^20 bytes), labelled "MB" in tables as is customary for RAM

CPU_METHOD = (
    "peak VmRSS of this process sampled every {interval_ms:g} ms by a background thread (/proc/self/status) "
    "during input creation, the first call and the warm-up calls, minus VmRSS just before (after gc and glibc "
    "malloc_trim returned freed memory to the OS, so earlier runs' cached blocks do not hide this one's)"
)
CUDA_METHOD = (
    "torch.cuda.max_memory_allocated / max_memory_reserved after reset_peak_memory_stats, minus the memory "
    "allocated before the inputs were made"
)

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "amp_fp16": 4, "amp_bf16": 4}


def release_freed_memory() -> bool:
    """Return freed heap memory to the OS (gc + glibc ``malloc_trim``), so an RSS baseline is not inflated by
    blocks cached from earlier work. Returns False where malloc_trim is unavailable (non-glibc platforms)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def read_rss_bytes() -> int:
    """Current resident set size of this process in bytes (VmRSS from /proc; ru_maxrss where /proc is absent)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is a lifetime peak (KiB on Linux, bytes on macOS): the best we have without /proc.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if os.uname().sysname == "Darwin" else r * 1024)


class RssSampler:
    """Samples this process's RSS in a background thread; use as a context manager.

    Attributes after exit: ``baseline_bytes`` (RSS at entry), ``peak_bytes`` (max seen), ``delta_bytes``
    (peak minus baseline: the increase attributable to the work inside the block).
    """

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def method(self) -> str:
        return CPU_METHOD.format(interval_ms=self.interval_s * 1000)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        rss = read_rss_bytes()
        self.samples += 1
        if rss > self.peak_bytes:
            self.peak_bytes = rss

    def __enter__(self) -> RssSampler:
        self.baseline_bytes = read_rss_bytes()
        self.peak_bytes = self.baseline_bytes
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="advisor-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @property
    def delta_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)


@dataclass
class MemoryStats:
    """Memory used by one (precision, batch size) run. All sizes in MiB; ``None`` = not measured on this device."""

    method: str
    cpu_rss_peak_mb: float | None = None  # absolute peak RSS of the process during the run
    cpu_rss_delta_mb: float | None = None  # peak RSS minus RSS before the run
    gpu_peak_allocated_mb: float | None = None  # tensors alive at the peak, minus what was allocated before
    gpu_peak_reserved_mb: float | None = (
        None  # what the caching allocator held at the peak (what nvidia-smi sees)
    )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MemoryMonitor:
    """Measure the memory of a block of work on ``device`` ("cpu" or "cuda[:i]"); use as a context manager."""

    def __init__(self, device: str, interval_s: float = 0.002) -> None:
        self.device = str(device)
        self.is_cuda = self.device.startswith("cuda")
        self._rss = RssSampler(interval_s)
        self._cuda_base = 0
        self.stats: MemoryStats | None = None

    def __enter__(self) -> MemoryMonitor:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda_base = torch.cuda.memory_allocated(self.device)
        release_freed_memory()
        self._rss.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rss.__exit__(*exc)
        stats = MemoryStats(
            method=self._rss.method,
            cpu_rss_peak_mb=self._rss.peak_bytes / MB,
            cpu_rss_delta_mb=self._rss.delta_bytes / MB,
        )
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            stats.method = CUDA_METHOD + "; CPU: " + self._rss.method
            stats.gpu_peak_allocated_mb = (
                max(0, torch.cuda.max_memory_allocated(self.device) - self._cuda_base) / MB
            )
            stats.gpu_peak_reserved_mb = torch.cuda.max_memory_reserved(self.device) / MB
        self.stats = stats


def weights_bytes(module: Any, precision: str = "fp32") -> dict[str, Any]:
    """Weights-only memory of a module: parameters + buffers, at ``precision`` (floating tensors re-sized).

    Works on a module built on the meta device (nothing allocated, nothing downloaded), which is how
    `estimate_weights_mb` uses it. Returns ``{"n_params", "n_buffers_elems", "weights_mb", "precision"}``.
    """
    per = DTYPE_BYTES.get(precision, 4)
    if precision.startswith("amp"):
        per = 4  # autocast keeps fp32 weights
    n_params = 0
    total = 0
    n_buf = 0
    for p in module.parameters():
        n_params += p.numel()
        total += p.numel() * (per if p.is_floating_point() else p.element_size())
    for b in module.buffers():
        n_buf += b.numel()
        total += b.numel() * (per if b.is_floating_point() else b.element_size())
    return {
        "n_params": n_params,
        "n_buffer_elements": n_buf,
        "weights_mb": total / MB,
        "precision": precision,
    }


def meta_builder(model_id: str) -> Callable[[], Any] | None:
    """A zero-argument builder of the random-init architecture of a ``timm:`` or ``torchvision:`` id (for a build
    on the meta device: nothing allocated, no weights), else None."""
    from advisor.errors import UsageError
    from advisor.models.ids import ModelId

    try:
        mid = ModelId.parse(model_id)
    except UsageError:
        return None
    if mid.source == "timm":

        def build_timm() -> Any:
            import timm

            return timm.create_model(mid.ref, pretrained=False)

        return build_timm
    if mid.source == "torchvision":

        def build_tv() -> Any:
            import torchvision

            return torchvision.models.get_model(mid.name, weights=None)

        return build_tv
    return None


def estimate_weights_mb(build: Callable[[], Any], precision: str = "fp32") -> dict[str, Any]:
    """Build a model on the meta device with ``build()`` and return `weights_bytes` of it (no memory, no download)."""
    import torch

    t0 = time.perf_counter()
    with torch.device("meta"):
        module = build()
    d = weights_bytes(module, precision)
    d["method"] = "parameters + buffers of the architecture instantiated on the meta device"
    d["seconds"] = time.perf_counter() - t0
    return d


__all__ = [
    "CPU_METHOD",
    "CUDA_METHOD",
    "DTYPE_BYTES",
    "MB",
    "BackoffResult",
    "MemoryMonitor",
    "MemoryStats",
    "RssSampler",
    "estimate_weights_mb",
    "meta_builder",
    "read_rss_bytes",
    "find_max_batch",
    "free_device_memory",
    "is_oom_error",
    "release_freed_memory",
    "run_with_oom_backoff",
    "weights_bytes",
]
