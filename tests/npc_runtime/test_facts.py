"""Fact steering: the facts read from a card's knowledge line, where the bias applies, and what a taken nudge says."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from npc_runtime.bundle import default_bundle_dir
from npc_runtime.facts import (FactSteering, Steerings, card_facts, card_name, card_places, card_quest_parts,
                               card_remedies, combine, last_named)
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.voice import FINISH_BIAS

TOKENIZER = default_bundle_dir() / "tokenizer.json"
pytestmark = pytest.mark.skipif(not TOKENIZER.exists(), reason="no shipped bundle")
KNOWLEDGE = ("name: Brenna Ironhand | role: blacksmith | wares: longsword 40, dagger 12, iron helm 25 | places: the "
             "forge (south-west of the square, follow the smoke), the inn (east of the square, the green door), the "
             "square (the village centre, by the fountain) | facts: the forge has stood for 3 generations")


@pytest.fixture(scope="module")
def steering() -> tuple[FactSteering, Tokenizer]:
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    pieces = [tokenizer.decode([i], skip_special_tokens=False) for i in range(tokenizer.get_vocab_size())]
    return FactSteering(lambda text: tokenizer.encode(text, add_special_tokens=False).ids, pieces), tokenizer


def _say(row, tokenizer: Tokenizer, text: str) -> None:
    for token in tokenizer.encode(text, add_special_tokens=False).ids:
        row.boost(token)
        row.advance(token)


def _id(tokenizer: Tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_facts_are_read_from_the_knowledge_line() -> None:
    assert card_facts(KNOWLEDGE) == {"longsword": "40", "dagger": "12", "iron helm": "25", "forge": "south-west",
                                     "inn": "east"}  # the square has no compass direction; facts are not wares
    cards = {card.id: card for card in PersonaPack.load(default_pack_dir())}
    assert card_facts(cards["bard"].knowledge_text()) == {"song": "1", "ballad in your honour": "5", "inn": "east"}
    assert card_facts("name: Tam | role: child | facts: he is 9") == {}


def test_the_name_a_line_names_last_is_read_whole_words_and_longest_where_names_end_together() -> None:
    names = sorted(card_facts("wares: helm 5, iron helm 25, dagger 12 | places: the inn (east)"), key=len,
                   reverse=True)  # fmt: skip
    assert last_named(names, "How much is the Iron Helm?") == "iron helm"  # not "helm", which ends there too
    assert last_named(names, "The helm, or the dagger?") == "dagger"  # the last named
    assert last_named(names, "A dagger, then the helm.") == "helm"
    assert last_named(names, "Daggers and helmets") is None  # whole words only
    assert last_named(names, "Where is the inn?") == "inn"
    steering_row = FactSteering(lambda text: [1], [" x"]).row("wares: helm 5, iron helm 25", "the iron helm?", 8.0)
    assert steering_row is not None and steering_row.topic == "iron helm"  # the fact steering reads it so too


def test_places_quest_name_and_remedies_are_read_from_the_knowledge_line() -> None:
    line = ("name: Sister Elowen | role: healer | wares: willow bark tea 3, comfrey poultice 4, honey salve 3 | "
            "places: the temple (north-west of the square, up the white steps), the well (by the oak) | "
            "quest: Moonpetal at Dawn: gather five flowers; at dawn; reward 12 silver coins; at the meadow | "
            "facts: wash wounds")  # fmt: skip
    assert card_name(line) == "Sister Elowen"
    assert card_places(line) == {"temple": ("the temple", "north-west of the square, up the white steps"),
                                 "well": ("the well", "by the oak")}  # fmt: skip
    assert card_quest_parts(line) == ("Moonpetal at Dawn", "gather five flowers; at dawn", "12 silver coins",
                                      "the meadow")  # fmt: skip
    assert card_remedies(line) == {"willow bark tea": "3", "honey salve": "3"}  # a poultice is not on the list
    assert card_facts(line)["temple"] == "north-west" and "well" not in card_facts(line)  # no compass word
    bare = "name: Tam | role: child"
    assert card_name("role: child") is None and card_places(bare) == {} and card_quest_parts(bare) is None
    assert card_remedies(bare) == {}


def test_the_price_of_the_ware_the_player_named_replaces_another_number(steering) -> None:
    facts, tok = steering
    row = facts.row(KNOWLEDGE, "What does the dagger cost?", 8.0)
    assert row is not None and row.topic == "dagger"
    _say(row, tok, "That's")
    assert row.boost(_id(tok, " 40")) == ([_id(tok, " 12")], [8.0])  # about to say a number: the dagger's
    row.advance(_id(tok, " 12"))
    assert row.boost(_id(tok, " silver")) == ([], [])  # not a number: nothing
    _say(row, tok, " silver, and the iron helm is")
    assert row.topic == "iron helm"  # the reply's own last ware wins over the player's
    assert row.boost(_id(tok, " 12")) == ([_id(tok, " 25")], [8.0])


def test_a_direction_is_the_places_and_a_taken_one_is_finished(steering) -> None:
    facts, tok = steering
    row = facts.row(KNOWLEDGE, "Which road leads to the forge?", 3.0)
    _say(row, tok, "For the forge:")
    south, west = _id(tok, " south"), _id(tok, "west")
    assert row.boost(_id(tok, " east")) == ([south], [3.0])
    row.advance(south)
    hyphen = tok.encode(" south-west", add_special_tokens=False).ids[1]
    assert row.boost(_id(tok, " of")) == ([hyphen], [FINISH_BIAS])  # "south" goes on to "-west"
    row.advance(hyphen)
    assert row.boost(_id(tok, " of")) == ([west], [FINISH_BIAS])
    row.advance(west)
    assert row.boost(_id(tok, " of")) == ([], [])
    capital = facts.row(KNOWLEDGE, "Where is the inn?", 3.0)
    assert capital.boost(_id(tok, " North")) == ([_id(tok, " East")], [3.0])  # as the row would write it


def test_a_list_of_wares_goes_on_with_the_first_one_not_named_yet(steering) -> None:
    facts, tok = steering
    knowledge = "name: Brenna | wares: leather gloves 4, chain shirt 84, shield 36, leather boots 9"
    chain, shield, leather = _id(tok, " chain"), _id(tok, " shield"), _id(tok, " leather")
    listed = "I've got a leather gloves for 4 silver, a chain shirt for 84 silver and a"
    # Any reply: a list that repeats a ware goes on with the first one not named instead.
    plain = facts.row(knowledge, "What do you sell?", 8.0)
    _say(plain, tok, listed)
    assert plain.boost(chain) == ([shield], [8.0])
    assert plain.boost(leather) == ([], [])  # "leather" may begin the boots, not named yet: the model's choice
    # Where the hint says the player asked what is for sale, the list keeps the card's order, each ware whole.
    row = facts.row(knowledge, "What do you sell?", 8.0, "ask trade")
    assert row.boost(chain) == ([], [])
    _say(row, tok, "Well, the")
    assert row.boost(leather) == ([], [])  # no ware named yet: not a list, whatever the comma
    _say(row, tok, " A chain shirt? The")
    assert row.boost(chain) == ([], [])  # a named ware again, but not in a list: the model's choice
    _say(row, tok, " chain shirt is 84 silver. " + listed)
    assert row.boost(chain) == ([shield], [8.0])  # the list repeats a ware: the first one not named instead
    assert row.boost(leather) == ([shield], [8.0])  # or skips one: a list names the card's wares in order
    assert row.boost(shield) == ([shield], [8.0])  # the next one: offered whole, so a taken one is finished
    _say(row, tok, " shield for 36 silver,")
    assert row.boost(chain) == ([leather], [8.0])  # after a comma too
    row.advance(leather)
    assert row.boost(chain) == ([_id(tok, " boots")], [FINISH_BIAS])  # and a taken one is finished


def test_a_list_of_the_first_three_wares_goes_on_until_all_three_are_said(steering) -> None:
    facts, tok = steering
    knowledge = "name: Brenna | wares: leather gloves 4, chain shirt 84, shield 36, leather boots 9"
    comma, and_, stop = _id(tok, ","), _id(tok, " and"), _id(tok, ".")
    row = facts.row(knowledge, "What do you sell?", 8.0, "ask trade")
    _say(row, tok, "I sell a leather gloves for 4 silver")
    assert row.boost(and_) == ([comma], [8.0])  # two of the three still to say: "and" would end the list early
    assert row.boost(stop) == ([comma], [8.0])  # and so would a full stop
    _say(row, tok, ", a chain shirt for 84 silver")
    assert row.boost(and_) == ([], [])  # the last of the three comes after "and"
    assert row.boost(stop) == ([and_], [8.0])  # not after a full stop
    _say(row, tok, " and a shield for 36 silver")
    assert row.boost(stop) == ([], [])  # all three said: the list may end
    skipped = facts.row(knowledge, "What do you sell?", 8.0, "ask trade")
    _say(skipped, tok, "I sell a chain shirt for 84 silver")
    assert skipped.boost(and_) == ([], []) and skipped.boost(stop) == ([], [])  # not the card's order
    for hint in ("ask health", ""):  # another request, or no reader: a price may end a sentence
        other = facts.row(knowledge, "What do you sell?", 8.0, hint)
        _say(other, tok, "I sell a leather gloves for 4 silver")
        assert other.boost(and_) == ([], []) and other.boost(stop) == ([], [])
    gold = facts.row(knowledge, "What do you sell?", 8.0, "ask trade")
    _say(gold, tok, "I sell a leather gloves for 4 gold")
    assert gold.boost(and_) == ([comma], [8.0])  # whatever the coin is called
    two = facts.row("name: Brenna | wares: leather gloves 4, chain shirt 84", "What do you sell?", 8.0, "ask trade")
    _say(two, tok, "I sell a leather gloves for 4 silver")
    assert two.boost(and_) == ([], []) and two.boost(stop) == ([and_], [8.0])  # two wares: "and" before the last


def test_no_steering_without_a_topic_a_fact_or_a_bias(steering) -> None:
    facts, tok = steering
    row = facts.row(KNOWLEDGE, "Hello there.", 8.0)
    assert row.topic is None and row.boost(_id(tok, " 40")) == ([], [])  # a number, but no ware named
    assert facts.row(KNOWLEDGE, "How much is the dagger?", 0.0) is None
    assert facts.row("name: Tam | role: child", "How much is the dagger?", 8.0) is None
    row = facts.row(KNOWLEDGE, "How much is the dagger?", 8.0)
    assert row.boost(_id(tok, " south")) == ([], [])  # the topic is a ware: a direction is left alone
    assert row.boost(_id(tok, " 40"), room=1) == ([], [])  # no room left for it


def test_combined_with_voice_the_fact_has_the_step(steering) -> None:
    facts, tok = steering

    class Voice:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
            return [7], [1.5]

        def advance(self, token: int) -> None:
            self.seen.append(token)

    row, voice = facts.row(KNOWLEDGE, "How much is the dagger?", 8.0), Voice()
    both = combine(row, voice)
    assert isinstance(both, Steerings) and combine(None, voice) is voice and combine(row, None) is row
    assert both.boost(_id(tok, " 40")) == ([_id(tok, " 12")], [8.0])
    assert both.boost(_id(tok, " silver")) == ([7], [1.5])  # no fact here: the voice's nudge
    both.advance(_id(tok, " 12"))
    assert voice.seen == [_id(tok, " 12")]  # both follow the reply


def test_the_shipped_bundle_gives_the_cards_direction_with_fact_steering() -> None:
    """The real model and scheduler: asked the way to the inn, the blacksmith gives another compass word than her
    card's for it ("north of the square, the green door"); with the default steering it is the inn's ("east of
    the square")."""
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.facts import DEFAULT_FACT_BIAS
    from npc_runtime.ort_backend import RuntimeOptions
    from npc_runtime.scheduler import GenOptions, GenRequest, SchedulerConfig

    from .test_scheduler import _run

    engine = RoleModelEngine(load_bundle(default_bundle_dir()), RuntimeOptions(device="cpu", intra_op_threads=1))
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    reqs = [GenRequest(key=bias, fingerprint=card.fingerprint(), card_text=card.card_text(),
                       knowledge=card.knowledge_text(voice=engine.prompt_voice), text="which road leads to the inn?",
                       context={"time_of_day": "noon"}, history=[], image=None,
                       options=GenOptions(temperature=0.0, fact_bias=bias))
            for bias in (0.0, DEFAULT_FACT_BIAS)]  # fmt: skip
    done = _run(engine, reqs, SchedulerConfig(max_batch=2))
    off, on = done[0.0][1]["text"], done[DEFAULT_FACT_BIAS][1]["text"]
    assert "of the square" in off.lower() and "east of the square" not in off.lower(), off
    assert "east of the square" in on.lower(), on
