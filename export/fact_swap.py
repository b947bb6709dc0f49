"""Rewriting a persona's name and numbers in one training turn, so that only the card predicts them.

Held-out personas showed that the model answers task turns from memory: asked for a new persona's quest, it
gives the right shape of reply with a reward and a place learnt from some training persona (``docs/eval.md``,
task completion). Names and numbers on the card are what a reply must copy exactly, and in the corpus each
generated persona keeps the same ones in all of its turns, so they can be learnt by heart through the card
embedding or the name.

:func:`swap_facts` gives one turn a different persona name (a new first name and surname from the corpus's name
lists) and maps every number on the card to another one, in the card itself (the ``<know>`` line) and in every
text of the turn: the reply, the history and the player's line. Within the turn everything stays consistent, so
a reply that quotes the card still quotes it; across turns the same persona now has many names and prices, so
only reading the ``<know>`` line predicts them. ``DataConfig.fact_swap`` sets the share of generated personas'
training turns rewritten this way.

With ``invent`` (``DataConfig.invent_facts``, a version) the new name is made of syllables rather than taken
from the corpus's name lists, and the card's role, wares, places (names and directions) and quest title become
invented ones too (:class:`Inventor`). The corpus's names, wares and places are whole tokens of the decoder's
tokenizer (it is trained on the corpus), so a swap among them only ever asks the model to copy one token; a card
written by hand ("Oswin Marrowby", "heather honey", "the landing") is split into several, and a model that never
had to copy a word piece by piece loops on its first piece ("Oswin M M M"). Invented facts are split the same way.

Version 1 invents every ware from the same word lists. Version 2 (:data:`INVENT_VERSION`) gives a remedy (a ware
named with one of ``npc_runtime.facts.REMEDY_WORDS``: "healing salve") an invented name that keeps a remedy word
("thistle salve"). Under version 1 a swapped healer's remedies lost what makes them remedies, to the corpus's rule
and to the runtime's looked-up hint alike, so the turn's hint said "ask health" with no remedy while its reply
recommended one (docs/model.md, "Remedies").
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from export.voice_swap import replace_all
from npc_runtime.facts import is_remedy
from npc_runtime.personas import Knowledge, PersonaCard, Place, Quest, Ware

__all__ = ["swap_facts", "card_numbers", "map_card_text", "Inventor", "replace_all", "INVENT_VERSION"]

#: The newest rules of invention (module docstring): 1, every ware alike; 2, a remedy keeps a remedy word.
INVENT_VERSION = 2

_NUMBER = re.compile(r"(?<![\w.])\d+(?!\w|\.\d)")


def map_card_text(card: PersonaCard, fn: Callable[[str], str], price: Callable[[int], int] = lambda p: p) -> PersonaCard:
    """``card`` with ``fn`` applied to every text a prompt shows (name, role, backstory, style, lines, goals,
    knowledge) and ``price`` to every ware's price. The id, traits, emotion and relationships are kept."""
    k = card.knowledge
    quest = k.quest and Quest(title=fn(k.quest.title), task=fn(k.quest.task), reward=fn(k.quest.reward),
                              location=fn(k.quest.location))  # fmt: skip
    knowledge = Knowledge(
        facts=tuple(map(fn, k.facts)),
        rumours=tuple(map(fn, k.rumours)),
        wares=tuple(Ware(item=fn(w.item), price=price(w.price)) for w in k.wares),
        places=tuple(Place(name=fn(p.name), directions=fn(p.directions)) for p in k.places),
        quest=quest,
    )
    return replace(card, name=fn(card.name), role=fn(card.role), backstory=fn(card.backstory),
                   speaking_style=fn(card.speaking_style),
                   example_lines=tuple(map(fn, card.example_lines)), goals=tuple(map(fn, card.goals)),
                   knowledge=knowledge)  # fmt: skip


def card_numbers(card: PersonaCard) -> set[int]:
    """Every whole number the card's texts and prices state."""
    found: set[int] = set()

    def collect(text: str) -> str:
        found.update(int(m) for m in _NUMBER.findall(text))
        return text

    map_card_text(card, collect, price=lambda p: found.add(p) or p)
    return found


def _new_numbers(old: Iterable[int], taken: set[int], rng: random.Random) -> dict[int, int]:
    """A one-to-one map from each old number to a new one of similar size (never one already in the turn)."""
    mapping: dict[int, int] = {}
    used = set(taken)
    for n in sorted(old):
        low, high = max(1, n // 2), max(n * 2, n + 10)
        for _ in range(50):
            new = rng.randint(low, high)
            if new != n and new not in used:
                break
        else:  # a crowded range: any unused number above it
            new = max(used | {high}) + 1
        mapping[n] = new
        used.add(new)
    return mapping


def _name_map(name: str, first: str, last: str) -> list[tuple[str, str]]:
    """Old -> new phrase pairs, longest first: the full name, then its last and first words."""
    parts = name.split()
    pairs = [(name, f"{first} {last}")]
    if len(parts) >= 2:
        pairs += [(parts[-1], last), (parts[-2], first)]
    elif parts:
        pairs.append((parts[0], first))
    return pairs


# Pieces of invented facts. None of them is a name, ware, place or role of the corpus generator, nor one of the
# cards in ``export/handwritten_cards`` (the evaluation's probe of cards written after training).
_ONSETS = ("B", "Br", "C", "D", "Dr", "F", "G", "Gr", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "Th",
           "V", "W", "Al", "El", "Os", "Is", "Ar", "Or")  # fmt: skip
_MIDDLES = ("b", "d", "l", "m", "n", "r", "s", "v", "w", "th", "nd", "rl", "st", "dr", "ss")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "i", "ia")
_FINALS = ("", "", "n", "r", "l", "s", "th", "nd", "rd", "m")
_SURNAME_STARTS = ("Ash", "Bram", "Cobble", "Dark", "Fern", "Gallow", "Hazel", "Iron", "Kettle", "Lark", "Moss",
                   "Nettle", "Pike", "Rook", "Salt", "Tansy", "Umber", "Wren", "Yew", "Bitter", "Crane", "Dusk",
                   "Flax", "Gorse", "Hob", "Mallow", "Pepper", "Rush", "Sloe", "Tallow")  # fmt: skip
_SURNAME_ENDINGS = ("by", "wick", "more", "stone", "ridge", "ford", "well", "brook", "thorn", "dale", "worth", "mere",
                    "hollow", "field", "wood", "ley", "ton", "croft", "holt", "shaw", "combe", "hurst", "wright",
                    "mantle", "whistle", "pot", "bottle", "wing", "tooth", "barrel")  # fmt: skip
_ROLES = ("cooper", "tanner", "chandler", "weaver", "potter", "fletcher", "thatcher", "falconer", "vintner",
          "locksmith", "clockmaker", "dyer", "mason", "glassblower", "bookbinder", "ropemaker", "saddler",
          "cartwright", "cobbler", "brewer", "butcher", "gravedigger", "tinker", "carter", "mapmaker", "bellringer",
          "swineherd", "goatherd", "net mender", "sailmaker", "toymaker", "cheesemaker", "apothecary", "jeweller",
          "rat catcher", "chimney sweep", "wool carder", "cider maker", "stonecutter", "furrier")  # fmt: skip
_WARE_WORDS = ("copper", "woollen", "pickled", "salted", "painted", "braided", "spiced", "dried", "polished",
               "glazed", "tin", "clay", "birch", "walnut", "rye", "goat", "hemp", "barley", "plum", "pear", "cedar",
               "brass", "bone", "horn", "quince", "sorrel", "pewter", "amber", "thistle", "bramble")  # fmt: skip
_WARE_NOUNS = ("kettle", "blanket", "herring", "soap", "whistle", "broom", "pipe", "comb", "buckle", "thimble",
               "ladle", "basket", "spoon", "jar", "mittens", "scarf", "flute", "dice", "needle", "satchel", "brooch",
               "jam", "sausage", "biscuits", "cordial", "mustard", "tankard", "trowel", "bucket", "button")  # fmt: skip
# Version 2's remedy nouns: each holds a word of ``REMEDY_WORDS`` (a test checks) and none, after a ``_WARE_WORDS``
# word, is a ware of the corpus or of a hand-written card.
_REMEDY_NOUNS = ("salve", "tea", "tonic", "draught", "potion", "remedy", "bandage", "herb poultice", "mint drops",
                 "willow balm", "chamomile oil")  # fmt: skip
_PLACE_NOUNS = ("cooperage", "tannery", "quarry", "boathouse", "granary", "dovecote", "kiln", "sawpit", "chapel",
                "toll bridge", "smithy", "pottery", "chandlery", "cider press", "sheepfold", "ropewalk",
                "stone circle", "lookout", "well house", "bakehouse", "salt shed", "wool barn", "dye works",
                "glassworks", "hay barn", "barracks", "shrine", "belfry", "rookery", "weir", "sluice", "pinfold",
                "tithe barn", "pest house", "gatehouse", "orchard", "warren", "ice house")  # fmt: skip
_PLACE_WORDS = ("old", "north", "south", "low", "high", "little", "long", "crooked", "grey", "green", "red",
                "mossy", "broad", "narrow", "hidden")  # fmt: skip
_COMPASS_WORD = re.compile(r"\b(?:north|south)(?:-(?:east|west))?\b|\b(?:east|west)\b", re.IGNORECASE)
_WAYS = ("past", "beyond", "behind", "along", "across", "round", "down by", "up by", "through")
_LANDMARKS = ("the pond", "the stone cross", "the ruined tower", "the cart track", "the ford", "the gallows",
              "the willow stump", "the duck pond", "the sheep dip", "the boundary stone", "the limekiln",
              "the cattle pen", "the hollow oak", "the standing stones", "the ditch", "the hedge gap")  # fmt: skip
_DETAILS = ("the door with the iron ring", "the shed with the blue roof", "under the hanging baskets",
            "by the white fence", "at the end of the lane", "where the cobbles stop", "next to the woodpile",
            "opposite the pump")  # fmt: skip
_TITLE_WORDS = ("Lost", "Missing", "Stolen", "Silent", "Crooked", "Hidden", "Forgotten", "Cracked", "Rusty",
                "Lonely", "Wild", "Sunken", "Burnt", "Borrowed", "Runaway")  # fmt: skip
_TITLE_NOUNS = ("Key", "Goat", "Ring", "Letter", "Cart", "Kettle", "Banner", "Wheel", "Map", "Hound", "Flute",
                "Crown", "Chest", "Ledger", "Pony", "Cloak", "Drum", "Seal")  # fmt: skip


class Inventor:
    """Makes names, roles, wares, places, directions and quest titles that no corpus card has, from ``rng``."""

    def __init__(self, rng: random.Random, version: int = 1) -> None:
        self.rng = rng
        self.version = version

    def name(self, avoid: Iterable[str] = ()) -> tuple[str, str]:
        """A first name of two or three syllables ("Teravin") and a surname of a word and an ending ("Rookmere")
        or of syllables ("Dalorby"); both are split into several pieces by the corpus's tokenizer."""
        avoid = set(avoid)
        pick = self.rng.choice
        while True:
            first = pick(_ONSETS) + pick(_VOWELS) + pick(_MIDDLES) + pick(_VOWELS)
            if self.rng.random() < 0.3:
                first += pick(_MIDDLES) + pick(_VOWELS)
            first += pick(_FINALS)
            if self.rng.random() < 0.6:
                last = pick(_SURNAME_STARTS) + pick(_SURNAME_ENDINGS)
            else:
                last = pick(_ONSETS) + pick(_VOWELS) + pick(_MIDDLES) + pick(_VOWELS) + pick(_SURNAME_ENDINGS)
            if first not in avoid and last not in avoid and first != last:
                return first, last

    def role(self, old: str) -> str:
        return self.rng.choice([r for r in _ROLES if r != old])

    def ware(self) -> str:
        return f"{self.rng.choice(_WARE_WORDS)} {self.rng.choice(_WARE_NOUNS)}"

    def remedy(self) -> str:
        """A remedy's new name: an invented word and a remedy noun ("thistle salve")."""
        return f"{self.rng.choice(_WARE_WORDS)} {self.rng.choice(_REMEDY_NOUNS)}"

    def place(self) -> str:
        noun = self.rng.choice(_PLACE_NOUNS)
        return f"the {self.rng.choice(_PLACE_WORDS)} {noun}" if self.rng.random() < 0.3 else f"the {noun}"

    def directions(self, compass: str) -> str:
        """New directions from ``compass`` (the word of the old ones that a reply must carry)."""
        way = f"{compass} {self.rng.choice(_WAYS)} {self.rng.choice(_LANDMARKS)}"
        return f"{way}, {self.rng.choice(_DETAILS)}" if self.rng.random() < 0.5 else way

    def title(self) -> str:
        return f"The {self.rng.choice(_TITLE_WORDS)} {self.rng.choice(_TITLE_NOUNS)}"

    def card_pairs(self, card: PersonaCard) -> list[tuple[str, str]]:
        """Old -> new pairs for the card's role, wares, places (name and directions) and quest title; each new
        phrase differs from every other one of the card."""
        k = card.knowledge
        used: set[str] = set()

        def fresh(make: Callable[[], str]) -> str:
            for _ in range(50):
                value = make()
                if not any(value in u or u in value for u in used):
                    break
            used.add(value)
            return value

        pairs = [(card.role, self.role(card.role))]
        pairs += [(w.item, fresh(self.remedy if self.version >= 2 and is_remedy(w.item) else self.ware))
                  for w in k.wares]  # fmt: skip
        for p in k.places:
            pairs.append((p.name, fresh(self.place)))
            # Directions without a compass word ("the village centre, by the fountain") are kept: the landmark
            # is then the fact a reply must carry.
            compass = _COMPASS_WORD.search(p.directions)
            if compass is not None:
                word = compass.group(0).lower()
                pairs.append((p.directions, fresh(lambda: self.directions(word))))
        if k.quest is not None:
            if k.quest.location not in {p.name for p in k.places}:
                pairs.append((k.quest.location, fresh(self.place)))
            pairs.append((k.quest.title, fresh(self.title)))
        return pairs


def swap_facts(
    card: PersonaCard,
    texts: Sequence[str],
    rng: random.Random,
    first_names: Sequence[str],
    surnames: Sequence[str],
    quest: Quest | None = None,
    invent: int = 0,
    keep: str = "",
) -> tuple[PersonaCard, list[str], Mapping[str, str]]:
    """``card`` and ``texts`` with the persona's name replaced by a random ``first_names`` x ``surnames`` one and
    every number on the card mapped to another; returns the new card, the new texts and the old -> new pairs.

    The name's parts are replaced as whole words wherever they occur (a first name alone, a surname alone); a
    number in ``texts`` changes only if the card states it, so other numbers of the turn (a price the player
    offers) stay as they are. With ``quest`` (another persona's), the card's quest title, task and place become
    that quest's wherever they occur; its reward keeps the card's (mapped) number. With ``invent`` (a version of
    the rules, 0: off) the name is made of syllables and the role, wares, places and quest title are invented
    (:class:`Inventor`), except a role or place that ``keep`` (the turn's scene facts) names, which a reply may
    mean as part of the scene; ``quest`` is then ignored.
    """
    parts = card.name.split()
    if invent:
        inventor = Inventor(rng, int(invent))
        first, last = inventor.name(avoid=[*parts, *first_names, *surnames])
        shown = keep.lower()
        names = _name_map(card.name, first, last) + [
            (old, new) for old, new in inventor.card_pairs(card)
            if not re.search(rf"(?<!\w){re.escape(old.lower().removeprefix('the '))}(?!\w)", shown)
        ]  # fmt: skip
    else:
        first = rng.choice([n for n in first_names if n not in parts] or list(first_names))
        last = rng.choice([n for n in surnames if n not in parts] or list(surnames))
        names = _name_map(card.name, first, last)
        own = card.knowledge.quest
        if quest is not None and own is not None:
            names += [(own.title, quest.title), (own.task, quest.task), (own.location, quest.location)]
    old_numbers = card_numbers(card)
    taken = {int(m) for t in texts for m in _NUMBER.findall(t)} | old_numbers
    numbers = _new_numbers(old_numbers, taken, rng)

    def swap(text: str) -> str:
        text = replace_all(text, names)
        return _NUMBER.sub(lambda m: str(numbers.get(int(m.group(0)), m.group(0))), text)

    swapped = map_card_text(card, swap, price=lambda p: numbers.get(p, p))
    pairs = {**{old: new for old, new in names}, **{str(o): str(n) for o, n in numbers.items()}}
    return swapped, [swap(t) for t in texts], pairs
