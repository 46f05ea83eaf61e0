"""Ultralytics YOLO detectors (AGPL-3.0) as an explicit opt-in, run out of process.

They are never default candidates: a run includes one only when ``--models`` names it (``pkg:ultralytics/yolov8n``
…), and ``--license commercial|permissive`` excludes it with the reason shown. The model runs in a child process
(`advisor.dense.ultralytics_worker`) through the user's own ``pip install ultralytics``; this process never imports
ultralytics and never unpickles its ``.pt`` weights (the child's ultralytics does, at the user's request). Images go
to the child as files in a temporary folder; boxes come back as JSON lines.

The child is ``$ADVISOR_ULTRALYTICS_PYTHON`` (an interpreter of another environment that has ultralytics, keeping it
out of this one) or this interpreter, running the worker file, which imports nothing of advisor.

Weights: ``$ADVISOR_ULTRALYTICS_WEIGHTS_DIR/<name>.pt`` when that file exists, else the bare name, which ultralytics
resolves (its own cache, or a download). Offline without the file: `WeightsUnavailableOffline` before any child
starts.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.models import InfoAttributes
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError, WeightsUnavailableOffline

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

NAMES = (
    "yolov8n",
    "yolov8s",
    "yolov8m",
    "yolov8l",
    "yolov8x",
    "yolo11n",
    "yolo11s",
    "yolo11m",
    "yolo11l",
    "yolo11x",
)
LICENSE = "AGPL-3.0-only"
PIP = (
    "pip install ultralytics  (AGPL-3.0: using it in a product obliges you to release that product's source)"
)
WEIGHTS_ENV = "ADVISOR_ULTRALYTICS_WEIGHTS_DIR"
PYTHON_ENV = (
    "ADVISOR_ULTRALYTICS_PYTHON"  # an interpreter with ultralytics (e.g. its own venv); default: this one
)
CONF, IOU, SIZE = 0.25, 0.7, 640
TIMEOUT_S = 300.0  # per request (a batch of images); the first one includes ultralytics' own start-up
NOTE = (
    "runs in a separate process through your own ultralytics install (AGPL-3.0); its .pt weights are unpickled by "
    "ultralytics in that process, at your request"
)


def infos() -> list[DenseModelInfo]:
    """The Ultralytics detectors (opt-in: `DenseModelInfo.opt_in`)."""
    from advisor.dense.labels import COCO80
    from advisor.dense.models import DenseModelInfo

    return [
        DenseModelInfo(
            f"pkg:ultralytics/{n}", "detection", "coco-80", COCO80, LICENSE, (SIZE, SIZE),
            f"letterbox {SIZE}, ultralytics' own decode + NMS (conf {CONF}, IoU {IOU})", False, PIP, opt_in=True, note=NOTE,
        )
        for n in NAMES
    ]  # fmt: skip


def weights_for(name: str) -> str:
    """The weights argument the child gets for model `name` (see the module docstring).

    Raises:
        WeightsUnavailableOffline: offline and no local file.
    """
    from advisor.models.hub import is_offline

    folder = os.environ.get(WEIGHTS_ENV)
    if folder and (Path(folder) / f"{name}.pt").is_file():
        return str(Path(folder) / f"{name}.pt")
    if is_offline(None):
        raise WeightsUnavailableOffline(
            f"pkg:ultralytics/{name}: weights are not available offline",
            hint=f"put {name}.pt into a folder and set {WEIGHTS_ENV} to it",
        )
    return f"{name}.pt"


def load(
    info: DenseModelInfo, *, pretrained: bool = True, device: str = "cpu", input_size: Any = None
) -> Any:
    """Start the child for `info` (its weights are always the published ones: `pretrained` does not apply)."""
    del pretrained, device
    name = info.model_id.split("/", 1)[1]
    return UltralyticsDetector(info, weights_for(name), size=int(max(input_size or (SIZE, SIZE))))


class UltralyticsDetector(InfoAttributes):
    """A YOLO detector in a child process; `close` (or garbage collection, or exit) ends the child."""

    def __init__(self, info: DenseModelInfo, weights: str, *, size: int = SIZE, timeout_s: float = TIMEOUT_S):
        super().__init__(info, pretrained=True)
        self.input_size = (size, size)
        self._size = size
        self.timeout_s = timeout_s
        python = os.environ.get(PYTHON_ENV) or sys.executable
        worker = Path(__file__).with_name("ultralytics_worker.py")  # stdlib + numpy + ultralytics only
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [python, str(worker), weights], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
        )  # fmt: skip
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        atexit.register(self._finalizer)
        first = self._read(TIMEOUT_S)
        if not first.get("ready"):
            self.close()
            raise ModelLoadError(
                f"{info.model_id}: the ultralytics process did not start ({first.get('error')})", hint=PIP
            )

    def _read(self, timeout_s: float) -> dict[str, Any]:
        out = self._proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout_s)
        line = out.readline() if ready else ""
        if not line:
            code = self._proc.poll()
            if ready and code is None:  # end of output: the child is exiting, give it a moment to be reaped
                try:
                    code = self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
            why = f"exited with code {code}" if code is not None else f"no answer within {timeout_s:g} s"
            return {"error": f"the ultralytics process {why}{self._stderr_tail()}"}
        try:
            msg = json.loads(line)
        except ValueError:
            return {"error": f"the ultralytics process wrote something that is not JSON: {line[:120]!r}"}
        return msg if isinstance(msg, dict) else {"error": "unexpected answer"}

    def _stderr_tail(self) -> str:
        try:
            self._err.seek(0)
            tail = self._err.read()[-300:].decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {tail[-1]}" if tail else ""

    def predict(self, images: Sequence[Any]) -> list[Detections]:
        """`Detections` per image (pixels of each image), from the child.

        Raises:
            RuntimeError: the child died, timed out or answered with an error (one line saying which).
        """
        with tempfile.TemporaryDirectory(prefix="advisor-yolo-") as tmp:
            paths = []
            for i, im in enumerate(images):
                p = Path(tmp) / f"{i:05d}.png"
                im.convert("RGB").save(p)
                paths.append(str(p))
            req = {"images": paths, "conf": CONF, "iou": IOU, "imgsz": self._size}
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps(req) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise RuntimeError(
                    f"{self.model_id}: the ultralytics process is gone{self._stderr_tail()}"
                ) from None
            msg = self._read(self.timeout_s)
        if "detections" not in msg or len(msg["detections"]) != len(images):
            raise RuntimeError(f"{self.model_id}: {msg.get('error') or 'wrong number of results'}")
        return [_to_detections(d, len(self.classes)) for d in msg["detections"]]

    def close(self) -> None:
        """End the child (asked to quit, then killed if it does not)."""
        self._finalizer()
        self._err.close()


def _to_detections(rows: list[list[float]], n_classes: int) -> Detections:
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    keep = (a[:, 5] >= 0) & (a[:, 5] < n_classes)
    a = a[keep]
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int64))


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"quit": True}) + "\n")
        proc.stdin.flush()
        proc.wait(timeout=5)
    except (OSError, ValueError, subprocess.TimeoutExpired, AssertionError):
        proc.kill()
        proc.wait(timeout=5)
