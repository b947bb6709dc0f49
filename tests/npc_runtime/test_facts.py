"""Fact steering: the facts read from a card's knowledge line, where the bias applies, and what a taken nudge says."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from npc_runtime.bundle import default_bundle_dir
from npc_runtime.facts import (FactSteering, Steerings, card_facts, card_name, card_names, card_places,
                               card_quest_parts, card_remedies, combine, last_named, subject_names)
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


def test_a_price_glued_to_the_word_before_it_is_said_as_a_word_of_its_own(steering) -> None:
    facts, tok = steering
    knowledge = "name: Anselm | wares: leather gloves 8, chain shirt 87"
    row = facts.row(knowledge, "What does the chain shirt cost?", 8.0)
    _say(row, tok, "A chain shirt for")
    glued = tok.encode("for7", add_special_tokens=False).ids[-1]
    assert tok.decode([glued]) == "7"
    spaced = tok.encode(" 87", add_special_tokens=False).ids
    assert row.boost(glued) == ([spaced[0]], [8.0])  # "for 87", not "for87"
    _say(row, tok, " 1")
    assert row.boost(glued) == ([], [])  # after a digit, a number going on is the model's


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


WHOLE = ("name: Wynn Barrow | role: scholar | wares: apple pie 3, iron pot 7, map of the valley 12, apple 1 | places: "
         "the old well (north of the square) | quest: A Flute for Quinn: carry a sealed flute to the temple; reward a "
         "week's free room; at the temple")


def _rest(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def test_subject_names_follow_the_hint_and_the_players_line() -> None:
    assert subject_names(WHOLE, "How much for the map of the valley?", "buy") == ["map of the valley"]
    assert subject_names(WHOLE, "Where is the old well?", "directions") == ["the old well"]
    assert subject_names(WHOLE, "What do you sell?", "ask trade") == ["apple pie", "iron pot", "map of the valley",
                                                                      "apple"]  # fmt: skip
    assert subject_names(WHOLE, "Any work?", "quest ask") == ["A Flute for Quinn", "a week's free room"]
    assert subject_names(WHOLE, "I'll do it.", "quest accept") == ["a week's free room", "the temple"]
    assert subject_names(WHOLE, "Who are you?", "ask name") == ["Wynn Barrow"]
    assert subject_names(WHOLE, "Nice weather.", "ask weather") == []
    assert {"apple", "apple pie", "flute for quinn", "week's free room", "wynn barrow", "old well",
            "temple"} <= card_names(WHOLE)  # fmt: skip


def test_a_begun_subject_name_is_said_whole(steering) -> None:
    facts, tok = steering
    stop, bang = _id(tok, "."), _id(tok, "!")
    row = facts.row(WHOLE, "Got any work?", 8.0, "quest ask")
    _say(row, tok, "There's a job I call A Flute")
    rest = _rest(tok, " for Quinn")
    assert row.boost(stop) == ([rest[0]], [8.0])  # about to end the title early: the rest of it
    row.advance(rest[0])
    assert row.boost(stop) == ([rest[1]], [FINISH_BIAS])  # taken: finished
    row.advance(rest[1])
    _say(row, tok, ". The reward is a week's")
    assert row.boost(_id(tok, " cellar")) == ([_rest(tok, " free room")[0]], [8.0])
    assert row.boost(_rest(tok, " free")[0]) == ([], [])  # the model goes on with it already: nothing to do
    name = facts.row(WHOLE, "Who are you?", 8.0, "ask name")
    _say(name, tok, "I'm Wynn")
    assert name.boost(bang) == ([_rest(tok, " Barrow")[0]], [8.0])
    assert name.boost(_id(tok, "s")) == ([], [])  # "Wynns": the model goes on with the word it is in
    ware = facts.row(WHOLE, "The iron pot was a waste of money.", 8.0, "complaint")
    _say(ware, tok, "Return the iron")
    assert ware.boost(_id(tok, " and")) == ([_id(tok, " pot")], [8.0])


def test_a_whole_name_is_not_forced_where_it_is_not_the_subject_or_the_words_are_a_name(steering) -> None:
    facts, tok = steering
    stop = _id(tok, ".")
    # The quest's title in a reply to a greeting is the model's business.
    row = facts.row(WHOLE, "Hello there.", 8.0, "greeting")
    _say(row, tok, "There's a job I call A Flute")
    assert row.boost(stop) == ([], [])
    # "apple" is a ware of its own: a reply about the apple pie may name the apple.
    row = facts.row(WHOLE, "What do you sell?", 8.0, "ask trade")
    _say(row, tok, "Try the apple")
    assert row.boost(stop) == ([], [])
    # Articles alone begin nothing; after a sentence's end the name is over; inside a word, the word goes on.
    row = facts.row(WHOLE, "Any work?", 8.0, "quest ask")
    _say(row, tok, "Take a")
    assert row.boost(stop) == ([], [])
    _say(row, tok, " flute.")
    assert row.boost(_id(tok, " The")) == ([], [])
    _say(row, tok, " A Flute")
    assert row.boost(_id(tok, "s")) == ([], [])
    # No bias, no steering; a card with nothing to say whole and no prices or directions has no row.
    assert facts.row(WHOLE, "Any work?", 0.0, "quest ask") is None
    assert facts.row("name: Tam | role: child", "Who are you?", 8.0, "ask name") is None
    assert facts.row("name: Tam Reed | role: child", "Who are you?", 8.0, "ask name") is not None


def test_a_subject_ware_begun_at_a_later_word_is_said_from_its_first(steering) -> None:
    facts, tok = steering
    row = facts.row(WHOLE, "The map of the valley was a waste of money.", 8.0, "complaint")
    _say(row, tok, "Return the")
    whole = _rest(tok, " map of the valley")
    assert row.boost(_id(tok, " valley")) == ([whole[0]], [8.0])
    for token in whole:  # taken: the rest follows
        row.advance(token)
        assert row.boost(_id(tok, " and")) == (([whole[whole.index(token) + 1]], [FINISH_BIAS])
                                                  if token != whole[-1] else ([], []))  # fmt: skip
    # Said from its first word, the name's own later words are its own: "the map of the" goes on to "valley".
    begun = facts.row(WHOLE, "The map of the valley was a waste of money.", 8.0, "complaint")
    _say(begun, tok, "Return the map of the")
    assert begun.boost(_id(tok, " valley")) == ([], [])
    listing = facts.row(WHOLE, "What do you sell?", 8.0, "ask trade")
    _say(listing, tok, "I've got apple pie for 3 silver and a")
    assert listing.boost(_id(tok, " pot")) == ([_rest(tok, " iron pot")[0]], [8.0])
    _say(listing, tok, " flute, that")
    assert listing.boost(_id(tok, " pot")) == ([_rest(tok, " iron pot")[0]], [8.0])  # "that" is a determiner too
    # Not after any word ("made of pot" is the model's), nor a title's later word ("the Quinn").
    plain = facts.row(WHOLE, "What do you sell?", 8.0, "ask trade")
    _say(plain, tok, "Made of")
    assert plain.boost(_id(tok, " pot")) == ([], [])
    quest = facts.row(WHOLE, "Any work?", 8.0, "quest ask")
    _say(quest, tok, "Ask the")
    assert quest.boost(_rest(tok, " Quinn")[0]) == ([], [])


def test_combined_with_voice_the_fact_has_the_step(steering) -> None:
    facts, tok = steering

    class Voice:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def busy(self) -> bool:
            return False

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
