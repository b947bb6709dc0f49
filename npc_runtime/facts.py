"""Fact steering: where a reply is about to say a price or a compass direction, say the card's.

The small role model copies a ware's name from the card reliably but often not the price beside it, or the
direction of the place it names ("that's 1 silver for the ballad in your honour" where the card says 5; "the inn:
south of the square, the green door" where it says east): at that point the card holds several numbers and
several directions, all of them likely, and the model's choice among them is a coin toss (docs/eval.md, "Task
completion"). The card itself says which is right, so the runtime settles it:

- The card's knowledge line gives each ware's price (``wares: dagger 12, iron helm 25``) and each place's leading
  compass direction (``places: the inn (east of the square, …)``: "east"; "south-west"; a place without one has
  none).
- The reply's **topic** is the ware or place it named last, or, before it names one, the one the player's line
  named last (compared as lower-case words, leading articles dropped: "the ballad in your honour" names "a ballad
  in your honour"; of names ending at the same word, the longest: "the iron helm" names the iron helm, not a helm;
  :func:`last_named`, which the looked-up hints read the player's line with too).
- Where the row's likeliest next token **begins a number** and the topic is a ware, the price's first token gets
  ``bias``; where it **begins a compass direction** and the topic is a place with one, the direction's first token
  gets it. A taken nudge is finished with ``FINISH_BIAS`` ("south" of "south-west" goes on to "-west"). The
  fact is spelt as that token is (leading space, capital), but after a word a number glued to it is offered as
  a word of its own ("for 87", never "for87"); after a digit, a number going on is the model's.

- Where the reply is **listing wares** (its text so far ends with a comma or "and", and perhaps an article) and
  the likeliest next token begins a ware the reply has already named, the first of the card's wares it has not
  named gets ``bias`` instead ("a chain shirt for 84 silver and a chain shirt" becomes "… and a shield"). A token
  that also begins an unnamed ware ("leather" of "leather boots" after "leather gloves") is left alone.

- **Whole names.** Where the reply's subject is a name of the card of two words or more, it is said whole. The
  subjects, by the intent reader's hint and the player's line: the ware or place the line names; every ware in a
  reply to "what do you sell?" and every remedy in one to "I feel ill"; the quest's title and reward in a reply to
  "got any work?" (``quest ask``), its reward and place in one to "I'll do it" (``quest accept``); the persona's
  name in one to "who are you?" (``ask name``). Where the reply has said the first words of a subject and the
  likeliest next token would end it there ("There's a job I call A Flute." for "A Flute for Quinn", "I'm Wynn!"
  for Wynn Barrow, "Return the apple" for the apple pie), the rest of the name gets ``bias``; where it has said a
  determiner ("the", "a", "your") and the likeliest next token begins a later word of a subject ware or place but
  not its first ("a pot" for the iron pot, "the valley" for the map of the valley), the whole name gets it. Only
  where the words said are not themselves a name of the card ("apple" of "apple pie" where the card also sells
  apples), and never where the model is already going on with the name or with the word it is in.

The model still decides whether to give a number or a direction at all, and where; the steering only picks which
one. Numbers that are not prices (an offer for the player's own goods, a reward) are left alone unless the topic
is a ware. It is a server setting like the voice steering (``npc-runtime serve --fact-bias``); 0 turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from .voice import Nudge, plain_words

__all__ = ["DEFAULT_FACT_BIAS", "LIST_HINT", "LISTED_WARES", "REMEDY_WORDS", "card_facts", "card_name",
           "card_places", "card_quest", "card_quest_parts", "card_remedies", "card_wares", "combine", "is_remedy",
           "last_named", "card_names", "subject_names", "FactSteering", "Steerings", "RowFacts", "WordNudge",
           "spell_like"]

#: The default bias in nats (``GenOptions.fact_bias``); docs/eval.md, "Fact steering", gives the measured choice.
DEFAULT_FACT_BIAS = 8.0

_SECTION = re.compile(r"(?:^|\|)\s*(wares|places):\s*([^|]*)")
_QUEST = re.compile(r"(?:^|\|)\s*quest:\s*([^|:]*[^|:\s])\s*:")
_NAME = re.compile(r"(?:^|\|)\s*name:\s*([^|]*[^|\s])")
#: The whole quest section as ``PersonaCard.knowledge_text`` writes it: ``quest: Title: task; reward R; at L``.
_QUEST_PARTS = re.compile(
    r"(?:^|\|)\s*quest:\s*([^|:]*[^|:\s])\s*:\s*([^|]*?);\s*reward\s+([^|;]*?);\s*at\s+([^|;]*[^|;\s])")
_WARE = re.compile(r"^(.*\S)\s+(\d+)$")
_PLACE = re.compile(r"^(.*?)\s*\((.*)\)$")
_COMPASS = re.compile(r"^((?:north|south|east|west)(?:-(?:north|south|east|west))?)\b", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|some) ")
_COMPASS_WORDS = ("north", "south", "east", "west")
#: The end of a reply's text where a list goes on: "…, a", "… and", "…, some".
_LIST_GOES_ON = re.compile(r"(?:,|\band)(?:\s+(?:a|an|some|the))?$", re.IGNORECASE)
#: How many of the card's wares a reply to "what do you sell?" lists (the corpus's rule; the looked-up hint of
#: ``ask trade`` carries as many).
LISTED_WARES = 3
#: The intent reader's hint of that question: where a request's hint is this, its reply is a list of wares.
LIST_HINT = "ask trade"
#: The end of a listed ware's price: a number, perhaps with its coin ("... for 4 silver", "... for 4").
_PRICE_END = re.compile(r"\b\d+(?:\s+[a-z]+)?$", re.IGNORECASE)
#: Words that never start a name on their own: "a" of "A Flute for Quinn" is no beginning of the title.
_ARTICLES = frozenset({"a", "an", "the", "some"})
#: Words of a name that are not its own ("of", "the" of "map of the valley"): never read as the name begun late.
_LINKS = frozenset({*_ARTICLES, "of", "for", "in", "on", "and", "to", "with", "from", "at", "by", "your", "my"})
#: The end of a reply's text where a ware or place is about to be named: a determiner.
_DETERMINER_END = re.compile(r"\b(?:a|an|the|some|your|my|this|that|our)$", re.IGNORECASE)
#: The reply's last word, where its text ends in one (as :func:`plain_words` would read it).
_LAST_WORD = re.compile(r"[A-Za-z0-9']+$")


def _name_key(name: str) -> str:
    return _ARTICLE.sub("", plain_words(name))


def card_facts(knowledge: str) -> dict[str, str]:
    """``{name: fact}`` from a card's knowledge line: each ware's price and each place's leading compass
    direction, names as :func:`plain_words` without a leading article."""
    out = card_wares(knowledge)
    for name, (_, directions) in card_places(knowledge).items():
        direction = _COMPASS.match(directions)
        if direction:
            out[name] = direction.group(1).lower()
    return out


def _section_items(knowledge: str, section: str) -> list[str]:
    """The comma-separated items of one section of a knowledge line (commas inside brackets kept)."""
    return [part.strip() for name, body in _SECTION.findall(knowledge) if name == section
            for part in re.split(r",\s*(?![^()]*\))", body)]  # fmt: skip


def card_places(knowledge: str) -> dict[str, tuple[str, str]]:
    """``{name: (name as written, directions)}`` of the places on a card's knowledge line (``places: the inn (east
    of the square, the green door)``), keys as in :func:`card_facts`."""
    out: dict[str, tuple[str, str]] = {}
    for item in _section_items(knowledge, "places"):
        found = _PLACE.match(item)
        if found and _name_key(found.group(1)):
            out[_name_key(found.group(1))] = (found.group(1).strip(), " ".join(found.group(2).split()))
    return out


def card_wares(knowledge: str) -> dict[str, str]:
    """``{name: price}`` of the wares on a card's knowledge line (names as in :func:`card_facts`)."""
    out: dict[str, str] = {}
    for item in _section_items(knowledge, "wares"):
        found = _WARE.match(item)
        if found and _name_key(found.group(1)):
            out[_name_key(found.group(1))] = found.group(2)
    return out


#: A ware whose name contains one of these (lower case) is a remedy: what a healer offers for an ailment. The
#: corpus (``export.corpus_replies``) recommends such wares, and the looked-up hint of "ask health" names them.
REMEDY_WORDS = ("salve", "tea", "bandage", "draught", "herb", "tonic", "chamomile", "willow", "mint", "remedy",
                "potion")  # fmt: skip


def is_remedy(item: str) -> bool:
    """Whether a ware is a remedy: its name holds one of :data:`REMEDY_WORDS` (the corpus's rule)."""
    item = item.lower()
    return any(word in item for word in REMEDY_WORDS)


def card_remedies(knowledge: str) -> dict[str, str]:
    """The wares of :func:`card_wares` that are remedies (:func:`is_remedy`), in card order."""
    return {name: price for name, price in card_wares(knowledge).items() if is_remedy(name)}


def card_quest(knowledge: str) -> str | None:
    """The title of the quest on a card's knowledge line (``quest: Title: what to do; reward ...``), or None. It
    asks for the title alone (no reward or place needed), as version 1 of the looked-up hints was trained on; see
    :func:`card_quest_parts` for the whole section."""
    found = _QUEST.search(knowledge)
    return " ".join(found.group(1).split()) if found else None


def card_name(knowledge: str) -> str | None:
    """The persona's name on a card's knowledge line (``name: Tobias Quill``), or None."""
    found = _NAME.search(knowledge)
    return " ".join(found.group(1).split()) if found else None


def card_quest_parts(knowledge: str) -> tuple[str, str, str, str] | None:
    """``(title, task, reward, location)`` of the quest on a card's knowledge line, or None."""
    found = _QUEST_PARTS.search(knowledge)
    return tuple(" ".join(part.split()) for part in found.groups()) if found else None  # type: ignore[return-value]


def last_named(names: Sequence[str], text: str) -> str | None:
    """The one of ``names`` (plain words, as the ``card_*`` keys; longest first) that ``text`` names last, as whole
    words; of names ending at the same word ("helm" in "the iron helm"), the longest. None if it names none."""
    words = f" {plain_words(text)} "
    best, end = None, -1
    for name in names:
        where = words.rfind(f" {name} ")
        if where >= 0 and where + len(name) > end:
            best, end = name, where + len(name)
    return best


def spell_like(encode: Callable[[str], Sequence[int]], pieces: Sequence[str], text: str, like: int) -> list[int]:
    """``text``'s token ids spelt in place of token ``like``: with its leading space, capitalised if it is (``like``
    out of range: after a space, lower case)."""
    piece = pieces[like] if 0 <= like < len(pieces) else " "
    spelt = text.capitalize() if piece.strip()[:1].isupper() else text
    return list(encode((" " if piece.startswith(" ") else "") + spelt))


class FactSteering:
    """Per engine: which tokens begin a number or a compass direction, and how a fact is spelled in tokens."""

    def __init__(self, encode: Callable[[str], Sequence[int]], pieces: Sequence[str]) -> None:
        self._encode = encode
        self.pieces = list(pieces)
        stripped = [piece.strip() for piece in pieces]
        self.number_start = np.array([bool(p) and p[0].isdigit() for p in stripped], dtype=bool)
        self.compass_start = np.array([p.isalpha() and p.lower().startswith(_COMPASS_WORDS) for p in stripped],
                                      dtype=bool)
        #: The tokens that say " and" (which ends a list) or end a sentence, and the comma and " and" that let a
        #: list go on.
        self.and_start = np.array([p.lower() == "and" for p in stripped], dtype=bool)
        self.stop = np.array([bool(p) and p[0] in ".!?;" for p in stripped], dtype=bool)
        self.comma = list(encode(","))
        self.and_ = list(encode(" and"))

    def row(self, knowledge: str, player: str, bias: float, hint: str = "") -> RowFacts | None:
        """The steering of one reply (None where the card has no prices, directions or subject names of two words
        or more, or ``bias`` is 0); ``hint`` is the intent reader's label of the player's line ("ask trade";
        empty: none)."""
        if bias <= 0.0:
            return None
        facts = card_facts(knowledge)
        subjects = [name for name in subject_names(knowledge, player, hint) if len(name.split()) > 1]
        if not (facts or subjects):
            return None
        return RowFacts(self, facts, player, bias, hint, subjects, card_names(knowledge) if subjects else set())

    def spell(self, fact: str, like: int) -> list[int]:
        """``fact``'s token ids as it would follow token ``like``: its leading space and capital."""
        return spell_like(self._encode, self.pieces, fact, like)


def card_names(knowledge: str) -> set[str]:
    """Every name on a card's knowledge line, as :func:`plain_words` without a leading article: wares, places, the
    quest's title, reward and place, the persona's name."""
    names = {*card_wares(knowledge), *card_places(knowledge)}
    quest = card_quest_parts(knowledge)
    extra = [card_name(knowledge) or "", *((quest[0], quest[2], quest[3]) if quest else ())]
    return names | {_name_key(name) for name in extra if _name_key(name)}


def subject_names(knowledge: str, player: str, hint: str) -> list[str]:
    """The names of the card a reply to ``player`` is about, as the card writes them (module docstring, "Whole
    names"): by the intent reader's ``hint``, and the ware or place the player's line names."""
    wares = card_wares(knowledge)
    places = {name: written for name, (written, _) in card_places(knowledge).items()}
    out: list[str] = []
    named = last_named(sorted({*wares, *places}, key=len, reverse=True), player)
    if named:
        out.append(places.get(named, named))
    if hint == LIST_HINT:
        out += list(wares)
    elif hint == "ask health":
        out += list(card_remedies(knowledge))
    elif hint in ("quest ask", "quest accept"):
        quest = card_quest_parts(knowledge)
        if quest:
            title, _, reward, place = quest
            out += [title, reward] if hint == "quest ask" else [reward, place]
    elif hint == "ask name":
        out.append(card_name(knowledge) or "")
    return list(dict.fromkeys(name for name in out if name))


class WordNudge(Nudge):
    """A word-level steering of one reply (facts, scene): a :class:`~npc_runtime.voice.Nudge` that also keeps the
    reply's text so far and offers a whole word only where it fits."""

    def __init__(self, pieces: Sequence[str]) -> None:
        super().__init__()
        self._pieces = pieces
        self.text = ""

    def offer(self, ids: Sequence[int], bias: float, room: int | None) -> tuple[list[int], list[float]]:
        """Raise ``ids``' first token by ``bias``, unless the word would not fit in ``room`` tokens."""
        if not ids or (room is not None and len(ids) + 1 > room):
            return [], []
        return self.propose(ids[0], ids[1:], bias)

    def advance(self, token: int) -> None:
        """Take the token the reply just said."""
        super().advance(token)
        if 0 <= token < len(self._pieces):
            self.text += self._pieces[token]


class RowFacts(WordNudge):
    """The fact steering of one reply: its topic, and what a taken nudge still has to say."""

    def __init__(self, steering: FactSteering, facts: dict[str, str], player: str, bias: float,
                 hint: str = "", subjects: Sequence[str] = (), names: set[str] | None = None) -> None:
        super().__init__(steering.pieces)
        self._steering = steering
        self.facts = facts
        self.bias = bias
        self._listing = hint == LIST_HINT
        self._names = sorted(facts, key=len, reverse=True)  # "iron helm" before "helm"
        self._player_topic = last_named(self._names, player)
        #: Each ware's first token as a list says it (after a space, lower case), in the card's order.
        self._ware_first = {name: ids[0] for name, fact in facts.items() if fact.isdigit()
                            for ids in [steering.spell(name, -1)] if ids}  # fmt: skip
        self._whole = _WholeNames(steering, subjects, set(facts) if names is None else names)

    @property
    def topic(self) -> str | None:
        """The ware or place the reply named last, else the player's line."""
        return last_named(self._names, self.text) or self._player_topic

    def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
        """The token ids to raise at this step and by how much, given the row's likeliest next token ``best``
        and the tokens the reply may still say (``room``; None: no limit)."""
        if self.finishing():
            return self.finish_step()
        steering = self._steering
        if best in self._ware_first.values() and len(self._ware_first) > 1:
            nudge = self._next_ware(best, room)
            if nudge[0]:
                return nudge
        if self._listing and 0 <= best < len(steering.pieces) and (steering.and_start[best] or steering.stop[best]):
            nudge = self._list_goes_on(best, room)
            if nudge[0]:
                return nudge
        ids = self._whole.rest(self.text, best)
        if ids:
            return self.offer(ids, self.bias, room)
        if not 0 <= best < len(steering.pieces) or not (steering.number_start[best] or steering.compass_start[best]):
            return [], []  # most steps: nothing to settle, and the topic is not even looked up
        topic = self.topic
        if topic is None:
            return [], []
        fact = self.facts[topic]
        if not (steering.number_start[best] if fact.isdigit() else steering.compass_start[best]):
            return [], []
        glued = not steering.pieces[best][:1].isspace()
        if glued and self.text[-1:].isdigit():
            return [], []  # a number going on: the model's
        # After a word, a fact is a word of its own, whatever the likeliest token's spacing ("for7" is no price).
        return self.offer(steering.spell(fact, -1 if glued and self.text[-1:].isalpha() else best), self.bias, room)

    def _unsaid(self) -> list[str]:
        """The wares the reply has not named yet, in the card's order."""
        said = f" {plain_words(self.text)} "
        return [name for name in self._ware_first if f" {name} " not in said]

    def _next_ware(self, best: int, room: int | None) -> tuple[list[int], list[float]]:
        """In a list of wares, where ``best`` begins a ware the reply has named already: the first ware not named
        yet. In a reply to "what do you sell?" (the hint), where ``best`` begins any ware: the first not named yet
        in the card's order, whole (such a list says them in that order; unsteered, the model skipped the second
        of three, "oats for 4 silver and a bridle", or said half a name, "a apple for 6 silver" for the apple
        pie). Elsewhere a ware not named yet is the model's choice ("the dagger, and the helm you asked about")."""
        if not _LIST_GOES_ON.search(self.text.rstrip()):
            return [], []
        unsaid = self._unsaid()
        if not unsaid or len(unsaid) == len(self._ware_first):
            return [], []  # all named, or none yet: not a list of wares (", the iron gate")
        if not self._listing and any(self._ware_first[name] == best for name in unsaid):
            return [], []
        # Offered even where ``best`` begins it already: a taken nudge finishes the name ("apple" -> "apple pie").
        return self.offer(self._steering.spell(unsaid[0], best), self.bias, room)

    def _list_goes_on(self, best: int, room: int | None) -> tuple[list[int], list[float]]:
        """In a reply listing the card's first :data:`LISTED_WARES` wares in order (the hint said the player asked
        what is for sale), just after a price, where ``best`` would end the list or the sentence with wares still
        to say: a comma while two or more are left, " and" before the last (unsteered, the model closed the list
        after the first ware, or said " and" and then the third)."""
        if not _PRICE_END.search(self.text.rstrip()):
            return [], []
        listed = list(self._ware_first)[:LISTED_WARES]
        unsaid = [name for name in self._unsaid() if name in listed]
        if not unsaid or len(unsaid) == len(listed) or unsaid != listed[len(listed) - len(unsaid) :]:
            return [], []  # all said, none yet, or not the card's order: not this list
        if len(unsaid) >= 2:
            return self.offer(self._steering.comma, self.bias, room)
        if self._steering.stop[best]:
            return self.offer(self._steering.and_, self.bias, room)
        return [], []


class _WholeNames:
    """The whole-name rule of one reply (module docstring, "Whole names"): its subject names of two words or more,
    indexed so that most steps cost a string test."""

    def __init__(self, steering: FactSteering, subjects: Sequence[str], names: set[str]) -> None:
        self._steering = steering
        self._names = names  # every name of the card (plain words, no article): words that are one are left alone
        #: (plain words, words as written) of each subject; names whose plain and written words differ in number
        #: ("south-west") are left out, since their rest could not be cut from the written form.
        self._subjects: list[tuple[list[str], list[str]]] = []
        #: The last word of each proper beginning of a subject that holds a word other than an article.
        self._begun_ends: set[str] = set()
        #: For ware and place subjects (lower case): the first token of a later word of their own -> the name
        #: without its article, as a reply would say it after a determiner.
        self._late: dict[int, str] = {}
        if not subjects:
            return  # most replies: nothing to say whole, and no card name is spelt
        firsts = {ids[0] for name in names for ids in [steering.spell(name, -1)] if ids}
        for subject in subjects:
            words, written = plain_words(subject).split(), subject.split()
            if len(words) != len(written) or len(words) < 2:
                continue
            self._subjects.append((words, written))
            self._begun_ends |= {words[k - 1] for k in range(1, len(words))
                                 if any(w not in _ARTICLES for w in words[:k])}  # fmt: skip
            if subject != subject.lower():
                continue  # a title or a person: "the Broken Key" said as "the key" is the model's choice
            whole = " ".join(written[1:] if words[0] in _ARTICLES else written)
            for word in words[1:]:
                if word in _LINKS or word in names or word == words[0]:
                    continue
                for spelt in (word, word.capitalize()):
                    ids = steering.spell(spelt, -1)
                    if ids and ids[0] not in firsts:
                        self._late.setdefault(ids[0], whole)

    def rest(self, text: str, best: int) -> list[int]:
        """The token ids of what should be said at this step (the rest of a begun subject, or a whole subject
        begun late) as the reply's text so far is ``text`` and its likeliest next token ``best``; [] where
        neither."""
        if not self._subjects:
            return []
        pieces = self._steering.pieces
        piece = pieces[best] if 0 <= best < len(pieces) else ""
        if piece[:1].isalnum() or piece[:1] == "'":
            return []  # the model goes on with the word it is in
        last = _LAST_WORD.search(text[-40:])
        if last is None:
            return []
        if last.group(0).casefold() in self._begun_ends:  # perhaps the first words of a subject
            said = plain_words(text[-120:]).split()
            for words, written in self._subjects:
                for k in range(len(words) - 1, 0, -1):
                    if said[-k:] != words[:k] or " ".join(said[-k:]) in self._names:
                        continue
                    if all(w in _ARTICLES for w in words[:k]):
                        break
                    ids = self._steering.spell(" ".join(written[k:]), -1)  # after a space, as written
                    return [] if not ids or ids[0] == best else ids
        # Not begun (so "the tour of the" going on with "village" is left alone): a subject begun at a later word.
        if best in self._late and _DETERMINER_END.search(text):
            return self._steering.spell(self._late[best], best)
        return []


class Steerings:
    """Several steerings of one reply, in order of precedence (facts, scene, voice): one still finishing a taken
    offer has the step to itself, else the first one with a nudge, so a price being finished is never interrupted
    by a form of address, nor a catchphrase by a price or the scene's weather ("Rules are fog.")."""

    def __init__(self, rows: Sequence[object]) -> None:
        self.rows = list(rows)

    def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
        busy = next((row for row in self.rows if row.busy()), None)  # type: ignore[attr-defined]
        if busy is not None:
            return busy.boost(best, room)  # type: ignore[attr-defined]
        for row in self.rows:
            ids, by = row.boost(best, room)  # type: ignore[attr-defined]
            if ids:
                return ids, by
        return [], []

    def advance(self, token: int) -> None:
        for row in self.rows:
            row.advance(token)  # type: ignore[attr-defined]


def combine(*rows: object | None) -> object | None:
    """One steering object for a reply from its steerings in order of precedence (None where it has none)."""
    present = [row for row in rows if row is not None]
    if len(present) < 2:
        return present[0] if present else None
    return Steerings(present)
