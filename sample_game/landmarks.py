"""The nine districts of Emberfall drawn in code, each a 160×120 tile around one big landmark.

Every district shares the same frame: a dirt road along its bottom edge and one along its right edge, so the
3×3 village map in :data:`sample_game.world.VILLAGE_GRID` tiles into a connected road grid, and the NPC's view
(one district) looks the same in the game as in :func:`sample_game.scene.render_scene`. Landmarks are large and
coloured distinctly (anvil and fire, striped stalls, a wall with a gate, water, ...) so a small CNN can tell the
places apart; the random generator moves and varies the details.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from sample_game.pen import Color
from sample_game.world import LOCATIONS

__all__ = ["DISTRICT_SIZE", "ROAD_Y", "ROAD_X", "Light", "District", "draw_district", "draw_tree"]

#: (width, height) of one district in base pixels; the NPC's view has this size before any resize.
DISTRICT_SIZE: tuple[int, int] = (160, 120)
#: The bottom road spans these rows and the right road these columns of every district.
ROAD_Y: tuple[int, int] = (106, 120)
ROAD_X: tuple[int, int] = (146, 160)

Rect = tuple[float, float, float, float]
INK: Color = (28, 22, 20)
ROAD: Color = (176, 146, 104)


@dataclass(frozen=True)
class Light:
    """A light source that glows in the evening and at night: centre, radius in pixels, colour."""

    x: float
    y: float
    radius: float
    color: Color = (255, 190, 90)


@dataclass(frozen=True)
class District:
    """One drawn district: the picture, its lights, the rectangles people cannot walk through, and where the
    resident NPCs stand (first spot first)."""

    location: str
    image: Image.Image
    lights: tuple[Light, ...]
    blockers: tuple[Rect, ...]
    npc_spots: tuple[tuple[float, float], ...]


class _Canvas:
    """What a landmark function draws on and records into."""

    def __init__(self, image: Image.Image, rng: np.random.Generator):
        self.draw = ImageDraw.Draw(image)
        self.rng = rng
        self.lights: list[Light] = []
        self.blockers: list[Rect] = []

    def jitter(self, amount: int) -> int:
        return int(self.rng.integers(-amount, amount + 1))

    def shade(self, color: Color, amount: int = 12) -> Color:
        """``color`` varied a little, so two renders of a place are never pixel-identical."""
        delta = self.rng.integers(-amount, amount + 1, size=3)
        return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(color, delta))  # type: ignore[return-value]

    def rect(self, box: Rect, fill: Color, outline: Color | None = INK, block: bool = False) -> None:
        self.draw.rectangle(box, fill=fill, outline=outline)
        if block:
            self.blockers.append(box)

    def speckle(self, box: Rect, color: Color, count: int, size: int = 1) -> None:
        x0, y0, x1, y1 = box
        for _ in range(count):
            x = int(self.rng.uniform(x0, x1))
            y = int(self.rng.uniform(y0, y1))
            self.draw.rectangle((x, y, x + size - 1, y + size - 1), fill=color)


def draw_tree(draw: ImageDraw.ImageDraw, x: float, y: float, radius: float = 11, color: Color = (40, 120, 50)) -> None:
    """A round tree seen from above-front: trunk with its foot at ``(x, y)``, canopy above it."""
    draw.rectangle((x - 2, y - 8, x + 2, y), fill=(100, 65, 35), outline=INK)
    draw.ellipse((x - radius, y - 8 - 2 * radius, x + radius, y - 8), fill=color, outline=INK)
    draw.ellipse((x - radius * 0.5, y - 6 - 2 * radius, x + radius * 0.2, y - 8 - radius), fill=_lighter(color))


def _lighter(color: Color, amount: int = 40) -> Color:
    return tuple(min(255, max(0, c + amount)) for c in color)  # type: ignore[return-value]


def _roof(c: _Canvas, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
    c.draw.polygon([(x0 - 4, y1), ((x0 + x1) / 2, y0), (x1 + 4, y1)], fill=color, outline=INK)


def _window(c: _Canvas, x: float, y: float, w: float = 7, h: float = 8, lit: Color = (255, 210, 110)) -> None:
    c.rect((x, y, x + w, y + h), (250, 215, 120))
    c.lights.append(Light(x + w / 2, y + h / 2, 14, lit))


def _forge(c: _Canvas) -> None:
    j = c.jitter
    x0 = 8 + j(4)
    c.rect((x0, 22, x0 + 58, 62), c.shade((95, 90, 92)), block=True)
    c.speckle((x0 + 2, 24, x0 + 56, 60), (70, 66, 70), 40, 2)
    _roof(c, x0, 4 + j(2), x0 + 58, 24, c.shade((140, 40, 30)))
    c.rect((x0 + 40, 2, x0 + 48, 16), (60, 55, 55))
    for k in range(3):
        c.draw.ellipse((x0 + 40 + 4 * k, -6 - 5 * k, x0 + 50 + 4 * k, 2 - 5 * k), fill=(150, 150, 155))
    c.rect((x0 + 22, 44, x0 + 34, 62), (60, 35, 20))
    hx, hy = 100 + j(6), 42 + j(4)
    c.draw.ellipse((hx - 20, hy - 15, hx + 20, hy + 15), fill=(90, 85, 80), outline=INK)
    c.draw.ellipse((hx - 15, hy - 11, hx + 15, hy + 11), fill=(245, 110, 20))
    c.draw.ellipse((hx - 8, hy - 6, hx + 8, hy + 6), fill=(255, 230, 90))
    c.blockers.append((hx - 20, hy - 15, hx + 20, hy + 15))
    c.lights.append(Light(hx, hy, 40, (255, 150, 50)))
    ax, ay = 118 + j(6), 86 + j(3)
    c.rect((ax - 6, ay - 6, ax + 6, ay + 4), (120, 80, 45))
    c.draw.polygon(
        [(ax - 16, ay - 16), (ax + 12, ay - 16), (ax + 12, ay - 10), (ax + 4, ay - 6), (ax - 4, ay - 6),
         (ax - 10, ay - 11)],
        fill=(45, 45, 55), outline=(10, 10, 12),
    )
    c.blockers.append((ax - 16, ay - 16, ax + 12, ay + 4))
    for k in range(3):
        c.draw.line((x0 + 64 + 5 * k, 66, x0 + 64 + 5 * k, 84), fill=(180, 185, 195), width=2)


def _inn(c: _Canvas) -> None:
    j = c.jitter
    c.rect((0, 66, 145, 105), c.shade((170, 135, 95)), outline=None)
    x0, x1 = 8 + j(4), 112 + j(4)
    c.rect((x0, 24, x1, 66), c.shade((175, 120, 70)), block=True)
    for bx in range(int(x0) + 12, int(x1), 24):
        c.draw.line((bx, 24, bx, 66), fill=(90, 55, 30), width=2)
    _roof(c, x0, 0, x1, 26, c.shade((40, 105, 60)))
    for wx in (x0 + 6, x0 + 30, x1 - 36, x1 - 14):
        _window(c, wx, 34, 8, 9)
    c.rect(((x0 + x1) / 2 - 6, 48, (x0 + x1) / 2 + 6, 66), (90, 50, 25))
    sx = x1 + 10
    c.draw.line((sx, 30, sx, 60), fill=(90, 55, 30), width=2)
    c.rect((sx - 10, 30, sx + 10, 44), (240, 200, 40))
    c.rect((sx - 4, 33, sx + 3, 42), (250, 250, 240))
    c.draw.arc((sx + 1, 35, sx + 7, 40), -90, 90, fill=INK, width=1)
    for k in range(2):
        bx, by = 20 + 40 * k + j(4), 86 + j(3)
        c.rect((bx, by, bx + 22, by + 8), (130, 85, 45), block=True)
    for k in range(2):
        c.draw.ellipse((122 + 9 * k, 70, 130 + 9 * k, 80), fill=(120, 70, 30), outline=INK)
    c.blockers.append((122, 70, 139, 80))


def _market(c: _Canvas) -> None:
    j = c.jitter
    awnings = [((220, 40, 40), (250, 250, 250)), ((40, 80, 210), (250, 250, 250)), ((250, 200, 30), (60, 170, 60))]
    order = c.rng.permutation(3)
    for k in range(3):
        x0, y0 = 6 + 47 * k + j(2), 18 + j(4)
        a, b = awnings[int(order[k])]
        c.rect((x0 + 2, y0 + 18, x0 + 40, y0 + 40), (150, 100, 55), block=True)
        for s in range(5):
            c.rect((x0 + 8 * s, y0, x0 + 8 * s + 8, y0 + 20), a if s % 2 == 0 else b, outline=None)
        c.draw.rectangle((x0, y0, x0 + 40, y0 + 20), outline=INK)
        produce = [(230, 40, 30), (250, 150, 20), (90, 180, 40), (160, 60, 160)]
        for p in range(6):
            color = produce[int(c.rng.integers(len(produce)))]
            px = x0 + 5 + 6 * p
            c.draw.ellipse((px - 3, y0 + 22, px + 3, y0 + 28), fill=color, outline=INK)
    for k in range(int(c.rng.integers(2, 5))):
        cx, cy = float(c.rng.uniform(10, 130)), float(c.rng.uniform(72, 84))
        c.rect((cx, cy, cx + 9, cy + 8), (190, 140, 80))
        c.draw.line((cx, cy, cx + 9, cy + 8), fill=(120, 80, 40))


def _gate(c: _Canvas) -> None:
    j = c.jitter
    wall, dark = c.shade((125, 125, 132)), (85, 85, 92)
    wy = 40 + j(3)
    c.rect((0, 8, 146, wy), wall, block=True)
    for bx in range(0, 146, 12):
        c.rect((bx, 2, bx + 7, 9), wall)
    for by in range(14, int(wy), 8):
        c.draw.line((0, by, 146, by), fill=dark)
    gx = 73 + j(6)
    for tx in (gx - 40, gx + 22):
        c.rect((tx, 0, tx + 18, wy + 8), c.shade((110, 110, 118)), block=True)
        c.draw.line((tx + 9, 0, tx + 9, -10), fill=INK)
        c.rect((tx + 4, wy - 14, tx + 14, wy + 4), (30, 60, 180))
    c.draw.rectangle((gx - 22, 10, gx + 22, wy + 8), fill=(40, 35, 35), outline=INK)
    c.draw.pieslice((gx - 22, 0, gx + 22, 22), 180, 360, fill=(40, 35, 35), outline=INK)
    c.rect((gx - 18, 12, gx - 1, wy + 8), (120, 70, 30))
    c.rect((gx + 1, 12, gx + 18, wy + 8), (120, 70, 30))
    for by in (20, 34):
        c.draw.line((gx - 18, by, gx + 18, by), fill=(40, 40, 45), width=2)
    for tx in (gx - 28, gx + 28):
        c.draw.ellipse((tx - 3, wy + 10, tx + 3, wy + 16), fill=(255, 160, 40))
        c.lights.append(Light(tx, wy + 13, 22))


def _square(c: _Canvas) -> None:
    j = c.jitter
    c.rect((0, 0, 146, 106), c.shade((182, 174, 162)), outline=None)
    for y in range(4, 106, 8):
        for x in range((y // 8) % 2 * 4, 146, 8):
            c.draw.rectangle((x, y, x + 6, y + 6), outline=(150, 142, 132))
    fx, fy = 72 + j(6), 46 + j(4)
    c.draw.ellipse((fx - 30, fy - 22, fx + 30, fy + 22), fill=(145, 145, 155), outline=INK)
    c.draw.ellipse((fx - 24, fy - 17, fx + 24, fy + 17), fill=(80, 165, 230))
    c.speckle((fx - 14, fy - 8, fx + 14, fy + 8), (200, 235, 255), 14, 2)
    c.rect((fx - 3, fy - 14, fx + 3, fy + 2), (200, 200, 210))
    c.draw.ellipse((fx - 7, fy - 20, fx + 7, fy - 12), fill=(230, 245, 255), outline=INK)
    c.blockers.append((fx - 30, fy - 22, fx + 30, fy + 22))
    for lx in (12 + j(3), 132 + j(3)):
        c.draw.line((lx, 30, lx, 60), fill=(40, 40, 45), width=2)
        c.draw.ellipse((lx - 4, 24, lx + 4, 32), fill=(255, 220, 120), outline=INK)
        c.lights.append(Light(lx, 28, 22))
    bx = 112 + j(4)
    c.rect((bx, 4, bx + 22, 18), (150, 100, 55))
    c.rect((bx + 3, 6, bx + 10, 12), (240, 235, 220), outline=None)


def _temple(c: _Canvas) -> None:
    j = c.jitter
    x0, x1 = 22 + j(4), 122 + j(4)
    c.rect((x0 - 8, 62, x1 + 8, 74), (205, 200, 190), block=True)
    c.rect((x0 - 4, 56, x1 + 4, 64), (220, 215, 205))
    c.rect((x0, 26, x1, 58), c.shade((245, 243, 235), 6), block=True)
    for cx in range(int(x0) + 6, int(x1) - 2, 14):
        c.rect((cx, 28, cx + 5, 56), (215, 212, 200))
    c.draw.polygon([(x0 - 6, 28), ((x0 + x1) / 2, 2 + j(2)), (x1 + 6, 28)], fill=c.shade((225, 180, 50)),
                   outline=INK)
    c.draw.ellipse(((x0 + x1) / 2 - 5, 12, (x0 + x1) / 2 + 5, 22), fill=(250, 250, 240), outline=INK)
    for bx in (x0 - 12, x1 + 10):
        c.rect((bx - 3, 78, bx + 3, 88), (120, 110, 100))
        c.draw.ellipse((bx - 5, 72, bx + 5, 80), fill=(255, 170, 50))
        c.lights.append(Light(bx, 76, 24))
    for tx in (8, 140):
        c.draw.ellipse((tx - 5, 30, tx + 5, 64), fill=(30, 90, 45), outline=INK)


def _riverside(c: _Canvas) -> None:
    j = c.jitter
    top, bottom = 22 + j(4), 66 + j(4)
    c.draw.polygon([(0, top - 5), (146, top - 9), (146, bottom + 5), (0, bottom + 9)], fill=(200, 185, 130))
    c.draw.polygon([(0, top), (146, top - 4), (146, bottom), (0, bottom + 4)], fill=c.shade((45, 110, 200)))
    c.speckle((0, top + 2, 146, bottom - 2), (140, 190, 245), 30, 2)
    c.blockers.append((0, top - 4, 146, bottom + 4))
    bx = 96 + j(8)
    c.rect((bx, top - 10, bx + 18, bottom + 10), (150, 100, 55))
    for py in range(int(top) - 8, int(bottom) + 10, 5):
        c.draw.line((bx, py, bx + 18, py), fill=(100, 65, 35))
    for k in range(int(c.rng.integers(4, 8))):
        rx, ry = float(c.rng.uniform(4, 90)), float(bottom + c.rng.uniform(6, 12))
        c.draw.line((rx, ry, rx - 1, ry - 8), fill=(60, 120, 40), width=2)
    c.draw.ellipse((20, 82, 30, 89), fill=(130, 130, 135), outline=INK)
    draw_tree(c.draw, 136 + j(2), 96)
    c.blockers.append((132, 86, 140, 96))


def _library(c: _Canvas) -> None:
    j = c.jitter
    x0, x1 = 14 + j(4), 128 + j(4)
    c.rect((x0, 20, x1, 70), c.shade((150, 60, 50)), block=True)
    for by in range(26, 70, 6):
        c.draw.line((x0, by, x1, by), fill=(120, 45, 40))
    c.draw.polygon([(x0 - 4, 22), (x0 + 14, 0), (x1 - 14, 0), (x1 + 4, 22)], fill=c.shade((85, 60, 150)),
                   outline=INK)
    for wx in range(int(x0) + 8, int(x1) - 8, 20):
        c.draw.rectangle((wx, 30, wx + 8, 52), fill=(250, 215, 120), outline=INK)
        c.draw.pieslice((wx, 26, wx + 8, 34), 180, 360, fill=(250, 215, 120), outline=INK)
        c.lights.append(Light(wx + 4, 40, 14))
    mid = (x0 + x1) / 2
    c.rect((mid - 8, 54, mid + 8, 70), (70, 40, 25))
    c.draw.polygon([(mid - 12, 8), (mid, 12), (mid + 12, 8), (mid + 12, 18), (mid, 20), (mid - 12, 18)],
                   fill=(250, 248, 235), outline=INK)
    books = [(200, 40, 40), (40, 90, 200), (40, 160, 70), (230, 180, 30), (130, 50, 150)]
    for k in range(int(c.rng.integers(2, 4))):
        sx, sy = float(c.rng.uniform(8, 120)), float(c.rng.uniform(80, 90))
        for level in range(4):
            color = books[int(c.rng.integers(len(books)))]
            c.rect((sx, sy - 4 * level, sx + 10, sy - 4 * level + 3), color)


def _meadow(c: _Canvas) -> None:
    j = c.jitter
    flowers = [(250, 240, 80), (250, 120, 180), (255, 255, 255), (170, 110, 240), (255, 90, 60)]
    for color in flowers:
        c.speckle((0, 0, 146, 106), color, 22, 2)
    c.draw.ellipse((92 + j(6), 58, 122 + j(6), 80), fill=(235, 200, 80), outline=INK)
    for k in range(13):
        c.draw.line((4 + 11 * k, 94, 4 + 11 * k, 104), fill=(140, 95, 50), width=2)
    c.draw.line((0, 97, 146, 97), fill=(140, 95, 50), width=2)
    spots = [(20, 40), (58, 30), (120, 38), (40, 76)]
    for tx, ty in spots:
        x, y = tx + j(5), ty + j(4)
        draw_tree(c.draw, x, y, 12 + j(2), c.shade((40, 125, 50), 15))
        c.blockers.append((x - 3, y - 8, x + 3, y))


_GROUND: dict[str, Color] = {
    "forge": (105, 92, 78),
    "inn": (104, 152, 74),
    "market": (212, 192, 142),
    "gate": (152, 148, 138),
    "square": (182, 174, 162),
    "temple": (120, 170, 90),
    "riverside": (110, 165, 80),
    "library": (140, 132, 150),
    "meadow": (96, 182, 70),
}
_LANDMARKS: dict[str, Callable[[_Canvas], None]] = {
    "forge": _forge,
    "inn": _inn,
    "market": _market,
    "gate": _gate,
    "square": _square,
    "temple": _temple,
    "riverside": _riverside,
    "library": _library,
    "meadow": _meadow,
}
#: Where residents stand, relative to the district: in front of the landmark, just above the road.
_NPC_SPOTS: dict[str, tuple[tuple[float, float], ...]] = {
    "forge": ((84, 96), (54, 92)),
    "inn": ((70, 80), (108, 96)),
    "market": ((74, 90), (40, 96)),
    "gate": ((58, 80), (100, 86)),
    "square": ((50, 94), (100, 94)),
    "temple": ((72, 92), (44, 96)),
    "riverside": ((60, 96), (90, 100)),
    "library": ((70, 90), (100, 96)),
    "meadow": ((66, 88), (30, 92)),
}
if set(_GROUND) != set(LOCATIONS) or set(_LANDMARKS) != set(LOCATIONS) or set(_NPC_SPOTS) != set(LOCATIONS):
    raise RuntimeError("landmarks.py and world.LOCATIONS disagree")


def draw_district(location: str, rng: np.random.Generator) -> District:
    """Draws district ``location`` (ground, roads, landmark); ``rng`` varies positions, counts and shades."""
    if location not in _LANDMARKS:
        raise ValueError(f"unknown location {location!r}; expected one of {LOCATIONS}")
    image = Image.new("RGB", DISTRICT_SIZE)
    canvas = _Canvas(image, rng)
    width, height = DISTRICT_SIZE
    canvas.rect((0, 0, width, height), canvas.shade(_GROUND[location], 8), outline=None)
    canvas.speckle((0, 0, width, height), canvas.shade(_lighter(_GROUND[location], -25)), 60)
    canvas.rect((0, ROAD_Y[0], width, ROAD_Y[1]), ROAD, outline=None)
    canvas.rect((ROAD_X[0], 0, ROAD_X[1], height), ROAD, outline=None)
    canvas.speckle((0, ROAD_Y[0], width, ROAD_Y[1]), (150, 122, 86), 25)
    canvas.speckle((ROAD_X[0], 0, ROAD_X[1], height), (150, 122, 86), 25)
    _LANDMARKS[location](canvas)
    return District(
        location=location,
        image=image,
        lights=tuple(canvas.lights),
        blockers=tuple(canvas.blockers),
        npc_spots=_NPC_SPOTS[location],
    )
