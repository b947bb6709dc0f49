"""Things that move on the village map: the player and the wandering creatures, plus a path finder for
scripted walks."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sample_game.scene import Sprite
from sample_game.village import Village
from sample_game.world import CREATURES, NOTHING, PLAYER_ITEMS

__all__ = ["Player", "Creature", "walkable_grid", "find_path", "PLAYER_SPEED", "TALK_RANGE"]

#: Base pixels per second.
PLAYER_SPEED = 80.0
CREATURE_SPEED = 18.0
#: The player can talk to an NPC whose feet are this close (base pixels).
TALK_RANGE = 34.0
_GRID = 4  # path-finding cell size in base pixels


@dataclass
class Player:
    x: float
    y: float
    item: str = NOTHING
    flip: bool = False

    def __post_init__(self) -> None:
        if self.item not in PLAYER_ITEMS:
            raise ValueError(f"unknown item {self.item!r}; expected one of {PLAYER_ITEMS}")

    def move(self, village: Village, dx: float, dy: float, dt: float) -> None:
        """Moves by direction ``(dx, dy)`` for ``dt`` seconds, sliding along walls."""
        length = math.hypot(dx, dy)
        if length == 0 or dt <= 0:
            return
        step = PLAYER_SPEED * dt / length
        nx, ny = self.x + dx * step, self.y + dy * step
        if not village.blocked(nx, self.y):
            self.x = nx
        if not village.blocked(self.x, ny):
            self.y = ny
        if dx != 0:
            self.flip = dx < 0

    def sprite(self) -> Sprite:
        return Sprite("player", self.item, self.x, self.y, self.flip)


@dataclass
class Creature:
    """A creature that ambles about: picks a heading, walks a while, pauses, picks another."""

    kind: str
    x: float
    y: float
    flip: bool = False
    vx: float = 0.0
    vy: float = 0.0
    timer: float = 0.0
    rng: np.random.Generator = field(default_factory=np.random.default_rng, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CREATURES:
            raise ValueError(f"unknown creature {self.kind!r}; expected one of {CREATURES}")

    def update(self, village: Village, dt: float) -> None:
        self.timer -= dt
        if self.timer <= 0:
            self.timer = float(self.rng.uniform(1.0, 3.5))
            if self.rng.random() < 0.3:
                self.vx = self.vy = 0.0
            else:
                angle = float(self.rng.uniform(0, 2 * math.pi))
                speed = CREATURE_SPEED * (2.0 if self.kind in ("crow", "horse", "dog") else 1.0)
                self.vx, self.vy = speed * math.cos(angle), speed * math.sin(angle)
        nx, ny = self.x + self.vx * dt, self.y + self.vy * dt
        flying = self.kind == "crow"
        if village.on_map(nx, ny) if flying else not village.blocked(nx, ny):
            self.x, self.y = nx, ny
        else:
            self.vx, self.vy = -self.vx, -self.vy
        if self.vx != 0:
            self.flip = self.vx < 0

    def sprite(self) -> Sprite:
        return Sprite("creature", self.kind, self.x, self.y, self.flip)


def walkable_grid(village: Village) -> np.ndarray:
    """(rows, cols) bool: which 4-px cells of the map feet may stand in."""
    width, height = village.size
    free = np.zeros((height // _GRID, width // _GRID), dtype=bool)  # (rows, cols)
    for row in range(free.shape[0]):
        for col in range(free.shape[1]):
            free[row, col] = not village.blocked(col * _GRID + _GRID / 2, row * _GRID + _GRID / 2)
    return free


def find_path(
    village: Village, start: tuple[float, float], goal: tuple[float, float], free: np.ndarray | None = None
) -> list[tuple[float, float]]:
    """Waypoints from ``start`` to the walkable cell nearest ``goal`` (breadth-first on a 4-px grid).

    Returns ``[]`` when no walkable cell is reachable. ``free`` (from a previous call's grid) may be passed in.
    """
    grid = walkable_grid(village) if free is None else free
    rows, cols = grid.shape

    def cell(point: tuple[float, float]) -> tuple[int, int]:
        return (min(rows - 1, max(0, int(point[1] // _GRID))), min(cols - 1, max(0, int(point[0] // _GRID))))

    begin, target = cell(start), cell(goal)
    came: dict[tuple[int, int], tuple[int, int] | None] = {begin: None}
    queue = deque([begin])
    best, best_dist = begin, math.inf
    while queue:
        current = queue.popleft()
        dist = abs(current[0] - target[0]) + abs(current[1] - target[1])
        if dist < best_dist:
            best, best_dist = current, dist
            if dist == 0:
                break
        r, c = current
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < rows and 0 <= nc < cols and grid[nr, nc] and (nr, nc) not in came:
                came[(nr, nc)] = current
                queue.append((nr, nc))
    path: list[tuple[float, float]] = []
    node: tuple[int, int] | None = best
    while node is not None and node != begin:
        path.append((node[1] * _GRID + _GRID / 2, node[0] * _GRID + _GRID / 2))
        node = came[node]
    path.reverse()
    return path
