"""What an NPC sees: scene facts, and the one renderer that turns facts into the NPC's view.

:func:`render_scene` is used by the training-corpus builder in ``export/`` to make screenshots whose facts are
known exactly; the game draws its frames with the same :func:`compose` and attaches to ``say`` the district of
the frame the NPC stands in, so the model is served the kind of picture it was trained on. Pure Pillow and numpy:
it needs no display.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from sample_game.atmosphere import apply_time, apply_weather
from sample_game.landmarks import DISTRICT_SIZE, Light, District, draw_district
from sample_game.sprites import OUTFITS, draw_creature, draw_person, draw_player
from sample_game.world import (
    CREATURES,
    LOCATIONS,
    NOTHING,
    PERSONA_IDS,
    PLAYER_ITEMS,
    TIMES_OF_DAY,
    WEATHERS,
    residents,
)

__all__ = [
    "SceneFacts", "Sprite", "compose", "place_sprites", "render_scene", "scene_rng", "MAX_NEARBY", "SPRITE_SCALE",
]

#: At most this many creatures are listed in a scene's facts.
MAX_NEARBY = 8
#: People and creatures are drawn this much larger than their sprite definitions, so that they stay several
#: pixels wide once the NPC's view is shrunk to 64×64 for the vision encoder.
SPRITE_SCALE = 1.5
SPRITE_KINDS = ("creature", "npc", "player")


@dataclass(frozen=True)
class SceneFacts:
    """The known facts of a scene, validated against :mod:`sample_game.world` (``ValueError`` otherwise).

    ``nearby`` lists the creatures in view (repeats allowed), ``npc`` the persona id whose view this is.
    """

    location: str
    time_of_day: str
    weather: str
    nearby: tuple[str, ...] = ()
    player_item: str = NOTHING
    npc: str | None = None

    def __post_init__(self) -> None:
        if self.location not in LOCATIONS:
            raise ValueError(f"unknown location {self.location!r}; expected one of {LOCATIONS}")
        if self.time_of_day not in TIMES_OF_DAY:
            raise ValueError(f"unknown time of day {self.time_of_day!r}; expected one of {TIMES_OF_DAY}")
        if self.weather not in WEATHERS:
            raise ValueError(f"unknown weather {self.weather!r}; expected one of {WEATHERS}")
        if isinstance(self.nearby, str) or not isinstance(self.nearby, Iterable):
            raise ValueError(f"nearby must be a sequence of creature names, got {self.nearby!r}")
        nearby = tuple(self.nearby)
        for kind in nearby:
            if kind not in CREATURES:
                raise ValueError(f"unknown creature {kind!r} in nearby; expected one of {CREATURES}")
        if len(nearby) > MAX_NEARBY:
            raise ValueError(f"at most {MAX_NEARBY} nearby creatures, got {len(nearby)}")
        object.__setattr__(self, "nearby", nearby)
        if self.player_item not in PLAYER_ITEMS:
            raise ValueError(f"unknown player item {self.player_item!r}; expected one of {PLAYER_ITEMS}")
        if self.npc is not None and self.npc not in PERSONA_IDS:
            raise ValueError(f"unknown npc {self.npc!r}; expected one of {PERSONA_IDS} or None")

    def to_context(self) -> dict[str, str]:
        """The protocol's ``context`` map for ``say``."""
        return {
            "time_of_day": self.time_of_day,
            "weather": self.weather,
            "location": self.location,
            "nearby": ", ".join(self.nearby),
            "player_item": self.player_item,
        }


@dataclass(frozen=True)
class Sprite:
    """Something standing in the scene, feet at ``(x, y)``: a creature (``name`` = kind), an NPC (persona id) or
    the player (``name`` = held item)."""

    kind: str
    name: str
    x: float
    y: float
    flip: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SPRITE_KINDS:
            raise ValueError(f"sprite kind must be one of {SPRITE_KINDS}, got {self.kind!r}")
        valid = {"creature": CREATURES, "npc": PERSONA_IDS, "player": PLAYER_ITEMS}[self.kind]
        if self.name not in valid:
            raise ValueError(f"unknown {self.kind} {self.name!r}; expected one of {valid}")


def scene_rng(seed: int, *salt: str) -> np.random.Generator:
    """A generator fixed by ``seed`` and the text ``salt`` (stable across runs and platforms)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    mixed = zlib.crc32("\x1f".join(salt).encode("utf-8"))
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, mixed])


def compose(
    background: Image.Image,
    lights: Sequence[Light],
    sprites: Iterable[Sprite],
    time_of_day: str,
    weather: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws ``sprites`` (back to front) on a copy of ``background``, then lighting and weather.

    Returns (H, W, 3) uint8. A player holding a torch adds a light of its own.
    """
    image = background.convert("RGB")  # a copy: the cached background stays clean
    draw = ImageDraw.Draw(image)
    all_lights = list(lights)
    for sprite in sorted(sprites, key=lambda s: s.y):
        if sprite.kind == "creature":
            draw_creature(draw, sprite.name, sprite.x, sprite.y, SPRITE_SCALE, sprite.flip)
        elif sprite.kind == "npc":
            draw_person(draw, OUTFITS[sprite.name], sprite.x, sprite.y, SPRITE_SCALE, sprite.flip)
        else:
            draw_player(draw, sprite.name, sprite.x, sprite.y, SPRITE_SCALE, sprite.flip)
            if sprite.name == "torch":
                side = 1.0 if sprite.flip else -1.0
                all_lights.append(Light(sprite.x + side * 16 * SPRITE_SCALE, sprite.y - 24 * SPRITE_SCALE,
                                        24 * SPRITE_SCALE, (255, 170, 70)))
    pixels = apply_time(np.asarray(image), time_of_day, all_lights)
    return apply_weather(pixels, weather, time_of_day, rng)


def _free_spot(
    rng: np.random.Generator, district: District, taken: list[tuple[float, float]], flying: bool
) -> tuple[float, float]:
    """A random point for a creature's feet, off the blockers and away from other sprites where possible."""
    width, height = DISTRICT_SIZE
    best = (float(rng.uniform(20, width - 20)), float(rng.uniform(30, height - 4)))
    for _ in range(30):
        x, y = float(rng.uniform(20, width - 20)), float(rng.uniform(30 if not flying else 20, height - 4))
        on_blocker = not flying and any(x0 - 8 <= x <= x1 + 8 and y0 <= y <= y1 + 4
                                        for x0, y0, x1, y1 in district.blockers)
        crowded = any(abs(x - tx) < 22 * SPRITE_SCALE and abs(y - ty) < 16 * SPRITE_SCALE for tx, ty in taken)
        if not on_blocker and not crowded:
            return (x, y)
        if not crowded:
            best = (x, y)
    return best


def place_sprites(facts: SceneFacts, district: District, rng: np.random.Generator) -> list[Sprite]:
    """Where the NPCs, the player and the creatures of ``facts`` stand in one district (randomised by ``rng``)."""
    people = list(residents(facts.location))
    if facts.npc is not None:
        people = [facts.npc] + [p for p in people if p != facts.npc]
    sprites: list[Sprite] = []
    taken: list[tuple[float, float]] = []
    spots = list(district.npc_spots)
    for index, persona in enumerate(people):
        sx, sy = spots[index % len(spots)]
        x, y = sx + float(rng.uniform(-8, 8)), sy + float(rng.uniform(-4, 4))
        sprites.append(Sprite("npc", persona, x, y, flip=bool(rng.integers(2))))
        taken.append((x, y))
    ax, ay = taken[0] if taken else (float(rng.uniform(40, 110)), float(rng.uniform(80, 100)))
    side = 1.0 if rng.integers(2) else -1.0
    px, py = ax + side * float(rng.uniform(22, 30)) * SPRITE_SCALE, ay + float(rng.uniform(-3, 6))
    px = float(np.clip(px, 16, DISTRICT_SIZE[0] - 16))
    sprites.append(Sprite("player", facts.player_item, px, py, flip=px > ax))
    taken.append((px, py))
    for kind in facts.nearby:
        x, y = _free_spot(rng, district, taken, flying=kind == "crow")
        sprites.append(Sprite("creature", kind, x, y, flip=bool(rng.integers(2))))
        taken.append((x, y))
    return sprites


def render_scene(facts: SceneFacts, size: tuple[int, int] = DISTRICT_SIZE, seed: int = 0) -> np.ndarray:
    """The NPC's view of ``facts`` as an (H, W, 3) uint8 array, ``size`` = (W, H); deterministic for
    (facts, size, seed). The seed moves people, creatures and details so no two seeds give the same pixels."""
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"size must be (width, height) with positive ints, got {size!r}")
    # The seed alone fixes the layout, so two scenes with one seed differ only where their facts differ.
    rng = scene_rng(seed)
    district = draw_district(facts.location, rng)
    sprites = place_sprites(facts, district, rng)
    pixels = compose(district.image, district.lights, sprites, facts.time_of_day, facts.weather, rng)
    width, height = int(size[0]), int(size[1])
    if (width, height) == DISTRICT_SIZE:
        return pixels
    shrinking = width < DISTRICT_SIZE[0] or height < DISTRICT_SIZE[1]
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(pixels).resize((width, height), method), dtype=np.uint8).copy()
