"""Reply-level metrics of the offline evaluation: facts, scene grounding, emotion, fluency and breaking character.

Every function here is pure (text and labels in, numbers out) and needs neither PyTorch nor a model, so each
metric can be tested on hand-made good and bad cases. The persona-attribution classifier lives in
:mod:`export.eval_attribution`; :mod:`export.evaluate` puts the pieces together.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sample_game.world import (
    CREATURE_PLURALS,
    CREATURE_TEXT,
    ITEM_TEXT,
    LOCATION_TEXT,
    NOTHING,
    TIME_TEXT,
    WEATHER_TEXT,
)

__all__ = [
    "normalize",
    "words",
    "contains_phrase",
    "fact_aliases",
    "carries_facts",
    "missing_facts",
    "ELEMENT_ALIASES",
    "element_aliases",
    "names_element",
    "confusion_matrix",
    "f1_per_label",
    "macro_f1",
    "distinct_n",
    "repeats_within",
    "repeats_history",
    "ends_cleanly",
    "out_of_character",
    "voice_markers",
    "share",
]

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


def normalize(text: str) -> str:
    """Case-folded, accent-stable text with every run of punctuation and space turned into one space."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("_", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())


def words(text: str) -> list[str]:
    """Case-folded word tokens (apostrophes kept inside words: ``don't`` is one token)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words, ignoring case and punctuation (``40`` is not in
    ``140``)."""
    needle = normalize(phrase)
    if not needle:
        return False
    return f" {needle} " in f" {normalize(text)} "


# --------------------------------------------------------------------------------------------- task facts

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
    "seventeen eighteen nineteen".split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number_words(n: int) -> str:
    """English words for 0..999: ``42`` -> ``forty two`` (normalised, so hyphens are spaces)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    head = _ONES[hundreds] + " hundred"
    return head if rest == 0 else f"{head} and {_number_words(rest)}"


def fact_aliases(fact: str) -> tuple[str, ...]:
    """Ways a reply may state ``fact``: the text itself and, for a whole number under 1000, its English words."""
    fact = fact.strip()
    if fact.isdigit() and int(fact) < 1000:
        spelled = _number_words(int(fact))
        return (fact, spelled, spelled.replace(" and ", " ")) if " and " in spelled else (fact, spelled)
    return (fact,)


def missing_facts(reply: str, facts: Sequence[str]) -> list[str]:
    """The required facts that ``reply`` does not state (whole-word, case- and punctuation-insensitive)."""
    return [fact for fact in facts if not any(contains_phrase(reply, alias) for alias in fact_aliases(fact))]


def carries_facts(reply: str, facts: Sequence[str]) -> bool:
    """Whether ``reply`` states every required fact (a price, a place, a direction, a quest reward...)."""
    return not missing_facts(reply, facts)


# --------------------------------------------------------------------------------------------- scene grounding


def _strip_article(text: str) -> str:
    for article in ("the ", "a ", "an "):
        if text.startswith(article):
            return text[len(article) :]
    return text


def _element_aliases() -> Mapping[str, tuple[str, ...]]:
    """Surface forms of every scene element of the sample game's world, from :mod:`sample_game.world`."""
    table: dict[str, set[str]] = {}

    def add(key: str, *forms: str) -> None:
        table.setdefault(key, {key}).update(forms)

    for kind, text in CREATURE_TEXT.items():
        add(kind, _strip_article(text), CREATURE_PLURALS[kind])
    for place, text in LOCATION_TEXT.items():
        add(place, _strip_article(text))
    for time, text in TIME_TEXT.items():
        add(time, text.split()[-1])
    add("noon", "midday")
    add("night", "tonight")
    for weather, text in WEATHER_TEXT.items():
        add(weather, text)
    add("rain", "raining", "rainy")
    add("fog", "foggy")
    add("snow", "snowing", "snowy")
    add("clear", "sunny")
    for item, text in ITEM_TEXT.items():
        add(item, _strip_article(text))
    add("coin purse", "purse")
    add(NOTHING, "empty handed", "empty hands", "nothing in your hands")
    return MappingProxyType({key: tuple(sorted(forms)) for key, forms in table.items()})


#: Canonical scene element (a world vocabulary word) -> the phrases that name it in a reply.
ELEMENT_ALIASES: Mapping[str, tuple[str, ...]] = _element_aliases()


def element_aliases(element: str) -> tuple[str, ...]:
    """Phrases that name ``element``: its world aliases when it is a vocabulary word, else the text itself."""
    key = normalize(element)
    for candidate in (key, _strip_article(key)):
        if candidate in ELEMENT_ALIASES:
            return ELEMENT_ALIASES[candidate]
    return (element,)


def names_element(reply: str, element: str) -> bool:
    """Whether ``reply`` names the scene element (``wolf`` is named by "a wolf", "wolves"; ``rain`` by "raining")."""
    return any(contains_phrase(reply, alias) for alias in element_aliases(element))


# --------------------------------------------------------------------------------------------- emotion


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """``matrix[i][j]``: how many replies with gold label ``labels[i]`` were predicted ``labels[j]``."""
    if len(gold) != len(pred):
        raise ValueError(f"gold and pred differ in length: {len(gold)} vs {len(pred)}")
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g not in index or p not in index:
            raise ValueError(f"label {g if g not in index else p!r} is not one of {tuple(labels)}")
        matrix[index[g]][index[p]] += 1
    return matrix


def f1_per_label(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """F1 of each label in ``labels`` (0.0 where it is neither predicted correctly nor supported)."""
    matrix = confusion_matrix(gold, pred, labels)
    scores = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        scores[label] = 0.0 if tp == 0 else 2.0 * tp / (predicted + support)
    return scores


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels that occur in ``gold`` or ``pred``; 0.0 for no data."""
    labels = sorted(set(gold) | set(pred))
    if not labels:
        return 0.0
    scores = f1_per_label(gold, pred, labels)
    return sum(scores.values()) / len(labels)


# --------------------------------------------------------------------------------------------- fluency


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(replies: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams of all replies pooled (higher is more varied); 0.0 when there are none."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for reply in replies:
        grams = _ngrams(words(reply), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


_SENTENCE_END = re.compile(r"[.!?…]+")


def repeats_within(reply: str) -> bool:
    """Degenerate repetition inside one reply: a word three times in a row, a sentence said twice, or a
    four-word phrase said twice.

    A doubled word ("no, no") or a short phrase said twice ("at the inn") is ordinary speech and passes;
    "the the the" and "Mind the edge. Mind the edge." do not.
    """
    tokens = words(reply)
    for i in range(len(tokens) - 2):
        if tokens[i] == tokens[i + 1] == tokens[i + 2]:
            return True
    sentences = [normalize(s) for s in _SENTENCE_END.split(reply)]
    sentences = [s for s in sentences if s]
    if len(set(sentences)) < len(sentences):
        return True
    fourgrams = Counter(_ngrams(tokens, 4))
    return any(count > 1 for count in fourgrams.values())


def repeats_history(reply: str, previous_npc_lines: Sequence[str], overlap: float = 0.8) -> bool:
    """Whether ``reply`` repeats an earlier NPC line of the conversation.

    It does when it equals one (ignoring case and punctuation) or, for replies of four words or more, when at
    least ``overlap`` of its four-word phrases were already said by the NPC.
    """
    text = normalize(reply)
    if not text or not previous_npc_lines:
        return False
    if any(text == normalize(line) for line in previous_npc_lines):
        return True
    grams = _ngrams(words(reply), 4)
    if not grams:
        return False
    earlier: set[tuple[str, ...]] = set()
    for line in previous_npc_lines:
        earlier.update(_ngrams(words(line), 4))
    repeated = sum(1 for gram in grams if gram in earlier)
    return repeated / len(grams) >= overlap


_CLOSERS = "\"'”’»)]*"
_TERMINALS = ".!?…"


def ends_cleanly(reply: str, truncated: bool = False) -> bool:
    """A finished sentence: not cut off by the token limit, non-empty, and ending in ``.``, ``!``, ``?`` or ``…``
    (closing quotes and brackets after it are fine)."""
    if truncated:
        return False
    text = reply.rstrip().rstrip(_CLOSERS).rstrip()
    return bool(text) and text[-1] in _TERMINALS


# --------------------------------------------------------------------------------------------- breaking character

# Phrases that only a speaker outside the fiction says: being a model, a program, an assistant, having a prompt.
# Kept narrow on purpose: "my instructions", "I was trained" or "the game" are ordinary words for a guard or a bard.
_META_PATTERNS: tuple[tuple[str, str], ...] = (
    ("ai_identity", r"\bas an? (ai|a\.i\.)\b|\b(ai|a\.i\.)( language)? (model|assistant|system|chatbot|program)\b"),
    (
        "ai_identity",
        r"\b(i am|i'm|im) (just |only )?(an? )?(ai|a\.i\.|artificial intelligence|robot|bot|chatbot|(computer )?program"
        r"|machine)\b",
    ),
    ("ai_identity", r"\blanguage model\b|\bartificial intelligence\b|\bchat ?bot\b|\bneural network\b"),
    ("ai_identity", r"\b(openai|chatgpt|gpt-?\d|llm|large language)\b"),
    ("assistant", r"\b(helpful|virtual|ai) assistant\b|\bas an assistant\b|\bhow (can|may) i assist you\b"),
    ("meta", r"\b(system prompt|my (programming|training data|prompt|configuration|system instructions))\b"),
    ("meta", r"\b(i was|i've been|i have been) (programmed|designed to)\b|\bprevious instructions\b"),
    ("meta", r"\b(role ?play(ing)?|in character|out of character|break(ing)? character|my persona)\b"),
    ("meta", r"\b(video game|computer game|in a game|just a game|this is a game|developer mode)\b"),
    ("refusal", r"\bi('m| am) (sorry|afraid),? but (as|i can't|i cannot|i'm not able|i am not able)\b"),
    ("refusal", r"\bi (can't|cannot) (help|assist|comply) with (that|this) request\b"),
)
# Things of the player's world. Naming one is fine when the NPC is puzzled by it ("A phone? Never heard of it.").
_MODERN_WORDS = (
    r"\b(phones?|smartphones?|wi-?fi|internet|e-?mail|bitcoin|crypto\w*|stock market|credit cards?|airports?|"
    r"taxis?|bus stops?|football match|movies?|tiktok|instagram|mcdonald'?s|elections?|antibiotics|computers?|"
    r"website|television|tv|npcs?|non-?player characters?)\b"
)
_PUZZLED = (
    r"never heard|what('s| is) an? |what are |(don't|do not|dinnae|dunno) (know|ken) (what|that word|of)|"
    r"no idea what|strange word|odd word|foreign word|queer word|speak plainly|talk sense|makes no sense|"
    r"not from (here|these parts)|sounds like|some kind of|some sort of"
)
_META_RE = tuple((reason, re.compile(pattern)) for reason, pattern in _META_PATTERNS)
_MODERN_RE = re.compile(_MODERN_WORDS)
_MODERN_ASKED_RE = re.compile(_MODERN_WORDS + r"['\"]?\s*\?")  # echoed back as a question: "Wifi?"
_PUZZLED_RE = re.compile(_PUZZLED)


def out_of_character(reply: str) -> str | None:
    """Why ``reply`` breaks character (``"ai_identity"``, ``"assistant"``, ``"meta"``, ``"refusal"``, ``"modern"``),
    or None when it stays inside the fiction.

    Claims to be a model, program or assistant, talk of prompts, rules, role-play or the game, and assistant-style
    refusals always count. Speaking of the player's modern world counts unless the NPC is plainly puzzled by it.
    """
    text = unicodedata.normalize("NFKC", reply).casefold().replace("’", "'")
    for reason, pattern in _META_RE:
        if pattern.search(text):
            return reason
    if _MODERN_RE.search(text) and not (_PUZZLED_RE.search(text) or _MODERN_ASKED_RE.search(text)):
        return "modern"
    return None


# --------------------------------------------------------------------------------------------- helpers


def voice_markers(card: Any) -> dict[str, str]:
    """The card's recognisable voice markers, as the corpus reads them (``profile_from_card``): its
    ``catchphrase`` and its form of ``address``, each only when the card has one."""
    from .corpus_style import profile_from_card

    profile = profile_from_card(card)
    found = {"catchphrase": profile.catchphrase, "address": profile.address}
    return {kind: marker for kind, marker in found.items() if marker and normalize(marker)}


def share(flags: Iterable[bool]) -> float | None:
    """Fraction of true flags; None when there are none to count (a metric with no eligible examples)."""
    values = list(flags)
    if not values:
        return None
    return sum(1 for v in values if v) / len(values)
