"""Per-instance masks of one image (`InstanceMasks`): COCO polygons or RLE kept as read, decoded on demand.

A segmentation is stored the way COCO writes it, so a dataset of thousands of images costs what its annotation file
costs, not ``N x H x W`` booleans:

- a polygon: a list of parts, each ``[x1, y1, x2, y2, ...]`` in absolute pixels (a flat list is one part);
- an uncompressed RLE: ``{"size": [h, w], "counts": [int, ...]}`` (column-major runs, starting with zeros);
- a compressed RLE: ``{"size": [h, w], "counts": "<COCO LEB128 string>"}``.

Decoding (`rles`, `decode`, `areas`, `boxes`) uses the COCO mask API of faster-coco-eval (pycocotools when only it is
installed), rasterising polygons at the image size exactly as COCO's own evaluation does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from advisor.errors import DatasetError, UsageError

Segmentation = list[list[float]] | dict[str, Any]


def mask_api() -> Any:
    """The COCO mask module (``encode``, ``decode``, ``frPyObjects``, ``merge``, ``area``, ``toBbox``).

    Raises:
        UsageError: neither faster-coco-eval nor pycocotools is installed.
    """
    try:
        import faster_coco_eval.core.mask as fmask

        return fmask
    except ImportError:
        pass
    try:
        import pycocotools.mask as pmask

        return pmask
    except ImportError:
        raise UsageError(
            "instance masks need faster-coco-eval (or pycocotools), which is not installed",
            hint="pip install 'faster-coco-eval==1.8.0' (or the advisor[dense] extra)",
        ) from None


def parse_segmentation(seg: Any, height: int, width: int) -> Segmentation | None:
    """`seg` (a COCO ``segmentation`` value) checked and normalised, or None when it holds no usable mask.

    Polygons become a list of parts of at least three points (shorter parts dropped; a flat list is one part);
    RLE dicts must be of the image's size, with integer runs that cover it (uncompressed) or a string that decodes
    to it (compressed; checked with the mask API). An empty list (Roboflow's boxes-only exports) is "no mask".

    Raises:
        UsageError: a compressed RLE, and no COCO mask API installed to check it.
    """
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list | tuple) and len(size) == 2):
            return None
        try:
            h, w = int(size[0]), int(size[1])
        except (TypeError, ValueError):
            return None
        if (h, w) != (height, width):
            return None
        if isinstance(counts, bytes):
            counts = counts.decode("ascii", errors="replace")
        if isinstance(counts, str) and counts:
            try:
                mask_api().area({"size": [h, w], "counts": counts.encode()})
            except (ValueError, RuntimeError, TypeError):  # malformed, or runs of another size
                return None
            return {"size": [h, w], "counts": counts}
        if isinstance(counts, list) and counts and all(isinstance(c, int) and c >= 0 for c in counts):
            return {"size": [h, w], "counts": list(counts)} if sum(counts) == h * w else None
        return None
    if not isinstance(seg, list) or not seg:
        return None
    parts = [seg] if all(isinstance(v, int | float) for v in seg) else seg
    out: list[list[float]] = []
    for p in parts:
        if not isinstance(p, list | tuple) or len(p) < 6 or len(p) % 2:
            continue
        try:
            pts = [float(v) for v in p]
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in pts):
            out.append(pts)
    return out or None


def box_polygon(box: Sequence[float]) -> list[list[float]]:
    """The rectangle of an ``x1, y1, x2, y2`` box as a one-part polygon."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


def _to_rle(api: Any, seg: Segmentation, height: int, width: int) -> dict[str, Any]:
    """One compressed RLE (``counts`` as bytes) of `seg` at the image size, polygon parts merged (as COCO does)."""
    if isinstance(seg, dict):
        if isinstance(seg["counts"], list):
            rle = api.frPyObjects(seg, height, width)
            return {"size": list(rle["size"]), "counts": rle["counts"]}
        counts = seg["counts"]
        return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    parts = api.frPyObjects([list(p) for p in seg], height, width)
    rle = api.merge(parts) if len(parts) > 1 else parts[0]
    return {"size": list(rle["size"]), "counts": rle["counts"]}


@dataclass(frozen=True, eq=False)
class InstanceMasks:
    """The instance masks of one image, one per object, in the order of the sample's boxes and labels.

    Attributes:
        height, width: the image size the masks are decoded at.
        segs: per instance, a COCO segmentation (polygon parts in pixels, or an RLE dict; see the module docstring).
    """

    height: int
    width: int
    segs: tuple[Segmentation, ...] = ()

    def __len__(self) -> int:
        return len(self.segs)

    @classmethod
    def from_binary(cls, masks: np.ndarray) -> InstanceMasks:
        """Instance masks from an ``(N, H, W)`` boolean (or 0/1) array, stored as compressed RLE."""
        m = np.asarray(masks)
        if m.ndim != 3:
            raise ValueError(f"instance masks must be (N, H, W), got shape {m.shape}")
        n, h, w = m.shape
        if n == 0:
            return cls(int(h), int(w), ())
        api = mask_api()
        rles = api.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))
        segs = tuple({"size": [int(h), int(w)], "counts": r["counts"].decode("ascii")} for r in rles)
        return cls(int(h), int(w), segs)

    @cached_property
    def _rles(self) -> tuple[dict[str, Any], ...]:
        api = mask_api()
        out = []
        for i, seg in enumerate(self.segs):
            try:
                out.append(_to_rle(api, seg, self.height, self.width))
            except (ValueError, TypeError, RuntimeError, KeyError) as e:
                raise DatasetError(
                    f"instance mask {i} cannot be decoded: {e}",
                    hint="check its segmentation (polygon in pixels, or RLE of the image's size)",
                ) from e
        return tuple(out)

    def rles(self) -> list[dict[str, Any]]:
        """Per instance, the compressed RLE at the image size with ``counts`` as a string (JSON-able, what
        COCO evaluators read).

        Raises:
            DatasetError: a segmentation that cannot be decoded.
        """
        return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in self._rles]

    def decode(self) -> np.ndarray:
        """The ``(N, H, W)`` boolean masks."""
        if not self.segs:
            return np.zeros((0, self.height, self.width), dtype=bool)
        m = mask_api().decode(list(self._rles))  # (H, W, N)
        return np.ascontiguousarray(np.asarray(m, dtype=bool).transpose(2, 0, 1))

    def areas(self) -> np.ndarray:
        """``(N,)`` float64 mask areas in pixels."""
        if not self.segs:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(mask_api().area(list(self._rles)), dtype=np.float64).reshape(-1)

    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float32 tight ``x1, y1, x2, y2`` boxes of the masks (zeros for an empty mask)."""
        if not self.segs:
            return np.zeros((0, 4), dtype=np.float32)
        b = np.asarray(mask_api().toBbox(list(self._rles)), dtype=np.float64).reshape(-1, 4)
        return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1).astype(np.float32)

    def select(self, keep: np.ndarray | Sequence[bool]) -> InstanceMasks:
        """The masks where `keep` (a boolean array over the instances) is True."""
        k = np.asarray(keep, dtype=bool).reshape(-1)
        if len(k) != len(self.segs):
            raise ValueError(f"keep has {len(k)} entries for {len(self.segs)} masks")
        return InstanceMasks(
            self.height, self.width, tuple(s for s, x in zip(self.segs, k, strict=True) if x)
        )

    def digest(self) -> bytes:
        """A content hash of the stored segmentations (for dataset fingerprints)."""
        blob = json.dumps([self.height, self.width, list(self.segs)], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).digest()
