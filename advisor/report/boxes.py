"""Images with their ground-truth and predicted boxes, as inline SVG for the single-file HTML report.

The image is embedded as a downscaled PNG data URI (no external link); when the file can no longer be read the
boxes are drawn on a blank canvas of the recorded size, with a note. Labels are escaped.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

MAX_SIDE = 360


def _data_uri(path: str, scale: float) -> str | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rect(b: list[Any], scale: float, colour: str, text: str) -> str:
    x1, y1, x2, y2 = (float(v) * scale for v in b[:4])
    return (
        f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(x2 - x1, 0):.1f}" height="{max(y2 - y1, 0):.1f}" '
        f'fill="none" stroke="{colour}" stroke-width="2"/>'
        f'<text x="{x1 + 2:.1f}" y="{max(y1 - 2, 9):.1f}" fill="{colour}" font-size="10">{escape(text)}</text>'
    )


def boxes_svg(example: dict[str, Any]) -> str:
    """One example (``image``, ``width``, ``height``, ``gt`` [[x1,y1,x2,y2,label]], ``pred`` [[…, score, label]])."""
    w, h = int(example.get("width") or 1), int(example.get("height") or 1)
    scale = min(1.0, MAX_SIDE / max(w, h))
    sw, sh = round(w * scale), round(h * scale)
    uri = _data_uri(str(example.get("image", "")), scale)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{sw}" height="{sh}" viewBox="0 0 {sw} {sh}">']
    if uri:
        parts.append(f'<image href="{uri}" width="{sw}" height="{sh}"/>')
    else:
        parts.append(
            f'<rect width="{sw}" height="{sh}" fill="#e5e7eb"/><text x="4" y="14">image not readable</text>'
        )
    parts += [_rect(b, scale, "#16a34a", str(b[4])) for b in example.get("gt", [])]
    parts += [_rect(b, scale, "#dc2626", f"{b[5]} {float(b[4]):.2f}") for b in example.get("pred", [])]
    parts.append("</svg>")
    return "".join(parts)


def examples_html(model_id: str, examples: list[dict[str, Any]]) -> str:
    """A figure of `model_id`'s example images: green = ground truth, red = predictions (score shown)."""
    if not examples:
        return ""
    svgs = "".join(boxes_svg(e) for e in examples)
    cap = f"{escape(model_id)}: green = ground truth, red = predictions (score >= 0.3)"
    return f"<figure>{svgs}<figcaption>{cap}</figcaption></figure>"
