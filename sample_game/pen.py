"""A tiny drawing helper: Pillow shapes in coordinates relative to an anchor, with a scale and a mirror.

Sprites are described once around their feet (the anchor) and drawn anywhere, at any size, facing either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import ImageDraw

__all__ = ["Color", "Pen"]

Color = tuple[int, int, int]


class Pen:
    """Draws on ``draw`` with shapes given relative to ``(x, y)``, scaled by ``scale``, mirrored when ``flip``."""

    def __init__(self, draw: ImageDraw.ImageDraw, x: float, y: float, scale: float = 1.0, flip: bool = False):
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.draw = draw
        self.x = x
        self.y = y
        self.scale = scale
        self.sign = -1.0 if flip else 1.0

    def point(self, dx: float, dy: float) -> tuple[float, float]:
        """The image coordinates of a relative point."""
        return (self.x + self.sign * dx * self.scale, self.y + dy * self.scale)

    def _box(self, dx0: float, dy0: float, dx1: float, dy1: float) -> list[float]:
        x0, y0 = self.point(dx0, dy0)
        x1, y1 = self.point(dx1, dy1)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def rect(self, dx0: float, dy0: float, dx1: float, dy1: float, fill: Color, outline: Color | None = None) -> None:
        self.draw.rectangle(self._box(dx0, dy0, dx1, dy1), fill=fill, outline=outline)

    def ellipse(
        self, dx0: float, dy0: float, dx1: float, dy1: float, fill: Color | None, outline: Color | None = None
    ) -> None:
        self.draw.ellipse(self._box(dx0, dy0, dx1, dy1), fill=fill, outline=outline)

    def circle(self, dx: float, dy: float, radius: float, fill: Color | None, outline: Color | None = None) -> None:
        self.ellipse(dx - radius, dy - radius, dx + radius, dy + radius, fill, outline)

    def polygon(self, points: Sequence[tuple[float, float]], fill: Color, outline: Color | None = None) -> None:
        self.draw.polygon([self.point(px, py) for px, py in points], fill=fill, outline=outline)

    def line(self, points: Sequence[tuple[float, float]], fill: Color, width: float = 1.0) -> None:
        self.draw.line([self.point(px, py) for px, py in points], fill=fill, width=max(1, round(width * self.scale)))
