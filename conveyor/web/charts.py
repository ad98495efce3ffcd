"""Small charts drawn on the server as inline SVG: no JavaScript, no chart library.

Each function returns markup ready for a template; labels and values are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#3b6fd8", "#9bb6ef", "#e07a3f", "#4aa37a", "#c24d5c", "#8a6cc9")


@dataclass(frozen=True)
class Bar:
    label: str
    values: tuple[float, ...]
    """One value per series (stacked left to right)."""
    text: str
    """What is written after the bar."""


def hbars(
    bars: Sequence[Bar],
    *,
    series: Sequence[str] = (),
    width: int = 560,
    label_width: int = 170,
    row: int = 26,
    colors: Sequence[str] = PALETTE,
) -> Markup:
    """Horizontal bars, one row per ``Bar``, stacked by series, with a legend if named."""
    if not bars:
        return Markup('<p class="muted">No data yet.</p>')
    top = 24 if series else 4
    text_width = 12 + 6.6 * max(len(b.text) for b in bars)
    plot = max(width - label_width - text_width, 60.0)
    biggest = max((sum(b.values) for b in bars), default=0) or 1
    height = top + row * len(bars) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    legend_x = label_width
    for i, name in enumerate(series):
        color = colors[i % len(colors)]
        parts.append(f'<rect x="{legend_x}" y="6" width="10" height="10" rx="2" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="15" class="legend">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    for i, bar in enumerate(bars):
        y = top + i * row
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row / 2 + 4}" text-anchor="end" '
            f'class="label">{escape(_short(bar.label, 26))}<title>{escape(bar.label)}</title>'
            "</text>"
        )
        x = float(label_width)
        for j, value in enumerate(bar.values):
            w = plot * (value / biggest) if value > 0 else 0.0
            if w > 0:
                color = colors[j % len(colors)]
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 5}" width="{max(w, 1.5):.1f}" '
                    f'height="{row - 10}" rx="3" fill="{color}"/>'
                )
            x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + row / 2 + 4}" class="value">{escape(bar.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(
    bins: Sequence[tuple[str, int]],
    *,
    width: int = 360,
    height: int = 140,
    color: str = PALETTE[0],
) -> Markup:
    """A histogram: one column per ``(label, count)``, the count above it."""
    if not bins:
        return Markup('<p class="muted">No scores.</p>')
    bottom = 20
    top = 16
    plot = height - bottom - top
    biggest = max(c for _, c in bins) or 1
    slot = width / len(bins)
    bar_w = min(max(slot * 0.7, 2), 56)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
    ]
    for i, (label, count) in enumerate(bins):
        h = plot * count / biggest
        x = i * slot + (slot - bar_w) / 2
        y = height - bottom - h
        if count:
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" rx="2" '
                f'fill="{color}"><title>{escape(label)}: {count}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
            f'class="value">{count}</text>'
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 5}" text-anchor="middle" '
            f'class="label">{escape(_short(label, 12))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def meter(fraction: float | None, *, width: int = 120) -> Markup:
    """A small horizontal gauge of a rate (pass rate, agreement)."""
    if fraction is None:
        return Markup("")
    w = max(0.0, min(1.0, fraction)) * width
    color = PALETTE[3] if fraction >= 0.8 else PALETTE[2] if fraction >= 0.5 else PALETTE[4]
    return Markup(
        f'<svg class="meter" width="{width}" height="8" viewBox="0 0 {width} 8" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="{width}" height="8" rx="4" fill="#e6e9ef"/>'
        f'<rect width="{w:.1f}" height="8" rx="4" fill="{color}"/></svg>'
    )


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "\u2026"
