"""Charts as PNG files, drawn with PIL (matplotlib is not a dependency): axes with ticks, one line per run in its
colour, a legend."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from core.compare.colours import rgb_of
from core.compare.curves import Curve

WIDTH, HEIGHT = 960, 540
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 30, 50, 70
LEGEND_ROW = 18
GRID = (225, 225, 225)
INK = (40, 40, 40)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from at or below ``low`` to at or above ``high``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def tick_text(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:g}"


def draw_chart(lines: list[Curve], title: str, x_label: str, y_label: str, path: Path) -> Path:
    """Draw the curves into ``path`` (a PNG); runs without points appear in the legend only."""
    legend_height = LEGEND_ROW * len(lines)
    image = Image.new("RGB", (WIDTH, HEIGHT + legend_height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(12)
    draw.text((MARGIN_LEFT, 15), title, fill=INK, font=font)
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM
    xs = [x for c in lines for x, _ in c.points]
    ys = [y for c in lines for _, y in c.points]
    x_ticks = nice_ticks(min(xs, default=0.0), max(xs, default=1.0))
    y_ticks = nice_ticks(min(ys, default=0.0), max(ys, default=1.0))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for tick in x_ticks:
        px, _ = at(tick, y0)
        draw.line([(px, top), (px, bottom)], fill=GRID)
        draw.text((px, bottom + 6), tick_text(tick), fill=INK, font=small, anchor="ma")
    for tick in y_ticks:
        _, py = at(x0, tick)
        draw.line([(left, py), (right, py)], fill=GRID)
        draw.text((left - 6, py), tick_text(tick), fill=INK, font=small, anchor="rm")
    draw.rectangle([left, top, right, bottom], outline=INK)
    draw.text(((left + right) / 2, bottom + 28), x_label, fill=INK, font=small, anchor="ma")
    draw.text((8, top - 20), y_label, fill=INK, font=small)
    for c in lines:
        colour = rgb_of(c.colour)
        points = [at(x, y) for x, y in c.points]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2, joint="curve")
        for px, py in points if len(points) < 40 else []:
            draw.ellipse([px - 2.5, py - 2.5, px + 2.5, py + 2.5], fill=colour)
    for i, c in enumerate(lines):
        y = HEIGHT + i * LEGEND_ROW - 10
        draw.line([(left, y + 7), (left + 24, y + 7)], fill=rgb_of(c.colour), width=3)
        draw.text((left + 32, y), c.label, fill=INK, font=small)
    path = Path(path)
    image.save(path, format="PNG")
    return path
