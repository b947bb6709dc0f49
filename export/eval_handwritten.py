"""Cards written by hand after training: does a bundle stay fluent with them, and say their own facts?

The corpus's held-out personas come from the same generator as its training personas (their names, for one, are
whole tokens of the decoder's tokenizer), so the main evaluation cannot see how a model copes with the card a
studio writes on its first day. This probe asks each card in ``export/handwritten_cards/`` the same six questions
in one fixed scene, greedy, through the runtime's own scheduler, and reports per question kind the share of replies
that carry the card's facts, and for all replies the share that carry the card's own voice (its catchphrase or form
of address, as the corpus reads them from the speaking style), the share of words that are not words at all (in no
corpus reply, card or player line: "Tomomom"), repetition within a reply and clean endings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npc_runtime.personas import PersonaCard, PersonaPack
from npc_runtime.scheduler import GenOptions
from sample_game.scene import SceneFacts

from . import eval_metrics as m
from .eval_generate import Generation, Prompt, generate

__all__ = ["CARDS_DIR", "SCENE", "Question", "load_cards", "questions", "prompts", "known_words", "score",
           "run_probe"]  # fmt: skip

CARDS_DIR = Path(__file__).with_name("handwritten_cards")
#: The one scene every question is asked in (its weather is what the weather question must name).
SCENE = SceneFacts(location="market", time_of_day="evening", weather="fog")
_COMPASS = re.compile(r"\b(north|south|east|west|north-east|north-west|south-east|south-west)\b")
SAMPLES = 12


@dataclass(frozen=True)
class Question:
    """One question to one card and the facts its reply must carry (none: only fluency is scored)."""

    card: PersonaCard
    kind: str
    player: str
    required: tuple[str, ...]


def load_cards(folder: str | Path = CARDS_DIR) -> list[PersonaCard]:
    return sorted(PersonaPack.load(Path(folder)), key=lambda card: card.id)


def questions(card: PersonaCard) -> list[Question]:
    """Greeting, name, a price, directions, the quest and the weather, with the facts each reply must carry."""
    out = [Question(card, "greeting", "Good day to you!", ()), Question(card, "name", "Who are you?", (card.name,))]
    k = card.knowledge
    if k.wares:
        ware = k.wares[0]
        out.append(Question(card, "price", f"How much for the {ware.item}?", (ware.item, str(ware.price))))
    if k.places:
        place = k.places[0]
        compass = _COMPASS.search(place.directions.lower())
        out.append(Question(card, "directions", f"How do I get to {place.name}?",
                            (place.name, *([compass.group(1)] if compass else []))))  # fmt: skip
    if k.quest is not None:
        out.append(Question(card, "quest", "Any work for me?", (k.quest.reward,)))
    out.append(Question(card, "weather", "What's the weather like?", (SCENE.weather,)))
    return out


def prompts(asked: Sequence[Question], knowledge_of: Callable[[PersonaCard], str], tag: str) -> list[Prompt]:
    return [
        Prompt(key=f"{tag}:handwritten:{i}", fingerprint=q.card.fingerprint(), card_text=q.card.card_text(),
               knowledge=knowledge_of(q.card), player=q.player, context=SCENE.to_context())
        for i, q in enumerate(asked)
    ]  # fmt: skip


def known_words(texts: Iterable[str]) -> frozenset[str]:
    """Every word of ``texts``, normalised as the metrics normalise them."""
    return frozenset(w for text in texts for w in m.words(text))


def score(asked: Sequence[Question], gens: Sequence[Generation], vocabulary: frozenset[str]) -> dict[str, Any]:
    """Facts carried per question kind; voice, non-words, repetition and clean endings over all replies; samples."""
    if len(asked) != len(gens):
        raise ValueError(f"{len(asked)} questions but {len(gens)} replies")
    by_kind: dict[str, list[bool]] = {}
    voice: list[bool] = []
    voice_by_marker: dict[str, list[bool]] = {}
    unknown, total = 0, 0
    for q, g in zip(asked, gens):
        if q.required:
            by_kind.setdefault(q.kind, []).append(m.carries_facts(g.text, q.required))
        markers = m.voice_markers(q.card)
        if markers:
            found = {kind: m.contains_phrase(g.text, marker) for kind, marker in markers.items()}
            voice.append(any(found.values()))
            for kind, flag in found.items():
                voice_by_marker.setdefault(kind, []).append(flag)
        own = known_words([q.card.card_text(), q.card.knowledge_text(voice=True), q.player])
        tokens = m.words(g.text)
        total += len(tokens)
        unknown += sum(1 for w in tokens if w not in vocabulary and w not in own)
    facts = [flag for flags in by_kind.values() for flag in flags]
    return {
        "cards": sorted({q.card.id for q in asked}),
        "n": len(gens),
        "errors": sum(1 for g in gens if g.error),
        "facts": m.share(facts),
        "by_kind": {kind: {"share": m.share(flags), "n": len(flags)} for kind, flags in sorted(by_kind.items())},
        "voice": {"share": m.share(voice), "n": len(voice),
                  "by_marker": {k: {"share": m.share(f), "n": len(f)} for k, f in sorted(voice_by_marker.items())}},
        "non_words": unknown / total if total else None,
        "repetition": m.share(m.repeats_within(g.text) for g in gens),
        "clean_ending": m.share(m.ends_cleanly(g.text, g.truncated) for g in gens),
        "samples": [{"card": q.card.id, "player": q.player, "reply": g.text} for q, g in zip(asked, gens)][:SAMPLES],
    }


def run_probe(engine: Any, options: GenOptions, vocabulary: frozenset[str], max_in_flight: int = 32,
              cards: Sequence[PersonaCard] | None = None) -> dict[str, Any]:
    """Ask every hand-written card its questions through ``engine`` and score the replies."""
    asked = [q for card in (cards if cards is not None else load_cards()) for q in questions(card)]
    gens = generate(engine, prompts(asked, engine.knowledge_of, engine.bundle.name), options, max_in_flight)
    return score(asked, gens, vocabulary)
