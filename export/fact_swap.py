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
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from export.voice_swap import replace_phrase
from npc_runtime.personas import Knowledge, PersonaCard, Place, Quest, Ware

__all__ = ["swap_facts", "card_numbers", "map_card_text"]

_NUMBER = re.compile(r"(?<![\w.])\d+(?!\w|\.\d)")


def map_card_text(card: PersonaCard, fn: Callable[[str], str], price: Callable[[int], int] = lambda p: p) -> PersonaCard:
    """``card`` with ``fn`` applied to every text a prompt shows (name, backstory, style, lines, goals, knowledge)
    and ``price`` to every ware's price. The id, traits, emotion and relationships are kept."""
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
    return replace(card, name=fn(card.name), backstory=fn(card.backstory), speaking_style=fn(card.speaking_style),
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


def swap_facts(
    card: PersonaCard,
    texts: Sequence[str],
    rng: random.Random,
    first_names: Sequence[str],
    surnames: Sequence[str],
    quest: Quest | None = None,
) -> tuple[PersonaCard, list[str], Mapping[str, str]]:
    """``card`` and ``texts`` with the persona's name replaced by a random ``first_names`` x ``surnames`` one and
    every number on the card mapped to another; returns the new card, the new texts and the old -> new pairs.

    The name's parts are replaced as whole words wherever they occur (a first name alone, a surname alone); a
    number in ``texts`` changes only if the card states it, so other numbers of the turn (a price the player
    offers) stay as they are. With ``quest`` (another persona's), the card's quest title, task and place become
    that quest's wherever they occur; its reward keeps the card's (mapped) number.
    """
    parts = card.name.split()
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
        for old, new in names:
            text = replace_phrase(text, old, new)
        return _NUMBER.sub(lambda m: str(numbers.get(int(m.group(0)), m.group(0))), text)

    swapped = map_card_text(card, swap, price=lambda p: numbers.get(p, p))
    pairs = {**{old: new for old, new in names}, **{str(o): str(n) for o, n in numbers.items()}}
    return swapped, [swap(t) for t in texts], pairs
