"""The hand-written-card probe: its questions come from the cards, and its scores tell a fluent reply that carries
the card's facts from a broken one."""

from __future__ import annotations

import pytest

from export.eval_generate import Generation
from export.eval_handwritten import SCENE, known_words, load_cards, prompts, questions, score


def _gen(text: str) -> Generation:
    return Generation(text=text, emotion="neutral", intensity=0.3, completion_tokens=len(text.split()),
                      truncated=False, total_ms=1.0)  # fmt: skip


def test_every_card_is_asked_for_its_own_facts() -> None:
    cards = load_cards()
    assert len(cards) >= 3 and len({c.id for c in cards}) == len(cards)
    ferryman = next(c for c in cards if c.id == "ferryman")
    asked = {q.kind: q for q in questions(ferryman)}
    assert asked["name"].required == ("Oswin Marrowby",)
    assert asked["price"].required == ("eel pie", "6") and "eel pie" in asked["price"].player
    assert asked["directions"].required == ("the landing", "north")
    assert asked["quest"].required == ("33 silver coins",)
    assert asked["weather"].required == (SCENE.weather,) and not asked["greeting"].required
    built = prompts(list(asked.values()), lambda card: card.knowledge_text(voice=True), "b")
    assert len({p.key for p in built}) == len(built) and built[0].context == SCENE.to_context()
    assert "Oswin Marrowby" in built[0].knowledge


def test_score_passes_a_fluent_reply_with_the_facts_and_fails_a_broken_one() -> None:
    ferryman = next(c for c in load_cards() if c.id == "ferryman")
    asked = questions(ferryman)
    good = {
        "greeting": "Good day to you too, traveller.",
        "name": "I'm Oswin Marrowby, the ferryman.",
        "price": "The eel pie is yours for 6 silver.",
        "directions": "The landing? Head north of the mill, past the reeds.",
        "quest": "Find the drowned bell and 33 silver coins are yours.",
        "weather": "Fog, thick as soup.",
    }
    bad = {
        "greeting": "I'm Tomomom, but thing?",
        "name": "I'm Oswin M M M M, and bone today.",
        "price": "The eel is yours for 40 silver.",
        "directions": "Head along the road.",
        "quest": "Find my hammer and 15 silver coins are yours.",
        "weather": "Rain today.",
    }
    vocabulary = known_words([*good.values(), "Head along the road."]) - {"marrowby", "oswin"}  # the card has these
    fine = score(asked, [_gen(good[q.kind]) for q in asked], vocabulary)
    broken = score(asked, [_gen(bad[q.kind]) for q in asked], vocabulary)
    assert fine["facts"] == 1.0 and fine["non_words"] == 0.0 and fine["repetition"] == 0.0
    assert fine["clean_ending"] == 1.0 and fine["by_kind"]["price"] == {"share": 1.0, "n": 1}
    assert broken["facts"] == 0.0 and broken["non_words"] > 0.0 and broken["repetition"] > 0.0
    # voice: the good greeting calls the player 'traveller' (the card's address); no reply says "Salt and oars!"
    assert fine["voice"]["n"] == len(asked) and fine["voice"]["share"] == pytest.approx(1 / len(asked))
    assert fine["voice"]["by_marker"] == {"address": {"share": pytest.approx(1 / len(asked)), "n": len(asked)},
                                          "catchphrase": {"share": 0.0, "n": len(asked)}}
    assert broken["voice"]["share"] == 0.0
    assert "tomomom" not in vocabulary
    with pytest.raises(ValueError):
        score(asked, [], vocabulary)


def test_voice_counts_the_cards_own_catchphrase_and_address_only() -> None:
    cards = {c.id: c for c in load_cards()}
    ferryman = questions(cards["ferryman"])
    vocabulary = known_words(["salt and oars", "traveller", "honeybun", "sweet as clover"])
    own = score(ferryman, [_gen("Salt and oars! Fog today, traveller.")] * len(ferryman), vocabulary)
    other = score(ferryman, [_gen("Sweet as clover! Fog today, honeybun.")] * len(ferryman), vocabulary)
    assert own["voice"]["share"] == 1.0 and own["voice"]["by_marker"]["catchphrase"]["share"] == 1.0
    assert other["voice"]["share"] == 0.0  # the beekeeper's voice in the ferryman's mouth is not his
