"""Runtimes for a loaded torch image model's forward pass: eager, channels-last, ONNX Runtime, torch.compile.

`with_runtime(lm, "auto")` picks, per model and device, the fastest runtime by a short timed trial on a random batch
of the model's own input size, after checking each one's outputs against eager on that batch; `with_runtime(lm,
NAME)` forces one. A runtime that cannot be built or whose outputs differ from eager by more than the tolerance
falls back to eager, and the reason is recorded (`RuntimeChoice`), so every result says what computed it.

- ``eager``: the module as loaded.
- ``channels-last``: weights and inputs in NHWC memory format (faster convolutions on CPU and on tensor cores).
- ``onnxruntime`` (CPU): the module (and its source head) exported by ``torch.onnx.export`` (TorchScript-based,
  opset `OPSET`, dynamic batch) into the cache, keyed by the model's preprocessing signature, a digest of its
  weights and the torch version, so a changed model is re-exported, never served stale. The file is one this
  library wrote; ONNX Runtime runs it with as many threads as torch uses.
- ``compile``: ``torch.compile`` (never chosen by ``auto``: its first call compiles for tens of seconds).

Only image models with a torch module have a choice; any other model runs as loaded (``eager`` with the reason).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from advisor.errors import UsageError
from advisor.runtime import RUNTIMES, check_runtime

if TYPE_CHECKING:
    from advisor.models.base import LoadedModel

log = logging.getLogger(__name__)

OPSET = 17
RTOL, ATOL = 1e-3, 1e-4  # |runtime - eager| <= ATOL + RTOL * max|eager|, features and logits
TRIAL_BATCH = 8
CLOSE = 1.5  # a runtime within this factor of the fastest in the trial is timed a second time
EXPORT_VERSION = 1  # bump when the export recipe changes: a new cache key


@dataclass
class RuntimeChoice:
    """Which runtime computed a model's outputs, and why.

    Attributes:
        runtime: the runtime used (``eager`` after a fallback).
        requested: what was asked for (``auto`` or a name).
        trial_ms: per runtime tried, the best ms of its 1-2 timed passes on a `TRIAL_BATCH` batch (`_trial`).
        max_abs_diff: per runtime, the largest |output - eager| on the check batch.
        reasons: why a runtime was not used (``{name: reason}``).
        remembered: ``auto`` reused the choice of an earlier trial of this model on this machine (its outputs
            checked against eager again).
    """

    runtime: str
    requested: str
    trial_ms: dict[str, float | None] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    remembered: bool = False  # the auto choice was taken from an earlier trial on this machine (re-checked)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _eligible(lm: LoadedModel) -> str | None:
    """None when `lm` can take another runtime, else the reason it cannot."""
    if lm.module is None:
        return f"{lm.runtime} model: runs as loaded"
    if lm.modality != "image":
        return f"{lm.modality} model: only image models have other runtimes here"
    return None


def with_runtime(
    lm: LoadedModel, runtime: str = "auto", *, trial_batch: int = TRIAL_BATCH
) -> tuple[LoadedModel, RuntimeChoice]:
    """`lm` running on `runtime` (``auto``: the fastest equivalent one), and the record of the choice.

    The returned model is a new `LoadedModel` (or `lm` itself for eager); its ``runtime`` attribute, part of the
    features cache key, names the runtime.
    """
    check_runtime(runtime)
    choice = RuntimeChoice("eager", runtime)
    why = _eligible(lm)
    if why is not None or runtime == "eager":
        if why is not None and runtime != "eager":
            choice.reasons[runtime] = why
        return lm, choice
    remembered = _remembered(lm, trial_batch) if runtime == "auto" else None
    if remembered is not None:
        got = _use_remembered(lm, remembered, trial_batch, choice)
        if got is not None:
            return got, choice
    names = [runtime] if runtime != "auto" else _auto_names(lm)
    batch = lm.example_batch(trial_batch)
    ref = _outputs(lm, batch)
    built: dict[str, LoadedModel] = {}
    for name in names:
        try:
            cand = _build(lm, name)
            out = _outputs(cand, batch)
        except Exception as e:  # any failure to build or run means: not this runtime
            choice.reasons[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            continue
        diff = _max_diff(ref, out)
        choice.max_abs_diff[name] = diff
        tol = ATOL + RTOL * max(float(ref[0].abs().max()), 1e-12)
        if diff > tol:
            choice.reasons[name] = f"outputs differ from eager by {diff:.2e} (> {tol:.2e})"
            continue
        built[name] = cand
    if runtime != "auto":
        if runtime in built:
            choice.runtime = runtime
            return built[runtime], choice
        log.info("%s: runtime %s not used (%s)", lm.model_id, runtime, choice.reasons.get(runtime))
        return lm, choice
    timed = {"eager": lm, **built}
    choice.trial_ms.update(_trial(timed, batch))
    best = min(timed, key=lambda n: choice.trial_ms[n] or float("inf"))
    choice.runtime = best
    _remember(lm, trial_batch, choice)
    return timed[best], choice


def _choice_path(lm: LoadedModel, trial_batch: int) -> Path:
    """Where the auto choice of `lm` on this machine is remembered (a speed decision; equivalence is re-checked)."""
    from advisor.bench.hardware import hardware_fingerprint
    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    key = stable_hash(
        {
            "v": EXPORT_VERSION,
            "signature": lm.preprocess_signature(),
            "device": lm.device.type,
            "threads": torch.get_num_threads(),
            "hardware": hardware_fingerprint()["key"],
            "batch": trial_batch,
        },
        length=32,
    )
    return cache_dir("runtime-choice") / f"{key}.json"


def _remembered(lm: LoadedModel, trial_batch: int) -> dict[str, Any] | None:
    import json

    try:
        d = json.loads(_choice_path(lm, trial_batch).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("runtime") in RUNTIMES else None


def _remember(lm: LoadedModel, trial_batch: int, choice: RuntimeChoice) -> None:
    from advisor.io import atomic_write_json

    try:
        atomic_write_json(_choice_path(lm, trial_batch), choice.to_dict())
    except OSError as e:  # only a speed decision: the next run times again
        log.info("runtime choice not remembered: %s", e)


def _use_remembered(
    lm: LoadedModel, d: dict[str, Any], trial_batch: int, choice: RuntimeChoice
) -> LoadedModel | None:
    """The remembered runtime, built and checked against eager (None: it no longer builds or matches)."""
    name = str(d["runtime"])
    choice.trial_ms = dict(d.get("trial_ms") or {})
    choice.reasons = dict(d.get("reasons") or {})
    choice.remembered = True
    if name == "eager":
        return lm
    batch = lm.example_batch(trial_batch)
    try:
        cand = _build(lm, name)
        ref = _outputs(lm, batch)
        diff = _max_diff(ref, _outputs(cand, batch))
    except Exception:  # rebuild failed: time them all again
        choice.remembered = False
        return None
    ref_max = float(ref[0].abs().max())
    if diff > ATOL + RTOL * ref_max:
        choice.remembered = False
        return None
    choice.runtime, choice.max_abs_diff = name, {name: diff}
    return cand


def _auto_names(lm: LoadedModel) -> list[str]:
    return ["channels-last", "onnxruntime"] if lm.device.type == "cpu" else ["channels-last"]


def _outputs(lm: LoadedModel, batch: tuple) -> tuple[Any, Any]:
    import torch

    with torch.inference_mode():
        o = lm.forward(batch)
    return o.features.float().cpu(), (None if o.logits is None else o.logits.float().cpu())


def _max_diff(a: tuple[Any, Any], b: tuple[Any, Any]) -> float:
    d = float((a[0] - b[0]).abs().max()) if a[0].shape == b[0].shape else float("inf")
    if a[1] is not None:
        d = max(
            d, float((a[1] - b[1]).abs().max()) if b[1] is not None and a[1].shape == b[1].shape else 1e30
        )
    return d


def _time_ms(lm: LoadedModel, batch: tuple) -> float:
    """Milliseconds of one forward pass of `lm` on `batch` (already warm: its equivalence check ran it)."""
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        lm.forward(batch)
        return (time.perf_counter() - t0) * 1e3


def _trial(timed: dict[str, LoadedModel], batch: tuple) -> dict[str, float]:
    """Per runtime, the best of its timed passes on `batch`, in ms.

    Every runtime is warm when this runs (the eager reference and each equivalence check were a pass on the same
    batch), so each is timed once, and the ones within `CLOSE` of the fastest once more: a clear loser costs one
    pass, a close call gets the best of two for each side (noise only ever adds time). On the demo's
    EfficientNet-Lites this is 2-3 passes per runtime instead of 4.
    """
    ms = {name: _time_ms(cand, batch) for name, cand in timed.items()}
    fastest = min(ms.values())
    for name, cand in timed.items():
        if ms[name] <= CLOSE * fastest:
            ms[name] = min(ms[name], _time_ms(cand, batch))
    return ms


def _derived(
    lm: LoadedModel, runtime: str, *, module: Any = None, head: Any = None, forward_fn: Any = None
) -> LoadedModel:
    """A copy of `lm` (preprocessing, metadata, device, dtype) that runs its forward on another runtime."""
    new = copy.copy(lm)
    new.runtime = runtime
    new.module, new.head, new._forward_fn = module, head, forward_fn
    new._signature = dict(lm._signature)
    new.info = lm.info | {"runtime_of": lm.runtime}
    return new


def _build(lm: LoadedModel, name: str) -> LoadedModel:
    if name == "channels-last":
        return _channels_last(lm)
    if name == "onnxruntime":
        return _onnxruntime(lm)
    if name == "compile":
        return _derived(lm, "compile", module=torch.compile(lm.module), head=lm.head)
    raise UsageError(f"unknown runtime {name!r}")


class _NHWC(torch.nn.Module):
    """Runs `module` with its image input in channels-last memory format."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, *rest: Any) -> Any:
        return self.module(x.contiguous(memory_format=torch.channels_last), *rest)


class _WithHead(torch.nn.Module):
    """The module followed by its source head, for one export with both outputs."""

    def __init__(self, module: torch.nn.Module, head: torch.nn.Module) -> None:
        super().__init__()
        self.module, self.head = module, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.module(x)
        return f, self.head(f)


def _channels_last(lm: LoadedModel) -> LoadedModel:
    import copy

    module = copy.deepcopy(lm.module).to(memory_format=torch.channels_last)
    return _derived(lm, "channels-last", module=_NHWC(module), head=lm.head)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and bytes of every parameter and buffer of `module`."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _onnx_path(lm: LoadedModel) -> Path:
    import torch

    from advisor.io import stable_hash
    from advisor.paths import cache_dir

    parts = [lm.module] + ([lm.head] if lm.head is not None else [])
    key = stable_hash(
        {
            "v": EXPORT_VERSION,
            "signature": lm.preprocess_signature(),
            "weights": [weights_digest(p) for p in parts],
            "torch": torch.__version__,
            "opset": OPSET,
            "size": lm.input_size,
        },
        length=32,
    )
    return cache_dir("onnx") / f"{key}.onnx"


_STDOUT_LOCK = threading.Lock()


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Discard stdout (Python's and file descriptor 1) for the block: a failing export prints its whole
    TorchScript graph (tens of kB) to descriptor 1 from C++, which broke ``--format json`` output; the reason of
    the failure is kept in the `RuntimeChoice`. One block at a time (the lock), so concurrent exports cannot leave
    descriptor 1 pointing elsewhere."""
    import os
    from contextlib import redirect_stdout

    # Python's own stdout buffer is not flushed here and nothing in the block writes to it (redirected), so what
    # was written before the block reaches descriptor 1 after it, once it is restored.
    with _STDOUT_LOCK, open(os.devnull, "w") as sink, redirect_stdout(sink):
        try:
            saved = os.dup(1)
        except OSError:  # no descriptor 1 (a detached process): nothing more to protect
            yield
            return
        try:
            os.dup2(sink.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _export(lm: LoadedModel, path: Path) -> None:
    """Export `lm` (module, and head as a second output) to `path`, atomically (a temp file, then a rename)."""
    import os

    net = lm.module if lm.head is None else _WithHead(lm.module, lm.head).eval()
    x = lm.example_batch(2)[0]
    names = ["features"] + (["logits"] if lm.head is not None else [])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # the TorchScript exporter: torch's newer one needs onnxscript, which advisor does not depend on
        with _quiet_stdout(), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=names,
                dynamic_axes={"image": {0: "n"}, **{n: {0: "n"} for n in names}},
                opset_version=OPSET,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _onnxruntime(lm: LoadedModel) -> LoadedModel:
    import numpy as np
    import onnxruntime as ort
    import torch

    from advisor.models.base import ModelOutput

    if lm.device.type != "cpu":
        raise UsageError("onnxruntime is used on CPU here (on GPU: channels-last with autocast)")
    path = _onnx_path(lm)
    if not path.exists():
        t0 = time.perf_counter()
        _export(lm, path)
        log.info("%s: exported to ONNX in %.1f s (%s)", lm.model_id, time.perf_counter() - t0, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    has_head = lm.head is not None

    def forward(batch: tuple) -> ModelOutput:
        x = batch[0]
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        outs = session.run(None, {"image": arr})
        feats = torch.from_numpy(np.asarray(outs[0], dtype=np.float32))
        logits = torch.from_numpy(np.asarray(outs[1], dtype=np.float32)) if has_head else None
        return ModelOutput(features=feats, logits=logits)

    new = _derived(lm, "onnxruntime", forward_fn=forward)
    new.info["onnx_file"] = str(path)
    return new
