"""Fact swap: another name, other numbers and another quest for one training turn, consistent across its texts."""

from __future__ import annotations

import dataclasses
import random

import pytest

from export.corpus import build_corpus
from export.corpus_personas import FIRST_NAMES, PROCEDURAL_PREFIX, SURNAMES
from export.dataset import DataConfig, _swap_facts
from export.eval_metrics import carries_facts, contains_phrase
from export.fact_swap import Inventor, card_numbers, replace_all, swap_facts
from npc_runtime.facts import is_remedy
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


def test_swap_facts_moves_a_quest_whose_title_holds_the_persona_s_own_name() -> None:
    # Rewriting the name first and the title second (the old way) left "Oswin's Remedy" as "<new name>'s Remedy":
    # the quest was never swapped. One pass, longest phrase first, swaps the whole title.
    card = PersonaPack.load(default_pack_dir()).get("guard")
    first = card.name.split()[-2]
    own = Quest(title=f"{first}'s Remedy", task="bring me the herbs", reward="5 silver coins", location="the well")
    card = dataclasses.replace(card, knowledge=dataclasses.replace(card.knowledge, quest=own))
    other = Quest(title="The Lost Bell", task="find the bell", reward="3 silver coins", location="the mill")
    reply = f"{own.title}: {own.task}, {first}."
    swapped, (new_reply,), _ = swap_facts(card, [reply], random.Random(0), FIRST_NAMES, SURNAMES, other)
    new_first = swapped.name.split()[-2]
    assert swapped.knowledge.quest.title == "The Lost Bell"
    assert new_reply == f"The Lost Bell: find the bell, {new_first}."


@pytest.mark.parametrize("invent", [0, 1, 2])
def test_training_turns_of_generated_personas_get_swapped_facts_their_replies_still_carry(invent: int) -> None:
    corpus = build_corpus()
    train = corpus.splits["train"][::10]  # bundled and generated personas
    config = DataConfig(fact_swap=0.5, invent_facts=invent)
    out = _swap_facts(train, config, "train")
    assert out == _swap_facts(train, config, "train")  # fixed by the seed
    changed = [(a, b) for a, b in zip(train, out) if a is not b]
    assert all(a.persona_id.startswith(PROCEDURAL_PREFIX) for a, _ in changed)
    procedural = sum(a.persona_id.startswith(PROCEDURAL_PREFIX) for a in train)
    assert 0.4 < len(changed) / procedural < 0.6
    assert any(a.card.knowledge.quest and a.card.knowledge.quest.title != b.card.knowledge.quest.title
               for a, b in changed)  # fmt: skip
    corpus_wares = {w.item for card in corpus.cards.values() for w in card.knowledge.wares}
    corpus_places = {p.name for card in corpus.cards.values() for p in card.knowledge.places}
    corpus_roles = {card.role for card in corpus.cards.values()}
    invented = [b for _, b in changed if not (set(b.card.name.split()) & {*FIRST_NAMES, *SURNAMES})]
    # Invented facts are nowhere in the corpus's lists; without --invent-facts every new name comes from them.
    assert len(invented) == (len(changed) if invent else 0)
    if invent:
        assert all(w.item not in corpus_wares for b in invented for w in b.card.knowledge.wares)
        assert all(b.card.role not in corpus_roles for b in invented)
        new_places = {p.name for b in invented for p in b.card.knowledge.places}
        assert len(new_places - corpus_places) > 20
        # Version 2: a remedy stays a remedy (to the corpus's rule and the runtime's lookup); version 1: not always.
        kept = [is_remedy(wb.item) for a, b in changed for wa, wb in zip(a.card.knowledge.wares, b.card.knowledge.wares)
                if is_remedy(wa.item)]  # fmt: skip
        assert len(kept) > 20 and (all(kept) if invent == 2 else not all(kept))
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
    for bad in ("yes", 3, -1):
        with pytest.raises(ValueError, match="invent_facts"):
            DataConfig(invent_facts=bad)  # type: ignore[arg-type]
    assert DataConfig(invent_facts=True).invent_facts == 1 and DataConfig(invent_facts=2).invent_facts == 2


def test_version_1_inventions_are_unchanged_and_version_2_keeps_a_remedy_a_remedy() -> None:
    # The healer sells remedies and other wares; version 2 draws differently only for the remedies, so a card
    # without remedies gets exactly version 1's inventions (the recipes of version-1 runs still hold).
    healer = PersonaPack.load(default_pack_dir()).get("healer")
    smith = PersonaPack.load(default_pack_dir()).get("blacksmith")
    assert any(is_remedy(w.item) for w in healer.knowledge.wares)
    assert not any(is_remedy(w.item) for w in smith.knowledge.wares)
    assert Inventor(random.Random(3), 2).card_pairs(smith) == Inventor(random.Random(3), 1).card_pairs(smith)
    for seed in range(30):
        v1 = dict(Inventor(random.Random(seed), 1).card_pairs(healer))
        v2 = dict(Inventor(random.Random(seed), 2).card_pairs(healer))
        for ware in healer.knowledge.wares:
            assert is_remedy(v2[ware.item]) == is_remedy(ware.item), (seed, ware.item, v2[ware.item])
            assert not is_remedy(v1[ware.item])  # version 1 never invents a remedy word


def test_replace_all_rewrites_each_phrase_once_longest_first_keeping_capitals() -> None:
    pairs = [("the gate", "the old gate house"), ("gate", "door"), ("house", "barn")]
    # One pass: the new "gate house" is not rewritten again; "the gate" wins over "gate"; capitals follow the old.
    assert replace_all("The gate, a gate, my house.", pairs) == "The old gate house, a door, my barn."
    assert replace_all("gateway", pairs) == "gateway"  # whole words only
    assert replace_all("unchanged", []) == "unchanged"


def test_invented_card_facts_keep_the_compass_word_and_what_the_scene_shows() -> None:
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    place = card.knowledge.places[0]
    reply = f"{place.name.capitalize()}? {place.directions}. I'm {card.name}, the {card.role}."
    swapped, (new_reply,), pairs = swap_facts(card, [reply], random.Random(2), FIRST_NAMES, SURNAMES, invent=True)
    assert swapped.role != card.role and swapped.knowledge.places[0].name != place.name
    assert {w.item for w in swapped.knowledge.wares}.isdisjoint({w.item for w in card.knowledge.wares})
    new_place = swapped.knowledge.places[0]
    compass = [w for w in ("north", "south", "east", "west") if w in place.directions]
    assert compass and compass[0] in new_place.directions and new_place.directions != place.directions
    assert new_reply == f"{new_place.name.capitalize()}? {new_place.directions}. I'm {swapped.name}, the {swapped.role}."
    # The same draw with the scene showing the place and the role keeps both (a reply may mean the scene's).
    scene = f"market | {place.name.removeprefix('the ')} | a {card.role}"
    kept, _, _ = swap_facts(card, [reply], random.Random(2), FIRST_NAMES, SURNAMES, invent=True, keep=scene)
    assert kept.role == card.role and kept.knowledge.places[0].name == place.name
    assert Inventor(random.Random(5)).name() == Inventor(random.Random(5)).name()


def test_inventions_never_make_a_fact_of_the_hand_written_cards() -> None:
    from export import fact_swap as fs
    from export.eval_handwritten import load_cards

    inventor = Inventor(random.Random(0))
    names = {part for _ in range(20_000) for part in inventor.name()}
    wares = {f"{w} {n}" for w in fs._WARE_WORDS for n in (*fs._WARE_NOUNS, *fs._REMEDY_NOUNS)}
    corpus = build_corpus()
    assert not wares & {w.item for c in corpus.cards.values() for w in c.knowledge.wares}
    assert all(is_remedy(noun) for noun in fs._REMEDY_NOUNS)
    places = {f"the {n}" for n in fs._PLACE_NOUNS} | {f"the {a} {n}" for a in fs._PLACE_WORDS for n in fs._PLACE_NOUNS}
    for card in load_cards():
        k = card.knowledge
        assert not set(card.name.split()) & names, card.id
        assert card.role not in fs._ROLES, card.id
        assert not {w.item for w in k.wares} & wares, card.id
        assert not {p.name for p in k.places} & places, card.id
        assert k.quest is None or k.quest.title not in {inventor.title() for _ in range(2_000)}, card.id
