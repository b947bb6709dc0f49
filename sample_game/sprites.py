"""Sprites drawn in code: the wandering creatures, the villagers, the player and what the player holds.

Every sprite is anchored at its feet and drawn with bold, distinct colours so that it stays recognisable after
the NPC's view is shrunk to 64×64 for the vision encoder. The game and :func:`sample_game.scene.render_scene`
both draw through these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from PIL import ImageDraw

from sample_game.pen import Color, Pen
from sample_game.world import CREATURES, PERSONA_IDS, PLAYER_ITEMS

__all__ = ["draw_creature", "draw_person", "draw_player", "draw_item", "OUTFITS", "PLAYER_OUTFIT", "Outfit"]

INK: Color = (28, 22, 20)
SKIN: Color = (236, 190, 150)


# --- creatures -----------------------------------------------------------------------------------------------


def _chicken(p: Pen) -> None:
    p.line([(-2, -3), (-2, 0)], (230, 140, 30), 1.2)
    p.line([(2, -3), (2, 0)], (230, 140, 30), 1.2)
    p.ellipse(-7, -13, 5, -3, (250, 250, 245), INK)
    p.circle(5, -12, 3.5, (250, 250, 245), INK)
    p.polygon([(7, -13), (11, -11.5), (7, -10)], (250, 190, 20))
    p.rect(3.5, -17, 6.5, -14.5, (225, 30, 30))


def _dog(p: Pen) -> None:
    body, dark = (196, 140, 70), (110, 70, 35)
    for lx in (-6, -3, 4, 7):
        p.rect(lx, -5, lx + 1.8, 0, dark)
    p.line([(-9, -8), (-13, -13)], body, 2)
    p.ellipse(-10, -11, 9, -4, body, INK)
    p.circle(10, -11, 4.5, body, INK)
    p.ellipse(7, -15, 10, -9, dark)
    p.circle(14, -10, 1.4, INK)


def _cat(p: Pen) -> None:
    body, stripe = (240, 140, 40), (170, 80, 20)
    p.line([(-7, -6), (-11, -9), (-11, -15)], body, 2)
    p.ellipse(-8, -9, 6, -2, body, INK)
    p.rect(-3, -8, -1.5, -3, stripe)
    p.rect(1, -8, 2.5, -3, stripe)
    p.circle(7, -9, 4, body, INK)
    p.polygon([(4, -11), (5, -16), (7.5, -12)], body, INK)
    p.polygon([(7.5, -12), (10, -16), (10.5, -10)], body, INK)
    p.circle(8.5, -9.5, 0.9, (40, 160, 40))


def _crow(p: Pen) -> None:
    black, wing = (20, 20, 26), (55, 55, 70)
    p.polygon([(-2, -8), (-12, -16), (-8, -7)], wing, INK)
    p.polygon([(2, -8), (12, -16), (8, -7)], wing, INK)
    p.ellipse(-4, -11, 4, -3, black)
    p.circle(0, -12, 3, black)
    p.polygon([(-1, -14), (0, -18), (1, -14)], (235, 200, 40))
    p.polygon([(-2, -4), (0, 0), (2, -4)], black)


def _horse(p: Pen) -> None:
    body, mane = (120, 70, 35), (30, 20, 15)
    for lx in (-9, -6, 7, 10):
        p.rect(lx, -9, lx + 2.5, 0, body, INK)
    p.line([(-12, -14), (-16, -6)], mane, 2.5)
    p.ellipse(-13, -18, 13, -7, body, INK)
    p.polygon([(9, -16), (14, -26), (18, -22), (13, -12)], body, INK)
    p.polygon([(14, -26), (22, -23), (21, -19), (16, -20)], body, INK)
    p.line([(9, -16), (14, -26)], mane, 2)
    p.circle(20, -21, 0.8, (250, 250, 250))


def _wolf(p: Pen) -> None:
    body, belly = (120, 124, 136), (200, 200, 205)
    for lx in (-7, -4, 4, 7):
        p.rect(lx, -6, lx + 2, 0, body)
    p.polygon([(-9, -10), (-18, -13), (-16, -6)], body, INK)
    p.ellipse(-10, -13, 9, -4, body, INK)
    p.ellipse(-5, -8, 5, -4, belly)
    p.polygon([(6, -15), (16, -10), (7, -7)], body, INK)
    p.polygon([(7, -14), (8, -19), (10, -14)], body, INK)
    p.circle(10, -12, 1, (250, 220, 40))


def _goat(p: Pen) -> None:
    body, horn = (225, 215, 185), (80, 60, 45)
    for lx in (-6, -3, 3, 6):
        p.rect(lx, -6, lx + 1.8, 0, (150, 130, 100))
    p.ellipse(-9, -13, 8, -5, body, INK)
    p.ellipse(6, -17, 12, -9, body, INK)
    p.line([(7, -16), (4, -21), (1, -19)], horn, 1.8)
    p.line([(10, -16), (9, -22), (6, -21)], horn, 1.8)
    p.polygon([(9, -10), (11, -10), (10, -6)], (170, 160, 130))
    p.circle(10, -14, 0.9, INK)


def _pig(p: Pen) -> None:
    body, snout = (246, 160, 180), (220, 100, 130)
    for lx in (-5, -2, 3, 6):
        p.rect(lx, -5, lx + 2, 0, snout)
    p.line([(-9, -9), (-12, -11), (-11, -13)], snout, 1.2)
    p.ellipse(-9, -13, 8, -3, body, INK)
    p.circle(9, -9, 4.5, body, INK)
    p.ellipse(11, -10, 15, -6, snout, INK)
    p.polygon([(6, -12), (7, -16), (10, -12)], snout)


_CREATURE_DRAWERS: dict[str, Callable[[Pen], None]] = {
    "chicken": _chicken,
    "dog": _dog,
    "cat": _cat,
    "crow": _crow,
    "horse": _horse,
    "wolf": _wolf,
    "goat": _goat,
    "pig": _pig,
}
if set(_CREATURE_DRAWERS) != set(CREATURES):  # keep the drawings in step with the vocabulary
    raise RuntimeError("sprites.py and world.CREATURES disagree")


def draw_creature(
    draw: ImageDraw.ImageDraw, kind: str, x: float, y: float, scale: float = 1.0, flip: bool = False
) -> None:
    """Draws creature ``kind`` with its feet at ``(x, y)``, facing right (left when ``flip``)."""
    if kind not in _CREATURE_DRAWERS:
        raise ValueError(f"unknown creature {kind!r}; expected one of {CREATURES}")
    _CREATURE_DRAWERS[kind](Pen(draw, x, y, scale, flip))


# --- items ---------------------------------------------------------------------------------------------------


def _sword(p: Pen) -> None:
    p.line([(0, 0), (9, -14)], (235, 240, 250), 2.6)
    p.line([(0, 0), (9, -14)], (150, 160, 175), 0.8)
    p.line([(-3, -3), (3, 2)], (230, 180, 30), 2)


def _torch(p: Pen) -> None:
    p.line([(0, 2), (3, -8)], (110, 70, 30), 2.2)
    p.circle(3.5, -11, 4.2, (255, 140, 20))
    p.circle(3.5, -11.5, 2.2, (255, 240, 120))


def _apple(p: Pen) -> None:
    p.circle(2, -3, 4.2, (220, 20, 30), INK)
    p.line([(2, -7), (3, -10)], (90, 60, 20), 1)
    p.ellipse(3, -11, 7, -8, (60, 180, 50))


def _lute(p: Pen) -> None:
    p.line([(3, -4), (10, -15)], (90, 50, 20), 2)
    p.ellipse(-3, -7, 7, 4, (200, 130, 50), INK)
    p.circle(2, -1.5, 1.6, (60, 30, 10))


def _coin_purse(p: Pen) -> None:
    p.ellipse(-3, -6, 6, 3, (150, 90, 40), INK)
    p.rect(0, -8, 3, -5, (150, 90, 40))
    p.circle(7, -2, 2.2, (255, 215, 0), INK)
    p.circle(8, -7, 2.2, (255, 215, 0), INK)


def _fishing_rod(p: Pen) -> None:
    p.line([(0, 0), (14, -18)], (150, 100, 40), 1.4)
    p.line([(14, -18), (17, -4)], (240, 240, 240), 0.7)
    p.circle(17, -3, 1.6, (230, 30, 30))


def _bucket(p: Pen) -> None:
    p.polygon([(-3, -8), (7, -8), (5.5, 2), (-1.5, 2)], (120, 130, 150), INK)
    p.ellipse(-3, -9.5, 7, -6.5, (60, 140, 230))
    p.line([(-3, -8), (2, -13), (7, -8)], (70, 70, 80), 0.9)


_ITEM_DRAWERS: dict[str, Callable[[Pen], None]] = {
    "sword": _sword,
    "torch": _torch,
    "apple": _apple,
    "lute": _lute,
    "coin purse": _coin_purse,
    "fishing rod": _fishing_rod,
    "bucket": _bucket,
}
if set(_ITEM_DRAWERS) | {"nothing"} != set(PLAYER_ITEMS):
    raise RuntimeError("sprites.py and world.PLAYER_ITEMS disagree")


def draw_item(
    draw: ImageDraw.ImageDraw, item: str, x: float, y: float, scale: float = 1.0, flip: bool = False
) -> None:
    """Draws a held item with its grip at ``(x, y)``; ``"nothing"`` draws nothing."""
    if item not in PLAYER_ITEMS:
        raise ValueError(f"unknown item {item!r}; expected one of {PLAYER_ITEMS}")
    if item in _ITEM_DRAWERS:
        _ITEM_DRAWERS[item](Pen(draw, x, y, scale, flip))


# --- people --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outfit:
    """How a villager looks: clothes, hair, one accessory name (drawn by :func:`draw_person`) and relative height."""

    tunic: Color
    legs: Color
    hair: Color
    accessory: str = ""
    height: float = 1.0

    def __post_init__(self) -> None:
        if not 0.3 <= self.height <= 2.0:
            raise ValueError(f"height must be within 0.3..2.0, got {self.height}")


OUTFITS: MappingProxyType[str, Outfit] = MappingProxyType({
    "blacksmith": Outfit((120, 70, 40), (60, 50, 45), (40, 30, 25), "apron"),
    "merchant": Outfit((40, 140, 70), (90, 70, 50), (120, 80, 40), "hat"),
    "guard": Outfit((170, 175, 185), (80, 80, 90), (60, 60, 60), "spear"),
    "innkeeper": Outfit((190, 50, 50), (70, 50, 40), (150, 90, 40), "white apron"),
    "healer": Outfit((245, 245, 240), (220, 220, 215), (230, 200, 120), "cross"),
    "scholar": Outfit((50, 70, 170), (40, 50, 120), (200, 200, 200), "book"),
    "guide": Outfit((230, 130, 30), (100, 80, 50), (90, 50, 20), "staff"),
    "bard": Outfit((140, 60, 170), (60, 40, 80), (200, 160, 60), "feather"),
    "child": Outfit((250, 210, 40), (80, 110, 200), (150, 90, 30), "", 0.75),
})
if set(OUTFITS) != set(PERSONA_IDS):
    raise RuntimeError("sprites.py and world.PERSONA_IDS disagree")
PLAYER_OUTFIT = Outfit((40, 110, 220), (60, 50, 40), (110, 60, 20), "cape")


def draw_person(
    draw: ImageDraw.ImageDraw, outfit: Outfit, x: float, y: float, scale: float = 1.0, flip: bool = False
) -> tuple[float, float]:
    """Draws a standing villager with feet at ``(x, y)``; returns the image point of the back hand (the one away
    from where the villager faces)."""
    p = Pen(draw, x, y, scale * outfit.height, flip)
    if outfit.accessory == "cape":
        p.polygon([(-6, -18), (6, -18), (8, -4), (-8, -4)], (200, 40, 40), INK)
    if outfit.accessory == "spear":
        p.line([(8, 2), (8, -30)], (120, 90, 50), 1.4)
        p.polygon([(6.5, -30), (8, -36), (9.5, -30)], (220, 225, 235))
    if outfit.accessory == "staff":
        p.line([(-8, 2), (-8, -28)], (110, 70, 30), 1.8)
    p.rect(-4, -8, -1, 0, outfit.legs, INK)
    p.rect(1, -8, 4, 0, outfit.legs, INK)
    p.rect(-6, -19, 6, -7, outfit.tunic, INK)
    p.rect(-8, -18, -6, -10, outfit.tunic, INK)
    p.rect(6, -18, 8, -10, outfit.tunic, INK)
    if outfit.accessory == "apron":
        p.rect(-4, -16, 4, -6, (70, 45, 30))
    if outfit.accessory == "white apron":
        p.rect(-4, -15, 4, -6, (245, 245, 240))
    if outfit.accessory == "cross":
        p.rect(-1, -17, 1, -9, (210, 30, 40))
        p.rect(-3.5, -14, 3.5, -12, (210, 30, 40))
    if outfit.accessory == "book":
        p.rect(-9, -14, -4, -9, (130, 30, 30), INK)
    p.circle(0, -23.5, 5, SKIN, INK)
    p.ellipse(-5, -29, 5, -24, outfit.hair)
    p.circle(2, -23, 0.8, INK)
    if outfit.accessory == "hat":
        p.rect(-7, -28, 7, -26, (70, 40, 20))
        p.rect(-4, -32, 4, -27, (70, 40, 20))
    if outfit.accessory == "spear":
        p.ellipse(-5.5, -31, 5.5, -24, (150, 155, 165), INK)
    if outfit.accessory == "feather":
        p.ellipse(-6, -30, 6, -25, (120, 40, 140))
        p.line([(2, -28), (-6, -36)], (250, 250, 250), 1.5)
    return p.point(-8, -11)


def draw_player(
    draw: ImageDraw.ImageDraw, item: str, x: float, y: float, scale: float = 1.0, flip: bool = False
) -> None:
    """Draws the player (blue tunic, red cape) with feet at ``(x, y)``, holding ``item`` out in the back hand so
    that whoever the player faces does not hide it."""
    hand = draw_person(draw, PLAYER_OUTFIT, x, y, scale, flip)
    draw_item(draw, item, hand[0], hand[1], scale * 1.4, not flip)
