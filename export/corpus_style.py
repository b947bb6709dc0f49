"""Speaking styles for the training corpus: read a style off a persona card, describe one, and apply it to a reply.

The role model sees a card only through the sentence embedding of ``card_text()``, so every style the corpus uses
must be a systematic function of what the card *says* about its speech. :func:`profile_from_card` reads a
:class:`StyleProfile` from ``speaking_style``, traits and example lines with keyword rules; procedural personas get
their ``speaking_style`` from :func:`describe_style`, which those rules read back exactly. :func:`stylise` turns a
reply's neutral sentence templates into the persona's voice (dialect words, address term, length, catchphrase,
exclamations, hesitation). Slot values (prices, names, directions) are filled in after styling, so facts are never
altered.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from npc_runtime.personas import PersonaCard
from npc_runtime.voice import ADDRESS_RE, CATCHPHRASE_RE  # the runtime reads a card's markers as the corpus does

__all__ = [
    "DIALECTS",
    "VERBOSITIES",
    "TEMPERAMENTS",
    "StyleProfile",
    "profile_from_card",
    "temperament_of",
    "describe_style",
    "stylise",
    "fill",
]

DIALECTS: tuple[str, ...] = (
    "plain", "old_country", "courtly", "street", "scholarly", "childlike", "poetic", "soothing", "military", "gossipy",
)  # fmt: skip
VERBOSITIES: tuple[str, ...] = ("terse", "plain", "flowery")
#: How a persona reacts emotionally; read from traits (and a few roles), used by the emotion rules.
TEMPERAMENTS: tuple[str, ...] = ("bold", "gentle", "timid", "cheerful", "haughty", "grumpy", "steady")


@dataclass(frozen=True)
class StyleProfile:
    """The systematic parts of a persona's voice."""

    dialect: str = "plain"
    verbosity: str = "plain"
    address: str | None = None
    catchphrase: str | None = None
    excitable: bool = False
    hesitant: bool = False

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {self.dialect!r}")
        if self.verbosity not in VERBOSITIES:
            raise ValueError(f"verbosity must be one of {VERBOSITIES}, got {self.verbosity!r}")
        for name in ("address", "catchphrase"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip() or '"' in value):
                raise ValueError(f"{name} must be None or a non-empty string without double quotes, got {value!r}")


# --------------------------------------------------------------------------------------------------- reading a card

# Checked in this order; the first dialect with a keyword in the style text wins.
_DIALECT_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("childlike", ("childish", "child-like", "childlike", "like a child", "like an eager child", "like a kid")),
    ("old_country", ("aye", "dialect", "brogue", "burr", "old-country", " ye ", "ye,", "ye)")),
    ("street", ("slang", "street", "ain't", "gonna", "streetwise")),
    ("courtly", ("courtly", "formal", "contraction", "stately", "ceremonious", "courteous")),
    ("scholarly", ("learned", "bookish", "pedant", "scholarly", "academic", "long words", "precise")),
    ("military", ("military", "orders", "soldier", "regulation")),
    ("gossipy", ("gossip", "hearsay")),
    ("soothing", ("soothing", "soft-spoken", "gentle voice")),
    ("poetic", ("poetic", "lyrical", "sing-song", "rhym", "verse", "melodic", "musical", "song")),
)
_TERSE_WORDS = ("short", "blunt", "terse", "clipped", "few words", "curt", "brief", "laconic")
_FLOWERY_WORDS = (
    "flowery",
    "elaborate",
    "wordy",
    "rambling",
    "ornate",
    "verbose",
    "long-winded",
    "chatty",
    "long sentences",
)
_EXCITABLE_WORDS = ("exclaim", "exclamation", "excit", "energetic", "enthusias", "bubbly", "shouts", "loud")
_HESITANT_WORDS = ("hesitant", "hesitat", "nervous", "stammer", "stutter", "trails off", "halting")

_TEMPERAMENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timid", ("timid", "shy", "nervous", "anxious", "fearful", "meek", "skittish", "cautious", "jumpy")),
    ("haughty", ("haughty", "arrogant", "vain", "snob", "pompous", "proud", "fussy", "prim", "aloof")),
    ("grumpy", ("grumpy", "sour", "cynical", "bitter", "impatient", "surly", "cranky", "grouchy", "gruff")),
    ("bold", ("brave", "bold", "stern", "fierce", "tough", "dutiful", "vigilant", "stubborn", "strong", "loyal")),
    ("cheerful", ("cheerful", "jolly", "merry", "playful", "witty", "optimistic", "bubbly", "curious", "friendly")),
    ("gentle", ("gentle", "kind", "warm", "caring", "patient", "soft", "calm", "compassionate", "wise")),
)
# Roles whose reactions are clear whatever the traits say: a guard stands firm, a child gets scared.
_ROLE_TEMPERAMENT = MappingProxyType({"guard": "bold", "soldier": "bold", "watchman": "bold", "child": "timid"})


def _has_any(text: str, words: Sequence[str]) -> bool:
    return any(word in text for word in words)


def profile_from_card(card: PersonaCard) -> StyleProfile:
    """The style a card describes. Deterministic keyword rules on ``speaking_style`` (and example lines)."""
    # Quoted words are examples of speech ("says 'Aye'"), not descriptions of it: keep them out of the keywords.
    unquoted = re.sub(r"[\"\u201c][^\"\u201d]*[\"\u201d]|(?<!\w)'[^']*'(?!\w)", " ", card.speaking_style)
    style = " " + " ".join(unquoted.lower().split()) + " "
    dialect = "plain"
    for name, words in _DIALECT_KEYWORDS:
        if _has_any(style, words):
            dialect = name
            break
    if dialect == "plain":
        # A card may show its dialect only in its lines ("Aye, ye'll want the forge").
        lines = " " + " ".join(card.example_lines).lower() + " "
        if re.search(r"\b(aye|ye|yer|nay)\b", lines):
            dialect = "old_country"
    if _has_any(style, _FLOWERY_WORDS):
        verbosity = "flowery"
    elif _has_any(style, _TERSE_WORDS):
        verbosity = "terse"
    else:
        verbosity = "plain"
    address_match = ADDRESS_RE.search(card.speaking_style)
    address = address_match.group(1).strip() if address_match else None
    phrase_match = CATCHPHRASE_RE.search(card.speaking_style)
    if phrase_match:
        catchphrase = phrase_match.group(1).strip()
    else:
        # Otherwise the card's shortest example line stands in for a catchphrase, when it is short enough.
        shortest = min(card.example_lines, key=lambda line: (len(line.split()), line))
        catchphrase = shortest.strip() if len(shortest.split()) <= 6 and '"' not in shortest else None
    return StyleProfile(
        dialect=dialect,
        verbosity=verbosity,
        address=address,
        catchphrase=catchphrase or None,
        excitable=_has_any(style, _EXCITABLE_WORDS),
        hesitant=_has_any(style, _HESITANT_WORDS),
    )


def temperament_of(card: PersonaCard) -> str:
    """How the persona reacts: a role rule first, then the first matching trait keyword, else ``steady``."""
    role = card.role.lower().strip()
    if role in _ROLE_TEMPERAMENT:
        return _ROLE_TEMPERAMENT[role]
    traits = " ".join(card.traits).lower()
    for name, words in _TEMPERAMENT_WORDS:
        if _has_any(traits, words):
            return name
    return "steady"


# --------------------------------------------------------------------------------------------------- describing

_DIALECT_TEXT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "plain": ("plain, even speech", "simple, direct words", "ordinary village speech"),
        "old_country": ("thick old-country dialect (aye, nay, ye)", "broad village dialect full of aye and ye"),
        "courtly": ("formal, courtly manners, never a contraction", "stately and formal, every word proper"),
        "street": ("rough street slang (ain't, yeah, gonna)", "quick streetwise slang"),
        "scholarly": ("precise, learned vocabulary", "bookish and precise, fond of long words"),
        "childlike": ("simple childish words", "talks like an eager child"),
        "poetic": ("lyrical, sing-song phrasing", "poetic turns of phrase, as if half in verse"),
        "soothing": ("soft, soothing words", "gentle voice, soothing and unhurried"),
        "military": ("military manner, like a soldier on duty", "talks in orders and reports, like a soldier"),
        "gossipy": ("gossipy, always sharing news", "full of gossip and hearsay"),
    }
)
_VERBOSITY_TEXT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "terse": ("short, blunt sentences", "terse and clipped", "speaks in few words"),
        "plain": ("sentences of middling length", "says what is needed and no more"),
        "flowery": ("long, flowery sentences", "elaborate and wordy", "rambling, ornate talk"),
    }
)


def describe_style(profile: StyleProfile, rng: random.Random) -> str:
    """A ``speaking_style`` text that :func:`profile_from_card` reads back as ``profile``."""
    parts = [rng.choice(_VERBOSITY_TEXT[profile.verbosity]), rng.choice(_DIALECT_TEXT[profile.dialect])]
    if profile.excitable:
        parts.append(rng.choice(("full of exclamations", "excitable and loud", "bubbly, with many exclamations")))
    if profile.hesitant:
        parts.append(rng.choice(("hesitant, trails off", "nervous and halting", "stammers when unsure")))
    if profile.address:
        parts.append(f'calls people "{profile.address}"')
    if profile.catchphrase:
        parts.append(f'often says "{profile.catchphrase}"')
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------- applying

_CONTRACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "I'm": "I am", "I'll": "I shall", "I've": "I have", "I'd": "I would", "don't": "do not", "can't": "cannot",
        "won't": "will not", "isn't": "is not", "aren't": "are not", "it's": "it is", "It's": "It is",
        "that's": "that is", "That's": "That is", "there's": "there is", "There's": "There is",
        "you're": "you are", "You're": "You are", "you'll": "you will", "You'll": "You will", "we're": "we are",
        "let's": "let us", "Let's": "Let us", "doesn't": "does not", "didn't": "did not", "haven't": "have not",
        "wasn't": "was not", "what's": "what is", "What's": "What is", "here's": "here is", "Here's": "Here is",
        "they're": "they are", "Don't": "Do not", "Can't": "Cannot", "you've": "you have", "couldn't": "could not",
    }
)  # fmt: skip
_WORD_MAPS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "old_country": {"you": "ye", "You": "Ye", "your": "yer", "Your": "Yer", "little": "wee", "small": "wee",
                        "nothing": "naught", "Yes": "Aye", "yes": "aye", "myself": "meself"},
        "street": {"Yes": "Yeah", "yes": "yeah", "isn't": "ain't", "aren't": "ain't", "going to": "gonna",
                   "want to": "wanna", "nothing": "nothin'", "something": "somethin'", "them": "'em",
                   "friend": "mate"},
        "scholarly": {"Yes": "Indeed", "very": "exceedingly", "big": "considerable", "a lot": "a great deal",
                      "odd": "curious", "maybe": "perhaps"},
        "childlike": {"very": "really really", "big": "super big", "Yes": "Yep", "yes": "yep",
                      "nice": "so nice", "good": "super good"},
        "courtly": {"Yes": "Indeed", "Hello": "Well met", "hello": "well met", "Thanks": "My thanks",
                    "okay": "acceptable"},
        "military": {"Yes": "Correct", "okay": "acceptable", "maybe": "possibly"},
        "soothing": {"quickly": "gently", "hurry": "take your time"},
    }
)  # fmt: skip
_NO_WORD = re.compile(r"\bNo(?=[,.!])")
_FILLERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "plain": (),
        "old_country": ("Och,", "Aye,", "Well now,"),
        "courtly": ("Pray,", "Indeed,", "If it please you,"),
        "street": ("Listen,", "Right,", "Look,"),
        "scholarly": ("Indeed,", "Precisely,", "Curiously,"),
        "childlike": ("Ooh,", "Wow,", "Guess what,"),
        "poetic": ("Ah,", "Hark,", "Oh,"),
        "soothing": ("There, there,", "Gently now,", "Hush now,"),
        "military": ("Noted.", "Understood.", "Attention."),
        "gossipy": ("Well, between you and me,", "Oh, you'll never guess,", "Now then,"),
    }
)
_FLOURISHES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "plain": ("and that's the truth of it", "as sure as the river runs", "mark my words"),
        "old_country": ("as sure as the hills are old", "and that's the long and short of it", "mark me"),
        "courtly": ("as is only proper", "upon my honour", "if I may be so bold"),
        "street": ("no word of a lie", "swear on me mum", "and that's that"),
        "scholarly": ("or so the old texts say", "if my reading is correct", "to be perfectly precise"),
        "childlike": ("cross my heart", "honest and true", "I promise"),
        "poetic": ("as the old song goes", "sweet as a summer tune", "under sun and moon alike"),
        "soothing": ("rest easy", "and breathe slowly", "all in good time"),
        "military": ("by order of the reeve", "as regulations require", "no exceptions"),
        "gossipy": ("but you didn't hear it from me", "or so everyone's saying", "and that's the talk of the village"),
    }
)
_KEEP_CAPITAL = ("I", "I'm", "I'll", "I've", "I'd", "Emberfall")


def _map_words(text: str, dialect: str) -> str:
    if dialect == "courtly":
        for short, long in _CONTRACTIONS.items():
            text = re.sub(rf"(?<![\w{{]){re.escape(short)}\b", long, text)
    mapping = _WORD_MAPS.get(dialect)
    if mapping:
        pattern = re.compile(
            r"(?<![\w{'])(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")(?![\w}])"
        )
        text = pattern.sub(lambda m: mapping[m.group(1)], text)
    if dialect == "old_country":
        text = _NO_WORD.sub("Nay", text)
    return text


def _escape(text: str) -> str:
    # Card text goes through str.format with the slots: braces in it must stay literal.
    return text.replace("{", "{{").replace("}", "}}")


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if not first or first.startswith("{") or first.rstrip(",.!?") in _KEEP_CAPITAL or not first[0].isupper():
        return text
    if len(first) > 1 and first[1].isupper():  # an acronym or shouted word
        return text
    return text[0].lower() + text[1:]


def _lead_with(sentences: list[str], lead: str) -> None:
    """Put an interjection in front: ``"Aye,"`` joins the first sentence, ``"Oh!"`` stands alone."""
    if lead.endswith((",", "...")):
        sentences[0] = f"{lead} {_lower_first(sentences[0])}"
    else:
        sentences.insert(0, lead)


def _add_address(sentence: str, address: str) -> str:
    body, end = sentence.rstrip(), ""
    while body and body[-1] in ".!?":
        end = body[-1] + end
        body = body[:-1]
    return f"{body}, {address}{end or '.'}"


def _exclaim(sentence: str) -> str:
    return sentence[:-1] + "!" if sentence.endswith(".") else sentence


def stylise(
    core: Sequence[str],
    extra: Sequence[str],
    profile: StyleProfile,
    rng: random.Random,
    opener: str | None = None,
    allow_catchphrase: bool = True,
) -> list[str]:
    """The reply's sentence templates in the persona's voice; slots (``{price}``) are still unfilled.

    ``core`` carries what the reply must say (facts stay in slots); ``extra`` is optional colour that a terse
    speaker drops and a flowery one keeps; ``opener`` is an emotion interjection chosen by the caller.
    """
    sentences = list(core)
    if profile.verbosity == "flowery":
        if extra:
            sentences.append(rng.choice(extra))
        flourish = rng.choice(_FLOURISHES[profile.dialect])
        last = sentences[-1].rstrip()
        if last and last[-1] in ".!" and not last.endswith("}."):
            sentences[-1] = f"{last[:-1]}, {flourish}{last[-1]}"
        else:
            sentences.append(f"{flourish[0].upper()}{flourish[1:]}.")
    elif profile.verbosity == "plain" and extra and rng.random() < 0.4:
        sentences.append(rng.choice(extra))
    sentences = [_map_words(s, profile.dialect) for s in sentences]

    fillers = _FILLERS[profile.dialect]
    if fillers and rng.random() < (0.45 if profile.verbosity == "terse" else 0.6):
        _lead_with(sentences, rng.choice(fillers))
    if profile.hesitant and rng.random() < 0.6:
        _lead_with(sentences, rng.choice(("Um,", "Well...", "I, uh,", "Er,")))
    if opener is not None:
        _lead_with(sentences, _map_words(_escape(opener), profile.dialect))

    if profile.address and rng.random() < (0.35 if profile.verbosity == "terse" else 0.5):
        i = rng.randrange(len(sentences))
        sentences[i] = _add_address(sentences[i], profile.address)
    if profile.excitable:
        sentences = [_exclaim(s) if rng.random() < 0.75 else s for s in sentences]
    if profile.hesitant and len(sentences) > 1 and rng.random() < 0.4:
        i = rng.randrange(len(sentences) - 1)
        if sentences[i].endswith("."):
            sentences[i] = sentences[i][:-1] + "..."
    if allow_catchphrase and profile.catchphrase and rng.random() < 0.3:
        sentences.append(_escape(profile.catchphrase))
    return sentences


def fill(sentences: Sequence[str], slots: Mapping[str, str]) -> str:
    """Join styled sentence templates and fill their slots; the result ends with sentence punctuation."""
    text = " ".join(s.strip() for s in sentences if s.strip())
    text = text.format_map(dict(slots))
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.!?])", r"\1", text)
    # Sentences that begin with a slot ("a week's free room waits...") still start with a capital.
    text = re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if text and text[-1] not in ".!?":
        text += "."
    return text
