"""Persona cards: TOML files that say who an NPC is, what it knows and how it talks, loaded into a pack.

A card is the one description of a persona shared by the corpus builder (``export/``), the model (its
``card_text()`` goes through the sentence encoder; its ``knowledge_text()`` is copied into the decoder prompt) and
the server (``public_fields()`` answers the protocol's ``personas`` request). This module also writes cards back
to TOML and imports SillyTavern character cards, so studios can bring personas they already have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .emotion import EMOTIONS, NEUTRAL
from .errors import PersonaError
from .prompt import FIELD_SEPARATOR

__all__ = [
    "ID_PATTERN",
    "MAX_KNOWLEDGE_CHARS",
    "MAX_STYLE_CHARS",
    "Ware",
    "Place",
    "Quest",
    "Knowledge",
    "PersonaCard",
    "PersonaPack",
    "load_persona",
    "default_pack_dir",
    "card_to_toml",
    "import_sillytavern",
]

log = logging.getLogger(__name__)

#: A persona id: lower-case letters, digits, ``_`` and ``-``; it is also the card's file stem.
ID_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
#: Soft cap on ``knowledge_text()``: it is paid in decoder tokens on every turn.
MAX_KNOWLEDGE_CHARS = 600
#: Cap on the speaking style quoted in ``knowledge_text(voice=True)``, on top of ``MAX_KNOWLEDGE_CHARS``.
MAX_STYLE_CHARS = 200

_TOP_LEVEL_KEYS = (
    "id", "name", "role", "backstory", "traits", "speaking_style", "example_lines",
    "goals", "default_emotion", "relationships", "knowledge",
)  # fmt: skip
_KNOWLEDGE_KEYS = ("facts", "rumours", "wares", "places", "quest")
_QUEST_KEYS = ("title", "task", "reward", "location")


class _FieldError(ValueError):
    """A card value breaks a rule; ``field`` is its dotted path (``knowledge.wares[1].price``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"field '{field_path}': {message}")
        self.field = field_path
        self.reason = message


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------- the card



_QUOTED = re.compile(r'(["\u201c])\s*([^"\u201c\u201d]+?)\s*(["\u201d])')
#: Single quotes only where they cannot be apostrophes: after a space (or the start) and before a space or
#: punctuation (or the end).
_SINGLE_QUOTED = re.compile(r"(^|\s)(['\u2018])([^'\u2018\u2019]+?)(['\u2019])(?=$|[\s,.;:!?|)])")


def space_quotes(text: str) -> str:
    """``text`` with a space inside each pair of quotes: ``says "Salt and oars!"`` becomes
    ``says " Salt and oars! "``, ``calls people 'sprout'`` becomes ``calls people ' sprout '``.

    A byte-level tokenizer joins a word to the quote before it (``"``, ``S``, ``alt``), while a reply says the same
    word after a space (`` Salt``): a different token, so a decoder could never copy a quoted catchphrase's or form
    of address's first token from the ``<know>`` line. With the space the tokens match.
    """
    text = _QUOTED.sub(lambda m: f"{m[1]} {m[2].strip()} {m[3]}", text)
    return _SINGLE_QUOTED.sub(lambda m: f"{m[1]}{m[2]} {m[3].strip()} {m[4]}", text)


@dataclass(frozen=True)
class Ware:
    """Something the persona sells, with its price in silver coins."""

    item: str
    price: int

    def __post_init__(self) -> None:
        if not isinstance(self.item, str) or not self.item.strip():
            raise _FieldError("item", "must be a non-empty string")
        if isinstance(self.price, bool) or not isinstance(self.price, int):
            raise _FieldError("price", "must be an integer (silver coins)")
        if self.price < 0:
            raise _FieldError("price", f"must be >= 0, got {self.price}")


@dataclass(frozen=True)
class Place:
    """A place the persona can give directions to."""

    name: str
    directions: str

    def __post_init__(self) -> None:
        for name in ("name", "directions"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _FieldError(name, "must be a non-empty string")


@dataclass(frozen=True)
class Quest:
    """A task the persona can hand the player."""

    title: str
    task: str
    reward: str
    location: str

    def __post_init__(self) -> None:
        for name in _QUEST_KEYS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _FieldError(name, "must be a non-empty string")


@dataclass(frozen=True)
class Knowledge:
    """What a persona knows that a reply may need to state exactly: facts, prices, directions, a quest."""

    facts: tuple[str, ...] = ()
    rumours: tuple[str, ...] = ()
    wares: tuple[Ware, ...] = ()
    places: tuple[Place, ...] = ()
    quest: Quest | None = None

    def __post_init__(self) -> None:
        for name in ("facts", "rumours"):
            _check_str_tuple(getattr(self, name), name, min_items=0)
        for name, kind in (("wares", Ware), ("places", Place)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(x, kind) for x in value):
                raise _FieldError(name, f"must be a tuple of {kind.__name__}")
        if self.quest is not None and not isinstance(self.quest, Quest):
            raise _FieldError("quest", "must be a Quest or None")

    def is_empty(self) -> bool:
        return not (self.facts or self.rumours or self.wares or self.places or self.quest)

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and dicts (msgpack- and TOML-friendly); empty sections are left out."""
        out: dict[str, Any] = {}
        if self.facts:
            out["facts"] = list(self.facts)
        if self.rumours:
            out["rumours"] = list(self.rumours)
        if self.wares:
            out["wares"] = [{"item": w.item, "price": w.price} for w in self.wares]
        if self.places:
            out["places"] = [{"name": p.name, "directions": p.directions} for p in self.places]
        if self.quest is not None:
            out["quest"] = {key: getattr(self.quest, key) for key in _QUEST_KEYS}
        return out


def _check_str_tuple(value: object, name: str, min_items: int) -> None:
    if not isinstance(value, tuple):
        raise _FieldError(name, "must be a tuple of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _FieldError(f"{name}[{i}]", "must be a non-empty string")
    if len(value) < min_items:
        raise _FieldError(name, f"needs at least {min_items} item(s), got {len(value)}")


@dataclass(frozen=True)
class PersonaCard:
    """One persona. Lists are tuples and maps read-only, so a card can be shared between threads.

    ``source`` (the file it came from, if any) takes no part in equality: a card written to TOML and loaded back
    equals the original.
    """

    id: str
    name: str
    role: str
    backstory: str
    traits: tuple[str, ...]
    speaking_style: str
    example_lines: tuple[str, ...]
    goals: tuple[str, ...] = ()
    default_emotion: str = NEUTRAL
    relationships: Mapping[str, str] = field(default_factory=dict, hash=False)
    knowledge: Knowledge = field(default_factory=Knowledge)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_PATTERN.fullmatch(self.id):
            raise _FieldError("id", f"must match {ID_PATTERN.pattern}, got {self.id!r}")
        for name in ("name", "role", "backstory", "speaking_style"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _FieldError(name, "must be a non-empty string")
        _check_str_tuple(self.traits, "traits", min_items=1)
        _check_str_tuple(self.example_lines, "example_lines", min_items=2)
        _check_str_tuple(self.goals, "goals", min_items=0)
        if self.default_emotion not in EMOTIONS:
            raise _FieldError("default_emotion", f"must be one of {', '.join(EMOTIONS)}, got {self.default_emotion!r}")
        if not isinstance(self.relationships, Mapping):
            raise _FieldError("relationships", "must be a map of strings")
        for key, value in self.relationships.items():
            if not isinstance(key, str) or not key.strip() or not isinstance(value, str) or not value.strip():
                raise _FieldError(f"relationships.{key}", "must map a non-empty name to a non-empty string")
        if not isinstance(self.knowledge, Knowledge):
            raise _FieldError("knowledge", "must be a Knowledge")
        # Read-only copy: a caller's dict cannot change the card afterwards.
        object.__setattr__(self, "relationships", MappingProxyType(dict(self.relationships)))

    def card_text(self) -> str:
        """English text of the card for the sentence encoder, most identity-defining parts first.

        The encoder truncates at 256 word pieces, so name, role, traits, speaking style and example lines come
        before the backstory and goals.
        """
        examples = " ".join(f'"{_one_line(line)}"' for line in self.example_lines)
        parts = [
            f"{_one_line(self.name)}, the {_one_line(self.role)}.",
            f"Traits: {', '.join(_one_line(t) for t in self.traits).rstrip('.')}.",
            f"Speaking style: {_one_line(self.speaking_style).rstrip('.')}.",
            f"Says things like: {examples}",
            f"Backstory: {_one_line(self.backstory)}",
        ]
        if self.goals:
            parts.append(f"Goals: {'; '.join(_one_line(g) for g in self.goals).rstrip('.')}.")
        return " ".join(parts)

    def voice_sections(self) -> list[str]:
        """The card's voice as ``knowledge_text`` sections: traits, default mood and speaking style (capped)."""
        style = _one_line(self.speaking_style)
        if len(style) > MAX_STYLE_CHARS:
            cut = style[:MAX_STYLE_CHARS]
            style = cut.rsplit(" ", 1)[0] if " " in cut else cut
        return [
            "traits: " + ", ".join(_one_line(t) for t in self.traits),
            f"mood: {self.default_emotion}",
            f"style: {style}",
        ]

    def knowledge_text(self, max_chars: int = MAX_KNOWLEDGE_CHARS, voice: bool = False,
                       spaced_quotes: bool = False) -> str:
        """The facts a reply may need to copy, as one compact line of ``key: items`` sections joined by `` | ``.

        Sections: name, role, wares (prices in silver), places (with directions), quest, facts, rumours, knows
        (relationships). When the line is longer than ``max_chars``, relationships are dropped first (last first),
        then rumours, then facts; if it is still too long it is cut at a word boundary.

        ``voice`` adds :meth:`voice_sections` after the role, so a decoder can copy the card's catchphrase and form
        of address word for word. They do not count against ``max_chars``: the facts kept are the same either way.

        ``spaced_quotes`` puts a space inside each pair of double quotes (:func:`space_quotes`), so a quoted
        phrase's first word is the same token on this line as in a reply (see that function). It is applied after
        the length cap, so the facts kept are the same either way.
        """
        k = self.knowledge
        rumours = [_one_line(r) for r in k.rumours]
        facts = [_one_line(f) for f in k.facts]
        knows = [f"{_one_line(who)} ({_one_line(what)})" for who, what in self.relationships.items()]
        voiced = self.voice_sections() if voice else []
        if voiced:
            max_chars += sum(len(v) + len(FIELD_SEPARATOR) for v in voiced)  # each section and its separator

        def render() -> str:
            sections = [f"name: {_one_line(self.name)}", f"role: {_one_line(self.role)}", *voiced]
            if k.wares:
                sections.append("wares: " + ", ".join(f"{_one_line(w.item)} {w.price}" for w in k.wares))
            if k.places:
                sections.append(
                    "places: " + ", ".join(f"{_one_line(p.name)} ({_one_line(p.directions)})" for p in k.places)
                )
            if k.quest is not None:
                q = k.quest
                sections.append(
                    f"quest: {_one_line(q.title)}: {_one_line(q.task)}; reward {_one_line(q.reward)}; "
                    f"at {_one_line(q.location)}"
                )
            if facts:
                sections.append("facts: " + ", ".join(facts))
            if rumours:
                sections.append("rumours: " + ", ".join(rumours))
            if knows:
                sections.append("knows: " + ", ".join(knows))
            return FIELD_SEPARATOR.join(sections)

        text = render()
        for items in (knows, rumours, facts):
            while len(text) > max_chars and items:
                items.pop()
                text = render()
        if len(text) > max_chars:
            cut = text[:max_chars]
            text = cut.rsplit(" ", 1)[0] if " " in cut else cut
        return space_quotes(text) if spaced_quotes else text

    def fingerprint(self) -> str:
        """SHA-256 hex digest of what the model sees of this card; caches of persona prefixes key on it."""
        data = self.card_text() + "\n" + self.knowledge_text(voice=True)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()

    def public_fields(self) -> dict[str, Any]:
        """The card as plain msgpack-friendly data for the protocol's ``personas`` reply."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "traits": list(self.traits),
            "speaking_style": self.speaking_style,
            "default_emotion": self.default_emotion,
            "backstory": self.backstory,
            "goals": list(self.goals),
            "example_lines": list(self.example_lines),
            "knowledge": self.knowledge.as_dict(),
            "relationships": dict(self.relationships),
        }


# --------------------------------------------------------------------------------------------------- loading


def _get_str(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    if key not in data:
        if required:
            raise _FieldError(where + key, "is missing")
        return None
    value = data[key]
    if not isinstance(value, str):
        raise _FieldError(where + key, f"must be a string, got {type(value).__name__}")
    return value


def _get_str_list(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> tuple[str, ...]:
    if key not in data:
        if required:
            raise _FieldError(where + key, "is missing")
        return ()
    value = data[key]
    if not isinstance(value, list):
        raise _FieldError(where + key, f"must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _FieldError(f"{where}{key}[{i}]", f"must be a string, got {type(item).__name__}")
    return tuple(value)


def _get_table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise _FieldError(where + key, f"must be a table, got {type(value).__name__}")
    return value


def _get_table_list(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _FieldError(where + key, "must be an array of tables ([[...]])")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _FieldError(f"{where}{key}[{i}]", "must be a table")
    return value


def _warn_unknown(data: Mapping[str, Any], known: Sequence[str], where: str, path: str) -> None:
    for key in data:
        if key not in known:
            log.warning("%s: ignoring unknown key '%s%s'", path, where, key)


def _build(kind: type, values: dict[str, Any], where: str) -> Any:
    try:
        return kind(**values)
    except _FieldError as exc:
        raise _FieldError(where + exc.field, exc.reason) from None


def _parse_knowledge(data: Mapping[str, Any] | None, path: str) -> Knowledge:
    if data is None:
        return Knowledge()
    where = "knowledge."
    _warn_unknown(data, _KNOWLEDGE_KEYS, where, path)
    wares = []
    for i, entry in enumerate(_get_table_list(data, "wares", where)):
        at = f"{where}wares[{i}]."
        _warn_unknown(entry, ("item", "price"), at, path)
        if "price" not in entry:
            raise _FieldError(at + "price", "is missing")
        wares.append(_build(Ware, {"item": _get_str(entry, "item", at), "price": entry["price"]}, at))
    places = []
    for i, entry in enumerate(_get_table_list(data, "places", where)):
        at = f"{where}places[{i}]."
        _warn_unknown(entry, ("name", "directions"), at, path)
        values = {key: _get_str(entry, key, at) for key in ("name", "directions")}
        places.append(_build(Place, values, at))
    quest = None
    quest_data = _get_table(data, "quest", where)
    if quest_data is not None:
        at = where + "quest."
        _warn_unknown(quest_data, _QUEST_KEYS, at, path)
        quest = _build(Quest, {key: _get_str(quest_data, key, at) for key in _QUEST_KEYS}, at)
    return _build(
        Knowledge,
        {
            "facts": _get_str_list(data, "facts", where, required=False),
            "rumours": _get_str_list(data, "rumours", where, required=False),
            "wares": tuple(wares),
            "places": tuple(places),
            "quest": quest,
        },
        where,
    )


def _parse_card(data: Mapping[str, Any], path: str) -> PersonaCard:
    _warn_unknown(data, _TOP_LEVEL_KEYS, "", path)
    relationships = _get_table(data, "relationships", "") or {}
    for key, value in relationships.items():
        if not isinstance(value, str):
            raise _FieldError(f"relationships.{key}", f"must be a string, got {type(value).__name__}")
    default_emotion = _get_str(data, "default_emotion", "", required=False)
    return PersonaCard(
        id=_get_str(data, "id", ""),
        name=_get_str(data, "name", ""),
        role=_get_str(data, "role", ""),
        backstory=_get_str(data, "backstory", ""),
        traits=_get_str_list(data, "traits", ""),
        speaking_style=_get_str(data, "speaking_style", ""),
        example_lines=_get_str_list(data, "example_lines", ""),
        goals=_get_str_list(data, "goals", "", required=False),
        default_emotion=NEUTRAL if default_emotion is None else default_emotion,
        relationships=relationships,
        knowledge=_parse_knowledge(_get_table(data, "knowledge", ""), path),
        source=path,
    )


def load_persona(path: str | Path) -> PersonaCard:
    """Read one card; every problem raises :class:`PersonaError` naming the file and the field."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PersonaError(f"cannot read the file: {exc.strerror or exc}", path=where) from exc
    except UnicodeDecodeError as exc:
        raise PersonaError(f"not UTF-8 text: {exc}", path=where) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"TOML syntax error: {exc}", path=where) from exc
    try:
        card = _parse_card(data, where)
    except _FieldError as exc:
        raise PersonaError(exc.reason, path=where, field=exc.field) from exc
    if card.id != path.stem:
        raise PersonaError(f"id {card.id!r} must equal the file name stem {path.stem!r}", path=where, field="id")
    return card


def default_pack_dir() -> Path:
    """The persona pack bundled with the package (the village of Emberfall)."""
    return Path(__file__).resolve().parent / "data" / "personas"


class PersonaPack:
    """The personas a server offers, by id. Immutable once built."""

    def __init__(self, cards: Mapping[str, PersonaCard]) -> None:
        self._cards = dict(sorted(cards.items()))

    @classmethod
    def from_cards(cls, cards: Iterable[PersonaCard]) -> PersonaPack:
        """A pack of the given cards; two cards with one id raise :class:`PersonaError`."""
        by_id: dict[str, PersonaCard] = {}
        for card in cards:
            if not isinstance(card, PersonaCard):
                raise TypeError(f"expected PersonaCard, got {type(card).__name__}")
            if card.id in by_id:
                first = by_id[card.id].source or "an earlier card"
                raise PersonaError(f"duplicate id {card.id!r} (also in {first})", path=card.source, field="id")
            by_id[card.id] = card
        return cls(by_id)

    @classmethod
    def load(cls, directory: str | Path) -> PersonaPack:
        """Every ``*.toml`` card of ``directory``, read in sorted order."""
        directory = Path(directory)
        if not directory.is_dir():
            raise PersonaError("persona pack directory not found", path=str(directory))
        files = sorted(directory.glob("*.toml"))
        if not files:
            log.warning("%s: persona pack has no *.toml cards", directory)
        return cls.from_cards(load_persona(path) for path in files)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._cards)

    @property
    def cards(self) -> tuple[PersonaCard, ...]:
        return tuple(self._cards.values())

    def get(self, persona_id: str) -> PersonaCard:
        """The card with this id; ``KeyError`` when the pack has none."""
        try:
            return self._cards[persona_id]
        except KeyError:
            raise KeyError(persona_id) from None

    def __contains__(self, persona_id: object) -> bool:
        return persona_id in self._cards

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[PersonaCard]:
        return iter(self._cards.values())

    def __repr__(self) -> str:
        return f"PersonaPack({', '.join(self._cards)})"


# --------------------------------------------------------------------------------------------------- writing

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(value: str) -> str:
    # A basic string: quote, backslash and every control character escaped; other unicode written as is.
    out = []
    for ch in value:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_str(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = "".join(f"    {_toml_value(v)},\n" for v in value)
        return "[\n" + items + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]


def card_to_toml(card: PersonaCard) -> str:
    """The card as TOML text that :func:`load_persona` reads back into an equal card."""
    top = {
        "id": card.id,
        "name": card.name,
        "role": card.role,
        "default_emotion": card.default_emotion,
        "traits": card.traits,
        "speaking_style": card.speaking_style,
        "example_lines": card.example_lines,
        "backstory": card.backstory,
    }
    if card.goals:
        top["goals"] = card.goals
    lines = _toml_pairs(top)
    if card.relationships:
        lines += ["", "[relationships]", *_toml_pairs(card.relationships)]
    knowledge = card.knowledge.as_dict()
    plain = {k: v for k, v in knowledge.items() if k in ("facts", "rumours")}
    if plain:
        lines += ["", "[knowledge]", *_toml_pairs(plain)]
    for section in ("wares", "places"):
        for entry in knowledge.get(section, []):
            lines += ["", f"[[knowledge.{section}]]", *_toml_pairs(entry)]
    if "quest" in knowledge:
        lines += ["", "[knowledge.quest]", *_toml_pairs(knowledge["quest"])]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- SillyTavern

_DEFAULT_ROLE = "villager"
_DEFAULT_STYLE = "plain, even-toned speech"
_DEFAULT_TRAIT = "even-tempered"
_MAX_IMPORTED_LINES = 6
_MAX_IMPORTED_TRAITS = 8
_MAX_IMPORTED_STYLE_CHARS = 200
# Tags that describe a card rather than a job: never taken as the role.
_NON_ROLE_TAGS = frozenset(
    "male female nsfw sfw oc original character fantasy sci-fi scifi anime english roleplay rpg human "
    "elf dwarf orc woman man girl boy cute romance adventure".split()
)
_SPEECH_WORDS = re.compile(r"\b(speaks?|speaking|talks?|talking|speech|voice|accent|tone)\b", re.IGNORECASE)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:64].strip("_")


def _macros(text: str, name: str) -> str:
    text = re.sub(r"\{\{\s*char\s*\}\}|<BOT>", lambda _: name, text, flags=re.IGNORECASE)
    return re.sub(r"\{\{\s*user\s*\}\}|<USER>", "traveller", text, flags=re.IGNORECASE)


def _char_lines(mes_example: str, name: str) -> list[str]:
    """The character's messages of every ``<START>`` block, in order; continuation lines are joined."""
    char_names = r"\{\{\s*char\s*\}\}|<BOT>|" + re.escape(name)
    speaker = re.compile(rf"^\s*(?:(?P<char>{char_names})|\{{\{{\s*user\s*\}}\}}|<USER>)\s*:\s?(?P<text>.*)$", re.I)
    lines: list[str] = []
    for block in re.split(r"<START>", mes_example, flags=re.IGNORECASE):
        current: list[str] | None = None
        for raw in block.splitlines():
            match = speaker.match(raw)
            if match:
                if current:
                    lines.append(" ".join(current))
                current = [match.group("text")] if match.group("char") else None
            elif current is not None and raw.strip():
                current.append(raw.strip())
        if current:
            lines.append(" ".join(current))
    return [_one_line(_macros(line, name)) for line in lines if line.strip()]


def _role_from_tags(tags: object) -> str:
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and re.fullmatch(r"[A-Za-z][A-Za-z -]{1,23}", tag.strip()):
                if tag.strip().lower() not in _NON_ROLE_TAGS:
                    return tag.strip().lower()
    return _DEFAULT_ROLE


def _speaking_style(texts: Sequence[str], traits: Sequence[str]) -> str:
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if _SPEECH_WORDS.search(sentence):
                return _one_line(sentence)[:_MAX_IMPORTED_STYLE_CHARS].rstrip(" .")
    if traits:
        return "speaks in a " + ", ".join(traits[:3]) + " way"
    return _DEFAULT_STYLE


def import_sillytavern(src_json_path: str | Path, out_dir: str | Path, persona_id: str | None = None) -> Path:
    """Convert a SillyTavern character card (V2 ``chara_card_v2`` or flat V1 JSON) into ``out_dir/<id>.toml``.

    Returns the written path. Raises :class:`PersonaError` naming the source file and field when the JSON is
    unusable, and when the target file already exists (it is never overwritten).
    """
    src = str(src_json_path)
    try:
        raw = json.loads(Path(src_json_path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise PersonaError(f"cannot read the file: {exc.strerror or exc}", path=src) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersonaError(f"not a JSON character card: {exc}", path=src) from exc
    if not isinstance(raw, dict):
        raise PersonaError("a character card must be a JSON object", path=src)
    if "data" in raw or raw.get("spec") == "chara_card_v2":
        data, where = raw.get("data"), "data."
        if not isinstance(data, dict):
            raise PersonaError("must be a JSON object", path=src, field="data")
    else:
        data, where = raw, ""

    def text(key: str) -> str:
        value = data.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise PersonaError(f"must be a string, got {type(value).__name__}", path=src, field=where + key)
        return value

    name = _one_line(text("name"))
    if not name:
        raise PersonaError("is missing or empty", path=src, field=where + "name")
    pid = persona_id if persona_id is not None else _slug(name)
    if not ID_PATTERN.fullmatch(pid):
        field_name = "persona_id" if persona_id is not None else where + "name"
        raise PersonaError(f"cannot make a persona id from {pid!r}; pass persona_id", path=src, field=field_name)

    personality = _macros(text("personality"), name)
    traits = [_one_line(t) for t in re.split(r"[,;\n]", personality) if t.strip()][:_MAX_IMPORTED_TRAITS]
    backstory = _one_line(_macros(" ".join(x for x in (text("description"), text("scenario")) if x.strip()), name))
    if not backstory:
        log.warning("%s: card has no description or scenario; using a placeholder backstory", src)
        backstory = f"{name} lives quietly and keeps to their own business."

    examples = _char_lines(text("mes_example"), name)
    greetings = [text("first_mes")]
    alternates = data.get("alternate_greetings") or []
    if isinstance(alternates, list):
        greetings += [g for g in alternates if isinstance(g, str)]
    for greeting in greetings:
        line = _one_line(_macros(greeting, name))
        if line:
            examples.append(line)
    examples = list(dict.fromkeys(examples))[:_MAX_IMPORTED_LINES]
    if len(examples) < 2:
        message = "needs at least 2 lines of the character (from mes_example and first_mes)"
        raise PersonaError(message, path=src, field=where + "mes_example")

    facts = []
    book = data.get("character_book")
    if isinstance(book, dict) and isinstance(book.get("entries"), list):
        for entry in book["entries"]:
            if isinstance(entry, dict) and entry.get("enabled", True) is not False:
                content = entry.get("content")
                if isinstance(content, str) and content.strip():
                    facts.append(_one_line(_macros(content, name)))

    style_sources = [personality, _macros(text("creator_notes"), name), _macros(text("description"), name)]
    try:
        card = PersonaCard(
            id=pid,
            name=name,
            role=_role_from_tags(data.get("tags")),
            backstory=backstory,
            traits=tuple(traits) or (_DEFAULT_TRAIT,),
            speaking_style=_speaking_style(style_sources, traits),
            example_lines=tuple(examples),
            knowledge=Knowledge(facts=tuple(facts)),
        )
    except _FieldError as exc:
        raise PersonaError(exc.reason, path=src, field=exc.field) from exc

    out = Path(out_dir) / f"{pid}.toml"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("x", encoding="utf-8", newline="\n") as fh:
            fh.write(card_to_toml(card))
    except FileExistsError as exc:
        raise PersonaError("refusing to overwrite an existing persona card", path=str(out), field="id") from exc
    except OSError as exc:
        raise PersonaError(f"cannot write the card: {exc.strerror or exc}", path=str(out)) from exc
    log.info("imported SillyTavern card %s as %s", src, out)
    return out
