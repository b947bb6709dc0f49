"""Speaking styles: a card's described style is read back exactly, applied systematically, and never bends facts."""

from __future__ import annotations

import itertools
import random

import pytest

from export.corpus_personas import Speaker, make_procedural_personas
from export.corpus_replies import example_lines_for, make_turn
from export.corpus_style import DIALECTS, VERBOSITIES, StyleProfile, describe_style, fill, profile_from_card, stylise
from npc_runtime.personas import PersonaCard, PersonaPack, default_pack_dir
from sample_game.scene import SceneFacts


def _card(style: str, lines: tuple[str, ...] = ("Hello there, how are you today?", "A fine day for it, isn't it?")):
    return PersonaCard(
        id="test", name="Test Person", role="baker", backstory="Bakes.", traits=("kind",),
        speaking_style=style, example_lines=lines,
    )  # fmt: skip


def test_described_styles_are_read_back_exactly() -> None:
    rng = random.Random(0)
    for dialect, verbosity, excitable, hesitant in itertools.product(
        DIALECTS, VERBOSITIES, (False, True), (False, True)
    ):
        profile = StyleProfile(dialect, verbosity, rng.choice((None, "lad", "good sir")), "Short and sweet!",
                               excitable, hesitant)  # fmt: skip
        for _ in range(3):
            assert profile_from_card(_card(describe_style(profile, rng))) == profile


def test_profile_rejects_unknown_values() -> None:
    with pytest.raises(ValueError):
        StyleProfile(dialect="pirate")
    with pytest.raises(ValueError):
        StyleProfile(verbosity="huge")
    with pytest.raises(ValueError):
        StyleProfile(address='say "hi"')


def test_procedural_cards_show_the_style_they_describe() -> None:
    cards = make_procedural_personas(30, seed=3, make_lines=example_lines_for)
    for card in cards:
        profile = profile_from_card(card)
        assert profile.catchphrase and profile.catchphrase in " ".join(card.example_lines)
    old_country = [c for c in cards if profile_from_card(c).dialect == "old_country"]
    courtly = [c for c in cards if profile_from_card(c).dialect == "courtly"]
    assert old_country and courtly
    assert not any("don't" in line or "I'm" in line for c in courtly for line in c.example_lines)


def test_bundled_personas_have_distinct_voices() -> None:
    pack = PersonaPack.load(default_pack_dir())
    profiles = {card.id: profile_from_card(card) for card in pack}
    voices = {(p.dialect, p.verbosity, p.address, p.catchphrase) for p in profiles.values()}
    assert len(voices) == len(profiles)
    assert len({p.dialect for p in profiles.values()}) >= 6
    assert all(p.catchphrase for p in profiles.values())


def test_stylise_changes_words_but_never_slot_values() -> None:
    profile = StyleProfile(dialect="old_country", verbosity="terse", address="lad", catchphrase="Mind the edge.")
    slots = {"item": "your old sword", "price": "40"}
    for seed in range(40):
        text = fill(stylise(["Yes, the {item} costs {price} silver for you."], [], profile, random.Random(seed)), slots)
        assert "your old sword" in text and "40 silver" in text
        assert " ye" in text and "aye" in text.lower()
        assert text[0].isupper() and text[-1] in ".!?"


def test_courtly_speech_expands_contractions() -> None:
    profile = StyleProfile(dialect="courtly")
    text = fill(stylise(["I'm sure it's fine, don't worry."], [], profile, random.Random(0)), {})
    assert "I am sure it is fine, do not worry." in text


def test_a_new_card_gets_its_described_style_in_replies() -> None:
    card = _card('short, blunt sentences; thick old-country dialect (aye, nay, ye); calls people "lass"')
    sp = Speaker.from_card(card)
    scene = SceneFacts(location="market", time_of_day="noon", weather="rain")
    rng = random.Random(0)
    replies = [make_turn(sp, "greeting", i % 5, scene, rng).reply for i in range(60)]
    assert sum("lass" in r for r in replies) > 10
    assert sum(any(w in r for w in ("Aye", "Och", "ye", "Well now")) for r in replies) > 20
