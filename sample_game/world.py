"""The vocabulary of Emberfall's world: places, times, weathers, creatures, items and where each NPC lives.

This module is the single source of truth shared by the sample game, the scene renderer and the training-corpus
builder in ``export/``: a fact the game can show is exactly a fact the model was trained to see and talk about.
It holds constants only (read-only mappings), no state.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

__all__ = [
    "LOCATIONS",
    "TIMES_OF_DAY",
    "WEATHERS",
    "CREATURES",
    "PLAYER_ITEMS",
    "NOTHING",
    "PERSONA_IDS",
    "NPC_LOCATIONS",
    "NPC_HOME",
    "VILLAGE_GRID",
    "LOCATION_TEXT",
    "TIME_TEXT",
    "WEATHER_TEXT",
    "CREATURE_TEXT",
    "CREATURE_PLURALS",
    "ITEM_TEXT",
    "residents",
    "describe_creatures",
]

LOCATIONS: tuple[str, ...] = (
    "forge",
    "inn",
    "market",
    "gate",
    "square",
    "temple",
    "riverside",
    "library",
    "meadow",
)
TIMES_OF_DAY: tuple[str, ...] = ("morning", "noon", "evening", "night")
WEATHERS: tuple[str, ...] = ("clear", "rain", "fog", "snow")
CREATURES: tuple[str, ...] = ("chicken", "dog", "cat", "crow", "horse", "wolf", "goat", "pig")
NOTHING = "nothing"
PLAYER_ITEMS: tuple[str, ...] = (
    NOTHING,
    "sword",
    "torch",
    "apple",
    "lute",
    "coin purse",
    "fishing rod",
    "bucket",
)

#: The bundled persona ids (cards in ``npc_runtime/data/personas/``), in the order the game places them.
PERSONA_IDS: tuple[str, ...] = (
    "blacksmith",
    "merchant",
    "guard",
    "innkeeper",
    "healer",
    "scholar",
    "guide",
    "bard",
    "child",
)

#: Where each persona can be met; the first place is where the game puts them.
NPC_LOCATIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "blacksmith": ("forge",),
        "merchant": ("market",),
        "guard": ("gate",),
        "innkeeper": ("inn",),
        "healer": ("temple",),
        "scholar": ("library",),
        "guide": ("square",),
        "bard": ("inn", "square"),
        "child": ("riverside",),
    }
)
NPC_HOME: MappingProxyType[str, str] = MappingProxyType({pid: places[0] for pid, places in NPC_LOCATIONS.items()})

#: The village map as a 3×3 grid of districts, north row first; every location appears exactly once.
VILLAGE_GRID: tuple[tuple[str, ...], ...] = (
    ("temple", "gate", "library"),
    ("market", "square", "inn"),
    ("forge", "riverside", "meadow"),
)

LOCATION_TEXT: MappingProxyType[str, str] = MappingProxyType(
    {
        "forge": "the forge",
        "inn": "the inn",
        "market": "the market",
        "gate": "the village gate",
        "square": "the village square",
        "temple": "the temple",
        "riverside": "the riverside",
        "library": "the library",
        "meadow": "the meadow",
    }
)
TIME_TEXT: MappingProxyType[str, str] = MappingProxyType(
    {"morning": "in the morning", "noon": "at noon", "evening": "in the evening", "night": "at night"}
)
WEATHER_TEXT: MappingProxyType[str, str] = MappingProxyType(
    {"clear": "clear skies", "rain": "rain", "fog": "fog", "snow": "snow"}
)
CREATURE_TEXT: MappingProxyType[str, str] = MappingProxyType(
    {
        "chicken": "a chicken",
        "dog": "a dog",
        "cat": "a cat",
        "crow": "a crow",
        "horse": "a horse",
        "wolf": "a wolf",
        "goat": "a goat",
        "pig": "a pig",
    }
)
CREATURE_PLURALS: MappingProxyType[str, str] = MappingProxyType(
    {
        "chicken": "chickens",
        "dog": "dogs",
        "cat": "cats",
        "crow": "crows",
        "horse": "horses",
        "wolf": "wolves",
        "goat": "goats",
        "pig": "pigs",
    }
)
ITEM_TEXT: MappingProxyType[str, str] = MappingProxyType(
    {
        "nothing": "empty hands",
        "sword": "a sword",
        "torch": "a torch",
        "apple": "an apple",
        "lute": "a lute",
        "coin purse": "a coin purse",
        "fishing rod": "a fishing rod",
        "bucket": "a bucket",
    }
)

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def residents(location: str) -> tuple[str, ...]:
    """Persona ids whose home (first place in :data:`NPC_LOCATIONS`) is ``location``, in :data:`PERSONA_IDS` order."""
    if location not in LOCATIONS:
        raise ValueError(f"unknown location {location!r}; expected one of {LOCATIONS}")
    return tuple(pid for pid in PERSONA_IDS if NPC_HOME[pid] == location)


def describe_creatures(kinds: Iterable[str]) -> str:
    """Creatures as English text: ``("wolf", "crow", "crow")`` -> ``"a wolf and two crows"``; ``""`` for none."""
    counts: dict[str, int] = {}
    for kind in kinds:
        if kind not in CREATURE_TEXT:
            raise ValueError(f"unknown creature {kind!r}; expected one of {CREATURES}")
        counts[kind] = counts.get(kind, 0) + 1
    parts = []
    for kind, count in counts.items():
        if count == 1:
            parts.append(CREATURE_TEXT[kind])
        else:
            word = _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else str(count)
            parts.append(f"{word} {CREATURE_PLURALS[kind]}")
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
