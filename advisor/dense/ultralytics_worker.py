"""The child process that runs an Ultralytics YOLO detector for `advisor.dense.models_ultralytics`.

Run as ``python ultralytics_worker.py WEIGHTS`` (stdlib, numpy and ultralytics only: any interpreter that has them). Ultralytics (AGPL-3.0) is imported only here, in a
separate process the user asked for by naming a ``pkg:ultralytics/…`` model; the advisor process never imports it.
``WEIGHTS`` is a ``.pt`` file that the ``ultralytics`` package loads (a pickle: this is the user's explicit choice of
that package and its weights, and it happens in this process only).

Protocol: JSON lines. First line out: ``{"ready": true, "names": {id: name}}`` or ``{"error": "..."}``. Then per
line in ``{"images": [path, ...], "conf": c, "iou": i, "imgsz": n}`` one line out ``{"detections": [[[x1, y1, x2,
y2, score, class], ...] per image]}`` (pixels of each image) or ``{"error": "..."}``; ``{"quit": true}`` ends it.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _np(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "cpu"):
        x = x.cpu()
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def _detections(result: Any) -> list[list[float]]:
    b = result.boxes
    xyxy, conf, cls = _np(b.xyxy).reshape(-1, 4), _np(b.conf).reshape(-1), _np(b.cls).reshape(-1)
    return [[*map(float, xyxy[i]), float(conf[i]), float(cls[i])] for i in range(len(conf))]


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    """Serve detection requests until ``quit`` or end of input."""
    if len(argv) != 2:
        _say({"error": "usage: python ultralytics_worker.py WEIGHTS"})
        return 2
    try:
        from ultralytics import YOLO

        model = YOLO(argv[1])
    except Exception as e:  # the package is missing or the weights do not load: tell the parent, then stop
        _say({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"})
        return 1
    names = getattr(model, "names", None)
    _say({"ready": True, "names": {str(k): str(v) for k, v in dict(names or {}).items()}})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if req.get("quit"):
                break
            results = model.predict(
                req["images"], conf=req.get("conf", 0.25), iou=req.get("iou", 0.7), imgsz=req.get("imgsz", 640),
                verbose=False,
            )  # fmt: skip
            _say({"detections": [_detections(r) for r in results]})
        except Exception as e:  # one bad request: say why and keep serving
            _say({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
