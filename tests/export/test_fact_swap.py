"""Fact swap: another name, other numbers and another quest for one training turn, consistent across its texts."""

from __future__ import annotations

import random

import pytest

from export.corpus import build_corpus
from export.corpus_personas import FIRST_NAMES, PROCEDURAL_PREFIX, SURNAMES
from export.dataset import DataConfig, _swap_facts
from export.eval_metrics import carries_facts, contains_phrase
from export.fact_swap import card_numbers, swap_facts
from npc_runtime.personas import PersonaPack, Quest, default_pack_dir


def test_swap_facts_renames_and_renumbers_card_and_texts_consistently() -> None:
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    price = card.knowledge.wares[0].price
    item = card.knowledge.wares[0].item
    first, last = card.name.split()[-2:]
    texts = [f"I'm {card.name}. The {item} is {price} silver.", f"Ask for {first} at the forge; I'll give you 999.",
             f"{last}'s {item}? {price}, and {price}40 is no number of mine."]  # fmt: skip
    swapped, new, pairs = swap_facts(card, texts, random.Random(1), FIRST_NAMES, SURNAMES)

    assert swapped.id == card.id and swapped.traits == card.traits and swapped.role == card.role
    new_price = swapped.knowledge.wares[0].price
    assert new_price != price and str(new_price) == pairs[str(price)]
    assert first not in swapped.name and last not in swapped.name
    new_first, new_last = swapped.name.split()[-2:]
    assert new == [
        f"I'm {swapped.name}. The {item} is {new_price} silver.",
        f"Ask for {new_first} at the forge; I'll give you 999.",  # a number the card does not state stays
        f"{new_last}'s {item}? {new_price}, and {price}40 is no number of mine.",  # whole numbers only
    ]
    # Every number the card states changed, one to one, and none of the old ones is left on the card.
    old_numbers = card_numbers(card)
    assert len({pairs[str(n)] for n in old_numbers}) == len(old_numbers)
    assert not old_numbers & card_numbers(swapped)
    assert swapped.name not in card.knowledge_text() and swapped.name in swapped.knowledge_text()


def test_swap_facts_with_a_quest_moves_title_task_and_place_everywhere() -> None:
    card = PersonaPack.load(default_pack_dir()).get("guard")
    own = card.knowledge.quest
    assert own is not None
    other = Quest(title="The Lost Bell", task="find the bell I lost near the mill", reward="3 silver coins",
                  location="the mill")  # fmt: skip
    reply = f"{own.title}! {own.task[0].upper()}{own.task[1:]}. Go to {own.location}; {own.reward} is yours."
    swapped, (new_reply,), _ = swap_facts(card, [reply], random.Random(0), FIRST_NAMES, SURNAMES, other)
    quest = swapped.knowledge.quest
    assert (quest.title, quest.task, quest.location) == (other.title, other.task, other.location)
    assert quest.reward != own.reward  # the card's own reward, renumbered
    assert new_reply == f"The Lost Bell! Find the bell I lost near the mill. Go to the mill; {quest.reward} is yours."


def test_training_turns_of_generated_personas_get_swapped_facts_their_replies_still_carry() -> None:
    corpus = build_corpus()
    train = corpus.splits["train"][::10]  # bundled and generated personas
    out = _swap_facts(train, DataConfig(fact_swap=0.5), "train")
    assert out == _swap_facts(train, DataConfig(fact_swap=0.5), "train")  # fixed by the seed
    changed = [(a, b) for a, b in zip(train, out) if a is not b]
    assert all(a.persona_id.startswith(PROCEDURAL_PREFIX) for a, _ in changed)
    procedural = sum(a.persona_id.startswith(PROCEDURAL_PREFIX) for a in train)
    assert 0.4 < len(changed) / procedural < 0.6
    assert any(a.card.knowledge.quest and a.card.knowledge.quest.title != b.card.knowledge.quest.title
               for a, b in changed)  # fmt: skip
    for a, b in changed:
        assert b.card.name != a.card.name and not contains_phrase(b.reply, a.card.name)
        # A reply that carried its card's facts carries the new card's: the turn stays true to its card.
        assert carries_facts(a.reply, a.required_facts) and carries_facts(b.reply, b.required_facts)
        old_quest, new_quest = a.card.knowledge.quest, b.card.knowledge.quest
        if new_quest and new_quest.location != old_quest.location:  # never a quest place the turn's scene shows
            place = new_quest.location.removeprefix("the ")
            assert place not in " ".join(map(str, b.scene.to_context().values()))
        assert b.emotion == a.emotion and b.scene == a.scene


def test_fact_swap_share_is_validated() -> None:
    with pytest.raises(ValueError, match="fact_swap"):
        DataConfig(fact_swap=1.0)
