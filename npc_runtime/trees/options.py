"""Which player options a dialogue-tree node offers: corpus intents that fit the conversation so far.

A small conversation flow: each intent lists the follow-ups that fit after it (asking prices after a trade
question, accepting or declining after a quest offer), a general pool fills the rest, and a farewell option ends
a branch. What a persona can talk about comes from its card (wares, places, quest) and the scene facts (what the
player holds, what is nearby). Options at a node are distinct, and a path never asks the same thing twice.
Choices depend only on the path and a seeded RNG, so a tree's shape is known before any reply is generated.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..personas import PersonaCard

__all__ = ["Step", "Topics", "FOLLOW_UPS", "GENERAL_POOL", "topics_for", "opening_step", "choose_options"]

#: Intents that fit right after another one, best first. "opening" is a line the user wrote.
FOLLOW_UPS: Mapping[str, tuple[str, ...]] = {
    "greeting": ("ask_name", "small_talk", "ask_trade", "quest_ask", "rumours", "ask_health"),
    "opening": ("ask_name", "small_talk", "ask_trade", "quest_ask", "rumours", "ask_health"),
    "ask_name": ("small_talk", "ask_trade", "quest_ask", "compliment"),
    "ask_trade": ("buy", "buy", "sell"),
    "buy": ("buy", "complaint", "rumours"),
    "sell": ("ask_trade", "small_talk"),
    "complaint": ("buy", "insult", "threat"),
    "ask_health": ("ask_trade", "small_talk", "compliment"),
    "directions": ("directions", "rumours", "ask_place"),
    "rumours": ("quest_ask", "directions", "small_talk"),
    "quest_ask": ("quest_accept", "quest_decline"),
    "quest_accept": ("directions", "rumours"),
    "quest_decline": ("small_talk", "rumours", "ask_trade"),
    "small_talk": ("compliment", "rumours", "ask_name", "insult"),
    "compliment": ("small_talk", "ask_trade", "quest_ask"),
    "insult": ("threat", "compliment"),
    "threat": ("insult",),
    "ask_weather": ("ask_time", "ask_place", "small_talk"),
    "ask_time": ("ask_weather", "ask_place"),
    "ask_creatures": ("ask_place", "ask_weather"),
    "ask_item": ("sell", "ask_trade"),
    "ask_place": ("directions", "ask_creatures", "ask_weather"),
}

#: Intents that may open a new topic anywhere in the conversation.
GENERAL_POOL: tuple[str, ...] = (
    "ask_name", "small_talk", "ask_trade", "ask_health", "directions", "rumours", "quest_ask", "compliment",
    "insult", "ask_weather", "ask_time", "ask_creatures", "ask_item", "ask_place", "sell",
)  # fmt: skip

#: Intents asked more than once on a path, each time about a different thing (another ware, another place).
_REPEATABLE = frozenset({"buy", "directions"})
_SLOT_OF = {"buy": "item", "complaint": "item", "directions": "place", "sell": "held"}


@dataclass(frozen=True)
class Step:
    """One player line: its intent, the slot value it names (a ware, a place) and the text."""

    intent: str
    text: str
    slot: str | None = None


@dataclass(frozen=True)
class Topics:
    """What this persona in this scene can sensibly be asked about."""

    items: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    quest_place: str | None = None
    held: str | None = None
    nearby: bool = False
    healer: bool = False


def topics_for(card: PersonaCard, context: Mapping[str, str]) -> Topics:
    knowledge = card.knowledge
    held = context.get("player_item", "").strip()
    for article in ("a ", "an ", "the "):
        if held.lower().startswith(article):
            held = held[len(article) :].strip()
    return Topics(
        items=tuple(w.item for w in knowledge.wares),
        places=tuple(p.name for p in knowledge.places),
        quest_place=knowledge.quest.location if knowledge.quest is not None else None,
        held=held or None,
        nearby=bool(context.get("nearby", "").strip()),
        healer=card.role.strip().lower() == "healer",
    )


def opening_step(text: str | None, lines: Mapping[str, Sequence[str]], rng: random.Random) -> Step:
    """The player's first line: the user's own, or a greeting from the corpus."""
    if text is not None and text.strip():
        return Step("opening", text.strip())
    return Step("greeting", rng.choice(list(lines["greeting"])))


def _available(intent: str, topics: Topics, path: Sequence[Step]) -> bool:
    if intent in ("ask_trade", "buy"):
        return bool(topics.items)
    if intent == "complaint":  # about something bought earlier in this conversation
        return any(s.intent == "buy" for s in path)
    if intent in ("sell", "ask_item"):
        return topics.held is not None
    if intent == "directions":
        return bool(topics.places)
    if intent == "quest_ask":
        return topics.quest_place is not None
    if intent in ("quest_accept", "quest_decline"):
        return bool(path) and path[-1].intent == "quest_ask"
    if intent == "ask_health":
        return topics.healer
    if intent == "ask_creatures":
        return topics.nearby
    return intent != "greeting"


def _slot_choices(intent: str, topics: Topics, path: Sequence[Step], taken: set[tuple[str, str]]) -> list[str]:
    kind = _SLOT_OF.get(intent)
    if kind is None:
        return [""]
    if kind == "held":
        return [topics.held] if topics.held else []
    if kind == "place":
        asked = {s.slot for s in path if s.intent == "directions"}
        places = [p for p in topics.places if p not in asked and ("directions", p) not in taken]
        if path and path[-1].intent == "quest_accept" and topics.quest_place in places:
            places.remove(topics.quest_place)
            places.insert(0, topics.quest_place)  # where the quest is: the natural next question
        return places
    # items: buy something not bought yet; complain about what was bought, if anything
    bought = [s.slot for s in path if s.intent == "buy" and s.slot]
    if intent == "complaint":
        return bought[-1:]
    return [i for i in topics.items if i not in bought and ("buy", i) not in taken]


def _make_step(
    intent: str,
    topics: Topics,
    path: Sequence[Step],
    taken: set[tuple[str, str]],
    used_texts: set[str],
    lines: Mapping[str, Sequence[str]],
    rng: random.Random,
) -> Step | None:
    slots = _slot_choices(intent, topics, path, taken)
    if not slots:
        return None
    slot = slots[0] if intent == "directions" and path and path[-1].intent == "quest_accept" else rng.choice(slots)
    values = {"item": slot, "place": slot, "held": slot}
    texts = [t.format_map(values) for t in lines[intent]]
    fresh = [t for t in texts if t.lower() not in used_texts]
    if not fresh:
        return None
    return Step(intent, rng.choice(fresh), slot or None)


def choose_options(
    path: Sequence[Step],
    topics: Topics,
    lines: Mapping[str, Sequence[str]],
    branches: int,
    rng: random.Random,
    with_farewell: bool,
) -> list[Step]:
    """Up to ``branches`` distinct player options after ``path`` (the player's lines so far, oldest first).

    With ``with_farewell`` one option is a farewell (it ends its branch); a farewell is also offered when
    nothing else fits, so a conversation can always end.
    """
    last = path[-1].intent if path else "greeting"
    said = {s.intent for s in path}

    def fits(intent: str) -> bool:
        if not _available(intent, topics, path):
            return False
        return intent in _REPEATABLE or intent not in said

    preferred = [i for i in FOLLOW_UPS.get(last, ()) if fits(i)]
    rng.shuffle(preferred)
    pool = [i for i in GENERAL_POOL if fits(i) and i not in preferred]
    rng.shuffle(pool)
    room = branches - 1 if with_farewell and branches > 1 else branches
    chosen: list[Step] = []
    taken: set[tuple[str, str]] = set()
    used_texts = {s.text.lower() for s in path}
    for intent in preferred + pool:
        if len(chosen) >= room:
            break
        if intent not in _REPEATABLE and any(s.intent == intent for s in chosen):
            continue
        step = _make_step(intent, topics, path, taken, used_texts, lines, rng)
        if step is None:
            continue
        chosen.append(step)
        used_texts.add(step.text.lower())
        if step.slot:
            taken.add((intent, step.slot))
    if (with_farewell or not chosen) and len(chosen) < branches:
        farewell = _make_step("farewell", topics, path, taken, used_texts, lines, rng)
        if farewell is not None:
            chosen.append(farewell)
    return chosen
