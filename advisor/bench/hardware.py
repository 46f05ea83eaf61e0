"""Hardware and software fingerprint stored with every benchmark figure: CPU, cores, memory, GPU, driver, versions."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from advisor.io import stable_hash

_PACKAGES = ("torch", "torchvision", "timm", "transformers", "onnxruntime", "fvcore", "numpy")
# Fields that identify the machine + software stack; free memory and similar volatile values stay out of the key.
_KEY_FIELDS = (
    "cpu_model",
    "cpu_physical_cores",
    "cpu_logical_cpus",
    "memory_total_gb",
    "gpus",
    "driver_version",
    "cuda_version",
    "cudnn_version",
    "versions",
    "machine",
    "os",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return (
                subprocess.run(
                    ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
                ).stdout.strip()
                or platform.processor()
            )
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _physical_cores() -> int | None:
    try:
        cores = set()
        phys = None
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    cores.add((phys, line.split(":", 1)[1].strip()))
        return len(cores) or None
    except OSError:
        return None


def _memory_total_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _versions() -> dict[str, str | None]:
    from advisor.versions import package_versions

    return package_versions(_PACKAGES)


def _nvidia_driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        r = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _gpu_info() -> tuple[list[dict[str, Any]], str | None, str | None]:
    try:
        import torch
    except ImportError:
        return [], None, None
    gpus: list[dict[str, Any]] = []
    cuda_version = torch.version.cuda
    cudnn = None
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "index": i,
                    "name": p.name,
                    "memory_gb": round(p.total_memory / 1024**3, 1),
                    "capability": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count,
                }
            )
        try:
            cudnn = str(torch.backends.cudnn.version())
        except Exception:  # noqa: BLE001
            cudnn = None
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        gpus.append({"index": 0, "name": "Apple MPS", "memory_gb": None, "capability": None})
    return gpus, cuda_version, cudnn


@functools.lru_cache(maxsize=1)
def _fingerprint_cached() -> tuple[tuple[str, Any], ...]:
    gpus, cuda_version, cudnn = _gpu_info()
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    fp: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_physical_cores": _physical_cores(),
        "cpu_logical_cpus": os.cpu_count(),
        "cpu_usable_cpus": affinity,
        "memory_total_gb": _memory_total_gb(),
        "gpus": gpus,
        "driver_version": _nvidia_driver() if gpus and gpus[0]["name"] != "Apple MPS" else None,
        "cuda_version": cuda_version if gpus else None,
        "cudnn_version": cudnn,
        "versions": _versions(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname_hash": stable_hash(platform.node(), 8),
    }
    return tuple(fp.items())


def hardware_fingerprint() -> dict[str, Any]:
    """Describe this machine and software stack; ``key`` is a short hash of the stable fields.

    Returns a JSON-able dict: cpu_model, cpu_physical_cores, cpu_logical_cpus, cpu_usable_cpus, memory_total_gb,
    gpus (name, memory_gb, capability), driver_version, cuda_version, cudnn_version, versions (python, torch,
    torchvision, timm, transformers, onnxruntime, fvcore, numpy), machine, os, hostname_hash, key.
    """
    import copy

    fp = copy.deepcopy(dict(_fingerprint_cached()))
    fp["key"] = stable_hash({k: fp[k] for k in _KEY_FIELDS}, 16)
    return fp


def device_class(fp: dict[str, Any], device: str) -> str:
    """A short label of what ran the benchmark: the GPU name for cuda, the CPU model (+ usable cores) for cpu."""
    if str(device).startswith("cuda") and fp.get("gpus"):
        idx = int(str(device).split(":")[1]) if ":" in str(device) else 0
        g = fp["gpus"][min(idx, len(fp["gpus"]) - 1)]
        return f"{g['name']} ({g['memory_gb']} GB)"
    if str(device).startswith("mps"):
        return "Apple MPS"
    return f"{fp.get('cpu_model')} ({fp.get('cpu_usable_cpus')} usable CPUs)"
