"""Scene steering: where a reply is about to name the weather, a creature, the player's item or the time of day,
name the one the game's scene facts give.

The small role model reads the scene facts on its ``<ctx>`` line, but where a reply names a scene element its
choice among the elements it knows is weak: asked about the sky in the rain, it says "It's snow again, my fingers
are numb" (docs/eval.md, "Scene steering"). The game sends the truth with every ``say`` (``context``), so the
runtime settles that choice the way :mod:`npc_runtime.facts` settles a price:

- The bundle's manifest lists, per context key, the elements its model was trained to name and the words that name
  them (``scene_words``: ``{"weather": {"rain": ["rain", "raining", "rainy"], …}, "nearby": {…}, …}``, written by
  the export from the game world's vocabulary). A bundle without the list gets no scene steering.
- For each listed key the request's context has, the **targets** are the context's elements (``nearby`` is a
  comma-separated list, nearest first, with those the player's line names moved to the front as the looked-up
  hint lists them; a value the list does not know, such as ``weather: drizzle``, is its own word) and the
  **competitors** are the words of the key's other elements.
- A word the player's line uses never competes ("Is that a wolf?" may be answered "No wolf here"), nor does a
  word of the card's ware and place names ("apple" of "apple pie", "night" of "room for the night"). Elsewhere a
  competitor is left alone where the reply is saying words of the card: where the word it would begin, after the
  reply's last word, is a pair of words the card uses ("as rain" of a catchphrase "Right as rain!", "the wolves"
  of a quest to drive off the wolves), or, at the start of a sentence, a word it uses. (A first form left out
  every word the card used anywhere; since most generated cards mention a morning or the rain somewhere, that
  turned the time of day and the rain off for them.)
- Where the row's likeliest next token **begins a competitor** (its first token, as it would be spelt at the start
  of a reply or after a space, in lower or upper case, and only where that token is by itself a whole name of the
  element: " snow" of "snowy", but not " sun" of "sunny", which also begins "the sun is at its highest", nor
  " coin" of "coin purse"), the first target of that key the reply has not named yet gets ``bias`` on its first
  token, spelt like the competitor, and a taken nudge is finished (``FINISH_BIAS``).

A key of :data:`HINTED_KEYS` is steered only in a reply to the question it answers, as the intent reader's hint
names it: the place (``location``) in a reply to "where are we?" (``ask place``), since a reply to anything else
names other places for good reasons (the way to the inn, a rumour about the gate). There neither the card's place
names nor its phrases hold the place back: the model's slip is to give the persona's usual spot ("You're
standing at the temple" at the gate), often a place of its card; the player's words still never compete.

The model still decides whether a reply speaks of the scene at all, and where; the steering only picks which
element. It acts on a word, not a sentence: the words around a named element are the model's. Often the model
goes on with the element's own line ("It's snow again, my fingers are numb" in the rain becomes "It's rain today,
keep your hood up"); sometimes the sentence begun for another element comes out bent ("It's fog has rolled in").
It is a server setting like the fact steering (``npc-runtime serve --scene-bias``); 0 turns it off. The
empty-handed player (``player_item: nothing``) is never a target: "nothing" is too common a word ("just a dog,
nothing more") to be steered away from or towards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .facts import WordNudge, card_facts, spell_like
from .intent_hint import SCENE_HINTS, named_first
from .voice import plain_words

__all__ = ["DEFAULT_SCENE_BIAS", "HINTED_KEYS", "NOT_A_TARGET", "SceneSteering", "RowScene", "validate_scene_words"]

#: The default bias in nats (``GenOptions.scene_bias``); docs/eval.md, "Scene steering", gives the measured choice.
DEFAULT_SCENE_BIAS = 8.0

#: Context values that never become a target (see the module's docstring).
NOT_A_TARGET = frozenset({"", "nothing", "none"})

#: Context keys steered only in a reply to one request, by the intent reader's hint of the player's line: the
#: place, in a reply to the question whose hint looks it up ("ask place").
HINTED_KEYS = {key: hint for hint, key in SCENE_HINTS.items() if key == "location"}


def validate_scene_words(value: object) -> dict[str, dict[str, tuple[str, ...]]]:
    """The manifest's ``scene_words`` as ``{key: {element: words}}``; ValueError naming what is malformed."""
    if not isinstance(value, Mapping):
        raise ValueError(f"scene_words must be an object of context keys, got {type(value).__name__}")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for key, elements in value.items():
        if not isinstance(elements, Mapping) or not elements:
            raise ValueError(f"scene_words[{key!r}] must be a non-empty object of elements")
        out[str(key)] = {}
        for element, words in elements.items():
            if not isinstance(words, Sequence) or isinstance(words, str) or not words \
                    or not all(isinstance(w, str) and w.strip() for w in words):  # fmt: skip
                raise ValueError(f"scene_words[{key!r}][{element!r}] must be a non-empty list of words")
            out[str(key)][str(element)] = tuple(plain_words(w) for w in words)
    return out


class SceneSteering:
    """Per engine: the bundle's scene vocabulary, which tokens begin each of its words, and how a word is spelt."""

    def __init__(self, scene_words: Mapping[str, Mapping[str, Sequence[str]]],
                 encode: Callable[[str], Sequence[int]], pieces: Sequence[str]) -> None:  # fmt: skip
        self._encode = encode
        self.pieces = list(pieces)
        self.words = validate_scene_words(scene_words)
        self._first: dict[str, frozenset[int]] = {}  # word -> the tokens that begin it in a reply
        for elements in self.words.values():
            for words in elements.values():
                for word in words:
                    self._first.setdefault(word, self._first_tokens(word, words))

    def _first_tokens(self, word: str, forms: Sequence[str]) -> frozenset[int]:
        """The tokens that begin ``word`` in a reply (after a space or not, capitalised or not) and are a whole
        name of the same element by themselves: " snow" begins "snowy" too, but " sun" (of " sunny") also
        begins "the sun is at its highest", " coin" (of "coin purse") "not a coin less", and "F" (of "Fog")
        anything."""
        out = set()
        for spelt in (word, word.capitalize()):
            for text in (spelt, " " + spelt):
                ids = list(self._encode(text))
                if ids and 0 <= ids[0] < len(self.pieces) and self.pieces[ids[0]].strip().casefold() in forms:
                    out.add(ids[0])
        return frozenset(out)

    def row(self, context: Mapping[str, str], card_text: str, knowledge: str, player: str,
            bias: float, hint: str = "") -> RowScene | None:  # fmt: skip
        """The steering of one reply (None where no listed key has a target and a competitor, or ``bias`` is 0);
        ``hint`` is the intent reader's label of the player's line (:data:`HINTED_KEYS`; empty: none)."""
        if bias <= 0.0 or not context:
            return None
        sources = f" {plain_words(' '.join((card_text, knowledge, player)))} "
        # Words never steered away from: the player's, and those of the card's ware and place names ("apple" of
        # "apple pie", "night" of "room for the night"); for a hinted key only the player's.
        named = " ".join((player, *card_facts(knowledge)))
        kept_always = set(plain_words(named).split())
        competitors: dict[int, str] = {}
        targets: dict[str, list[str]] = {}
        for key, elements in self.words.items():
            value = context.get(key)
            if not isinstance(value, str) or (key in HINTED_KEYS and HINTED_KEYS[key] != hint):
                continue
            kept = set(plain_words(player).split()) if key in HINTED_KEYS else kept_always
            # Those the player's line names first ("What is that wolf doing here?" beside a cat), as the hint does.
            wanted = named_first([plain_words(part) for part in value.split(",")], player, elements)
            wanted = [w for w in wanted if w not in NOT_A_TARGET]
            if not wanted:
                continue
            # An element the list knows is said by its own name (the list's first word), another value as sent.
            says = [elements[w][0] if w in elements else w for w in wanted]
            own = {word for w in wanted for word in elements.get(w, (w,))}
            own_first = set().union(*(self._first.get(w, frozenset()) for w in own))
            rivals = set()
            for words in elements.values():
                for word in words:
                    if word not in own and word not in kept:
                        rivals |= {t for t in self._first[word] - own_first
                                   if self.pieces[t].strip().casefold() not in kept}  # " clear" of "clear skies"
            if rivals:
                targets[key] = says
                for token in rivals:
                    competitors.setdefault(token, key)
        return RowScene(self, competitors, targets, bias, sources) if competitors else None

    def spell(self, word: str, like: int) -> list[int]:
        """``word``'s token ids as it would follow in place of token ``like``: its leading space and capital."""
        return spell_like(self._encode, self.pieces, word, like)


class RowScene(WordNudge):
    """The scene steering of one reply: which token begins which key's competitor, and a taken nudge's rest."""

    def __init__(self, steering: SceneSteering, competitors: dict[int, str], targets: dict[str, list[str]],
                 bias: float, sources: str = " ") -> None:  # fmt: skip
        super().__init__(steering.pieces)
        self._steering = steering
        self.competitors = competitors
        self.targets = targets
        self.bias = bias
        self._sources = sources  # the card's, knowledge line's and player's words, " "-joined and padded

    def _quoting(self, best: int) -> bool:
        """Whether saying ``best`` here would go on with words of the card or the player's line: the word it
        begins after the reply's last word is a pair of words they use ("as rain" of "Right as rain!", "the
        wolves" of a quest about wolves), or, where no word of the sentence precedes it, a word they use."""
        word = self._steering.pieces[best].strip().casefold()
        before = self.text.rstrip()
        if not before or before[-1] in ".!?":
            return f" {word} " in self._sources
        last = plain_words(before).rsplit(" ", 1)[-1]
        return f" {last} {word} " in self._sources

    def _target(self, key: str) -> str:
        """The key's first target the reply has not named yet (the first one where it named them all)."""
        said = f" {plain_words(self.text)} "
        says = self.targets[key]
        return next((word for word in says if f" {word} " not in said), says[0])

    def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
        """The token ids to raise at this step and by how much, given the row's likeliest next token ``best``
        and the tokens the reply may still say (``room``; None: no limit)."""
        if self.finishing():
            return self.finish_step()
        key = self.competitors.get(best)
        if key is None or (key not in HINTED_KEYS and self._quoting(best)):
            return [], []
        return self.offer(self._steering.spell(self._target(key), best), self.bias, room)
