"""The village map: the nine districts of :data:`sample_game.world.VILLAGE_GRID` drawn side by side.

The map is built once per seed (ground, roads, landmarks, where NPCs stand, what blocks walking) and is then
read-only; moving things live in :mod:`sample_game.actors`. Coordinates are base pixels, (0, 0) top-left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image

from sample_game.landmarks import DISTRICT_SIZE, Light, draw_district
from sample_game.scene import scene_rng
from sample_game.world import LOCATIONS, NPC_HOME, PERSONA_IDS, VILLAGE_GRID

__all__ = ["Village", "NpcPlace", "build_village"]

Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class NpcPlace:
    """Where an NPC stands on the map and which district that is."""

    persona: str
    x: float
    y: float
    location: str


@dataclass(frozen=True)
class Village:
    """The static map: background picture, lights, walls, district rectangles and NPC places."""

    background: Image.Image
    lights: tuple[Light, ...]
    blockers: tuple[Rect, ...]
    districts: Mapping[str, Rect]
    npcs: tuple[NpcPlace, ...]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole map in base pixels."""
        return self.background.size

    def district_at(self, x: float, y: float) -> str:
        """The location whose district contains the point (clamped to the map)."""
        width, height = DISTRICT_SIZE
        cols, rows = len(VILLAGE_GRID[0]), len(VILLAGE_GRID)
        col = min(cols - 1, max(0, int(x // width)))
        row = min(rows - 1, max(0, int(y // height)))
        return VILLAGE_GRID[row][col]

    def on_map(self, x: float, y: float, margin: float = 3.0) -> bool:
        """Whether ``(x, y)`` lies on the map, ``margin`` pixels inside its edges."""
        width, height = self.size
        return margin <= x <= width - margin and margin <= y <= height - 1

    def blocked(self, x: float, y: float, margin: float = 3.0) -> bool:
        """Whether feet at ``(x, y)`` would stand inside a wall, or off the map."""
        if not self.on_map(x, y, margin):
            return True
        return any(x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 for x0, y0, x1, y1 in self.blockers)

    def npc(self, persona: str) -> NpcPlace:
        for place in self.npcs:
            if place.persona == persona:
                return place
        raise KeyError(persona)


def build_village(seed: int = 0) -> Village:
    """Draws every district with its own generator (fixed by ``seed`` and the location) into one map."""
    width, height = DISTRICT_SIZE
    rows, cols = len(VILLAGE_GRID), len(VILLAGE_GRID[0])
    background = Image.new("RGB", (cols * width, rows * height))
    lights: list[Light] = []
    blockers: list[Rect] = []
    districts: dict[str, Rect] = {}
    spots: dict[str, list[tuple[float, float]]] = {}
    for row, names in enumerate(VILLAGE_GRID):
        for col, location in enumerate(names):
            ox, oy = col * width, row * height
            district = draw_district(location, scene_rng(seed, "village", location))
            background.paste(district.image, (ox, oy))
            lights += [Light(li.x + ox, li.y + oy, li.radius, li.color) for li in district.lights]
            blockers += [(x0 + ox, y0 + oy, x1 + ox, y1 + oy) for x0, y0, x1, y1 in district.blockers]
            districts[location] = (ox, oy, ox + width, oy + height)
            spots[location] = [(x + ox, y + oy) for x, y in district.npc_spots]
    if set(districts) != set(LOCATIONS):
        raise RuntimeError("VILLAGE_GRID must hold every location once")
    npcs = []
    for persona in PERSONA_IDS:
        location = NPC_HOME[persona]
        x, y = spots[location].pop(0)
        npcs.append(NpcPlace(persona, x, y, location))
    return Village(background, tuple(lights), tuple(blockers), MappingProxyType(districts), tuple(npcs))
