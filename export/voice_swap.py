"""Rewriting a persona's catchphrase and form of address: the eval's new-voice control and a training augmentation.

The corpus draws catchphrases from a list of 40 and forms of address from about 35, so a model can learn each
training persona's markers by heart instead of copying them from the card's speaking style, and then a card
written after training with markers of its own does not get them (``docs/eval.md``, "Voice"). Two uses:

- :func:`swap_voice` rewrites a card (speaking style and example lines) and any texts of that persona (its
  replies) so that the old markers become new ones. The evaluation uses it with fixed markers no corpus card has.
- :func:`random_markers` draws new markers from a generated vocabulary of thousands of catchphrases and
  addresses; ``DataConfig.voice_swap`` rewrites that share of the training turns of generated personas with
  them, so that only copying from the ``<know>`` line predicts the markers of those turns.

The generated vocabulary never produces the evaluation's markers (a test checks it), so the eval's control stays a
voice the model cannot have seen.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from npc_runtime.personas import PersonaCard

__all__ = ["swap_voice", "replace_phrase", "replace_all", "random_markers", "CATCHPHRASE_TEMPLATES", "ADDRESS_WORDS"]

_THINGS = (
    "anvil", "ladle", "lantern", "bucket", "barrel", "candle", "thimble", "goose", "badger", "hedgehog", "acorn",
    "pumpkin", "cabbage", "walnut", "teapot", "saddle", "horseshoe", "chimney", "haystack", "pitchfork", "mitten",
    "biscuit", "cauldron", "spindle", "bellows", "wagon", "beehive", "pebble", "hazelnut", "weathervane", "bramble",
    "porridge", "radish", "mushroom", "heron", "otter", "millstone", "bonnet", "tankard", "broom",
)  # fmt: skip
_KIN = ("grandmother", "grandfather", "uncle", "aunt", "mother", "father", "cousin", "granny")
_ADJECTIVES = ("steady", "bright", "sharp", "quiet", "stubborn", "sweet", "busy", "snug", "sure", "merry", "brave")
#: Catchphrase shapes; ``{a}``/``{b}`` are things, ``{k}`` kin, ``{j}`` an adjective (capitalised where they start).
CATCHPHRASE_TEMPLATES: tuple[str, ...] = (
    "By the {a}!", "By my {k}'s {a}!", "{A}s and {b}s!", "{J} as a {a}.", "Mind the {a}.", "The {a} never lies.",
    "Every {a} in its place.", "Oh, my {a}s!", "Not a {a} out of place.", "{A} and {b}, friend.",
    "Keep your {a} {j}.", "Well, {a}s to that.",
)  # fmt: skip
#: Forms of address a generated voice may use (single words and a few pairs).
ADDRESS_WORDS: tuple[str, ...] = (
    "chick", "bumblebee", "mouse", "pumpkin", "treasure", "kiddo", "chief", "boss", "old timer", "sunshine",
    "honey", "partner", "squire", "lamb", "poppet", "button", "starling", "sparrow", "cub", "ducky", "pet",
    "youngster", "sweet pea", "wanderer", "neighbour dear", "my hen", "gosling", "cricket", "acorn",
    "bean", "kitten", "colt", "magpie", "skipper", "lambkin", "rosebud", "pudding", "mate o' mine", "goldfinch",
)  # fmt: skip


def random_markers(rng: random.Random) -> dict[str, str]:
    """A generated ``{"catchphrase", "address"}`` pair (12 shapes × 40 things × …: thousands of catchphrases)."""
    a, b = rng.sample(_THINGS, 2)
    template = rng.choice(CATCHPHRASE_TEMPLATES)
    phrase = template.format(a=a, b=b, A=a.capitalize(), k=rng.choice(_KIN), j=(j := rng.choice(_ADJECTIVES)),
                             J=j.capitalize())  # fmt: skip
    return {"catchphrase": phrase, "address": rng.choice(ADDRESS_WORDS)}


def replace_phrase(text: str, old: str, new: str) -> str:
    """Every whole-word occurrence of ``old`` (any case) becomes ``new``, capitalised where ``old`` was."""
    return replace_all(text, [(old, new)])


def replace_all(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Every whole-word occurrence (any case) of each old phrase in ``pairs`` becomes its new phrase, in one pass
    (so a new phrase is never rewritten again), longest old phrase first, capitalised where the old one was."""
    table: dict[str, str] = {}
    for old, new in pairs:
        table.setdefault(old.lower(), new)
    if not table:
        return text
    olds = sorted(table, key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(o)}(?!\w)" for o in olds), re.IGNORECASE)

    def same_case(match: re.Match[str]) -> str:
        new = table[match.group(0).lower()]
        return (new[0].upper() if match.group(0)[0].isupper() else new[0].lower()) + new[1:]

    return pattern.sub(same_case, text)


def swap_voice(
    card: PersonaCard, old: Mapping[str, str], new: Mapping[str, str], texts: Sequence[str] = ()
) -> tuple[PersonaCard, list[str]]:
    """``card`` and ``texts`` with each marker in ``old`` (``voice_markers``: kind -> text) replaced by ``new``'s
    marker of the same kind, in the speaking style, the example lines and the texts."""

    def swap(text: str) -> str:
        for kind, marker in old.items():
            if kind in new:
                text = replace_phrase(text, marker, new[kind])
        return text

    swapped = replace(card, speaking_style=swap(card.speaking_style),
                      example_lines=tuple(swap(line) for line in card.example_lines))  # fmt: skip
    return swapped, [swap(t) for t in texts]
