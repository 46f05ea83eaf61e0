"""Dependency-free inline SVG charts (scatter with an optional front line, horizontal bars) for the HTML report."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


@dataclass
class Point:
    """One scatter point: coordinates, a label and styling flags."""

    x: float
    y: float
    label: str = ""
    highlight: bool = False
    group: int = 0
    y_low: float | None = None  # optional interval drawn as an error bar
    y_high: float | None = None


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * span:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _point_marks(
    p: Point, sx: Callable[[float], float], sy: Callable[[float], float], mid_x: float
) -> list[str]:
    """SVG elements of one scatter point: its error bar (when it has an interval), the dot and its label."""
    out: list[str] = []
    color = PALETTE[1] if p.highlight else PALETTE[p.group % len(PALETTE)] if p.group else PALETTE[0]
    r = 6 if p.highlight else 4.5
    if p.y_low is not None and p.y_high is not None:
        X = sx(p.x)
        out.append(
            f'<path d="M{X:.1f},{sy(p.y_low):.1f} L{X:.1f},{sy(p.y_high):.1f} M{X - 4:.1f},{sy(p.y_low):.1f} '
            f'L{X + 4:.1f},{sy(p.y_low):.1f} M{X - 4:.1f},{sy(p.y_high):.1f} L{X + 4:.1f},{sy(p.y_high):.1f}" '
            f'stroke="{color}" stroke-opacity="0.6" fill="none"/>'
        )
    out.append(
        f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{r}" fill="{color}" fill-opacity="0.8">'
        f"<title>{escape(p.label)}: ({_fmt(p.x)}, {_fmt(p.y)})</title></circle>"
    )
    if p.label:
        right_half = sx(p.x) > mid_x  # label on the inner side so it stays inside the plot
        lx, anchor = (sx(p.x) - 7, "end") if right_half else (sx(p.x) + 7, "start")
        out.append(
            f'<text x="{lx:.1f}" y="{sy(p.y) - 6:.1f}" text-anchor="{anchor}" fill="#374151">'
            f"{escape(p.label)}</text>"
        )
    return out


def scatter(
    points: Sequence[Point],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    front: Sequence[tuple[float, float]] | None = None,
    diagonal: bool = False,
    width: int = 640,
    height: int = 400,
    note: str | None = None,
) -> str:
    """An SVG scatter plot; `front` draws a step line through the given points (e.g. a Pareto front)."""
    ml, mr, mt, mb = 64, 24, 40, 56
    pw, ph = width - ml - mr, height - mt - mb
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    pts = [
        p for p in points if p.x is not None and p.y is not None and math.isfinite(p.x) and math.isfinite(p.y)
    ]
    if log_x:
        pts = [p for p in pts if p.x > 0]
    if not pts:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data to plot</text></svg>'
        )
        return "".join(parts)

    def tx(v: float) -> float:
        return math.log10(v) if log_x else v

    xs = [tx(p.x) for p in pts]
    ys = [p.y for p in pts] + [v for p in pts for v in (p.y_low, p.y_high) if v is not None]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    padx = (x1 - x0) * 0.08 or 0.5
    pady = (y1 - y0) * 0.08 or 0.05 * (abs(y1) or 1)
    x0, x1, y0, y1 = x0 - padx, x1 + padx, y0 - pady, y1 + pady
    if diagonal:
        x0 = y0 = min(x0, y0)
        x1 = y1 = max(x1, y1)

    def sx(v: float) -> float:
        return ml + (tx(v) - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return mt + ph - (v - y0) / (y1 - y0) * ph

    parts.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>')
    if log_x:
        xt = [10.0**e for e in range(math.floor(x0), math.ceil(x1) + 1)]
        xt = [v for v in xt if x0 <= math.log10(v) <= x1] or [10**x0, 10**x1]
    else:
        xt = _nice_ticks(x0, x1)
    for v in xt:
        X = sx(v)
        parts.append(f'<line x1="{X:.1f}" y1="{mt}" x2="{X:.1f}" y2="{mt + ph}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{X:.1f}" y="{mt + ph + 16}" text-anchor="middle">{_fmt(v)}</text>')
    for v in _nice_ticks(y0, y1):
        Y = sy(v)
        parts.append(f'<line x1="{ml}" y1="{Y:.1f}" x2="{ml + pw}" y2="{Y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{ml - 6}" y="{Y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 14}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text x="16" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {mt + ph / 2})">'
        f"{escape(y_label)}</text>"
    )
    if diagonal:
        parts.append(
            f'<line x1="{sx(max(x0, y0) if not log_x else 10**x0):.1f}" y1="{sy(max(x0, y0)):.1f}" '
            f'x2="{sx(min(x1, y1) if not log_x else 10**x1):.1f}" y2="{sy(min(x1, y1)):.1f}" '
            'stroke="#9ca3af" stroke-dasharray="4 3"/>'
        )
    if front:
        f = sorted(front)
        d = [f"M{sx(f[0][0]):.1f},{sy(f[0][1]):.1f}"]
        for (_, ya), (xb, yb) in zip(f, f[1:], strict=False):
            d.append(f"L{sx(xb):.1f},{sy(ya):.1f} L{sx(xb):.1f},{sy(yb):.1f}")
        parts.append(f'<path d="{" ".join(d)}" fill="none" stroke="{PALETTE[1]}" stroke-width="1.5"/>')
    for p in pts:
        parts.extend(_point_marks(p, sx, sy, ml + pw / 2))
    if note:
        parts.append(f'<text x="{ml + 6}" y="{mt + 14}" fill="#374151">{escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    x_label: str,
    x_max: float | None = None,
    width: int = 640,
    bar_height: int = 18,
    value_fmt: str = "{:.1f}",
) -> str:
    """A horizontal bar chart of (label, value) pairs, in the given order."""
    ml, mr, mt, mb = 150, 60, 40, 40
    height = mt + mb + max(1, len(items)) * (bar_height + 4)
    pw = width - ml - mr
    top = x_max if x_max is not None else max((v for _, v in items), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data to plot</text></svg>'
        )
        return "".join(parts)
    for i, (label, v) in enumerate(items):
        y = mt + i * (bar_height + 4)
        w = max(0.0, min(1.0, v / top)) * pw
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<text x="{ml - 6}" y="{y + bar_height - 5}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect x="{ml}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {value_fmt.format(v)}</title></rect>"
        )
        parts.append(f'<text x="{ml + w + 4:.1f}" y="{y + bar_height - 5}">{value_fmt.format(v)}</text>')
    yb = mt + len(items) * (bar_height + 4) + 16
    parts.append(f'<text x="{ml + pw / 2}" y="{yb}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
