"""More packaged dense models: MTCNN (``facenet-pytorch``) faces and the PP-OCR DBNet text detector
(``rapidocr-onnxruntime``'s ``ch_PP-OCRv4_det_infer.onnx``), both with weights inside their wheels (offline).

rapidocr is not imported: its ONNX file is found through `advisor.models.packaged.package_dir` and run by
onnxruntime. facenet-pytorch is imported (its MTCNN is the code); under numpy 2 its ``detect`` returns
object-dtype arrays, cast here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.models_packaged import PackagedBase
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

# DBNet post-processing as PaddleOCR's defaults: pixel threshold, box score threshold, unclip ratio
DB_THRESH = 0.3
DB_BOX_THRESH = 0.5
DB_UNCLIP = 1.5
DB_MIN_SIDE = 3
PPOCR_MAX_SIDE = 960
PPOCR_MEAN = np.asarray([0.485, 0.456, 0.406], dtype=np.float32)
PPOCR_STD = np.asarray([0.229, 0.224, 0.225], dtype=np.float32)


class MtcnnFaces(PackagedBase):
    """MTCNN (P-Net → R-Net → O-Net cascade with NMS inside each stage), facenet-pytorch's implementation."""

    def __init__(self, info: DenseModelInfo, *, device: str = "cpu") -> None:
        super().__init__(info)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise ModelLoadError(
                f"{info.model_id}: its weights come from the PyPI package 'facenet-pytorch', which is not installed",
                hint=info.pip or "pip install --no-deps facenet-pytorch==2.6.0",
            ) from e
        from advisor.runtime import resolve_device

        self.net = MTCNN(keep_all=True, device=resolve_device(device))
        self.n_params = int(sum(p.numel() for p in self.net.parameters()))

    def predict(self, images: Sequence[Any]) -> list[Detections]:
        """Faces per image (boxes in the image's pixels, clipped to it)."""
        out = []
        for im in images:
            rgb = im.convert("RGB")
            boxes, probs = self.net.detect(rgb)
            if boxes is None or len(boxes) == 0:
                out.append(Detections.empty())
                continue
            b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            b = np.clip(b, 0, [rgb.width, rgb.height, rgb.width, rgb.height]).astype(np.float32)
            s = np.asarray(probs, dtype=np.float32).reshape(-1)
            out.append(Detections(b, s, np.zeros(len(b), dtype=np.int64)))
        return out


def text_boxes(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DBNet probability map → axis-aligned boxes: pixels > `DB_THRESH`, connected components (8-neighbour),
    a component kept when its mean probability > `DB_BOX_THRESH`, its box grown by the unclip distance
    ``area * DB_UNCLIP / perimeter`` (DBNet shrinks text regions by that much in training).

    Returns:
        ``(N, 4)`` float32 xyxy boxes in map pixels and ``(N,)`` float32 scores.
    """
    from scipy import ndimage

    labels, n = ndimage.label(prob > DB_THRESH, structure=np.ones((3, 3), dtype=bool))
    boxes, scores = [], []
    h, w = prob.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        ys, xs = sl
        bw, bh = xs.stop - xs.start, ys.stop - ys.start
        if min(bw, bh) < DB_MIN_SIDE:
            continue
        score = float(prob[sl][labels[sl] == k].mean())
        if score <= DB_BOX_THRESH:
            continue
        d = bw * bh * DB_UNCLIP / (2 * (bw + bh))
        boxes.append([max(0, xs.start - d), max(0, ys.start - d), min(w, xs.stop + d), min(h, ys.stop + d)])
        scores.append(score)
    if not boxes:
        return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32), np.asarray(scores, dtype=np.float32)


class PpocrTextDetector(PackagedBase):
    """PP-OCRv4 DBNet text detector: RGB with ImageNet mean/std, sides multiples of 32 (longer side at most
    `PPOCR_MAX_SIDE`) → text probability map → `text_boxes`, scaled back to the image."""

    def __init__(self, info: DenseModelInfo) -> None:
        from advisor.dense.models_packaged import _file

        super().__init__(info)
        path = _file(info, "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self.sess.get_inputs()[0].name

    def predict(self, images: Sequence[Any]) -> list[Detections]:
        """Text boxes per image (in the image's pixels)."""
        return [self._one(im) for im in images]

    def _one(self, im: Any) -> Detections:
        from PIL import Image

        rgb = im.convert("RGB")
        scale = min(1.0, PPOCR_MAX_SIDE / max(rgb.size))
        w32, h32 = (max(32, int(math.ceil(v * scale / 32)) * 32) for v in rgb.size)
        arr = np.asarray(rgb.resize((w32, h32), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        x = ((arr - PPOCR_MEAN) / PPOCR_STD).transpose(2, 0, 1)[None].astype(np.float32)
        prob = self.sess.run(None, {self._input: x})[0][0, 0]
        boxes, scores = text_boxes(prob)
        boxes *= np.asarray([rgb.width / w32, rgb.height / h32] * 2, dtype=np.float32)
        return Detections(boxes, scores, np.zeros(len(boxes), dtype=np.int64))
