"""Scene steering: which words compete with the scene facts' elements, what a nudge says, and the shipped model."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from npc_runtime.bundle import default_bundle_dir
from npc_runtime.grounding import SceneSteering, validate_scene_words
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.voice import FINISH_BIAS

BUNDLE = default_bundle_dir()
pytestmark = pytest.mark.skipif(not (BUNDLE / "tokenizer.json").exists(), reason="no shipped bundle")
CARD = "Brenna Ironhand, the village blacksmith. Speaking style: gruff. Says things like: \"Mind the edge.\""
RAIN = {"time_of_day": "noon", "weather": "rain", "nearby": "dog, wolf", "player_item": "coin purse"}


@pytest.fixture(scope="module")
def steering() -> tuple[SceneSteering, Tokenizer]:
    tokenizer = Tokenizer.from_file(str(BUNDLE / "tokenizer.json"))
    pieces = [tokenizer.decode([i], skip_special_tokens=False) for i in range(tokenizer.get_vocab_size())]
    words = json.loads((BUNDLE / "bundle.json").read_text(encoding="utf-8"))["scene_words"]
    return SceneSteering(words, lambda text: tokenizer.encode(text, add_special_tokens=False).ids, pieces), tokenizer


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def _say(row, tokenizer: Tokenizer, text: str) -> None:
    for token in _ids(tokenizer, text):
        row.boost(token)
        row.advance(token)


def test_another_weather_gets_the_scenes_and_a_taken_nudge_is_finished(steering) -> None:
    scene, tok = steering
    row = scene.row(RAIN, CARD, "name: Brenna", "How's the sky?", 8.0)
    _say(row, tok, "Aye, it's")
    assert row.boost(_ids(tok, " snow")[0]) == ([_ids(tok, " rain")[0]], [8.0])
    assert row.boost(_ids(tok, " fog")[0]) == ([_ids(tok, " rain")[0]], [8.0])
    assert row.boost(_ids(tok, " again")[0]) == ([], [])  # no scene word: nothing to settle
    assert row.boost(_ids(tok, " rain")[0]) == ([], [])  # the scene's own weather: nothing to settle
    # A creature that is not there: the first one the reply has not named yet ("dog", then "wolf").
    assert row.boost(_ids(tok, " horse")[0]) == ([_ids(tok, " dog")[0]], [8.0])
    _say(row, tok, " a dog and a")
    assert row.boost(_ids(tok, " horse")[0]) == ([_ids(tok, " wolf")[0]], [8.0])
    # Another held item than the purse: "coin purse" is two tokens, the second finished once the first is taken.
    coin, purse = _ids(tok, " coin purse")
    assert row.boost(_ids(tok, " sword")[0]) == ([coin], [8.0])
    row.advance(coin)
    assert row.boost(_ids(tok, " sword")[0]) == ([purse], [FINISH_BIAS])
    row.advance(purse)
    # The time of day, spelt like the word it replaces: capital after no space at the start of a sentence.
    assert row.boost(_ids(tok, " Evening")[0]) == ([_ids(tok, " Noon")[0]], [8.0])


def test_a_creature_the_player_names_is_the_first_target(steering) -> None:
    scene, tok = steering
    asked = scene.row(RAIN, CARD, "name: Brenna", "What is that wolf doing here?", 8.0)
    assert asked.boost(_ids(tok, " horse")[0]) == ([_ids(tok, " wolf")[0]], [8.0])  # not the nearer dog
    plain = scene.row(RAIN, CARD, "name: Brenna", "Any beasts about?", 8.0)
    assert plain.boost(_ids(tok, " horse")[0]) == ([_ids(tok, " dog")[0]], [8.0])


def test_words_the_reply_takes_from_the_card_or_the_player_and_partial_tokens_are_left_alone(steering) -> None:
    scene, tok = steering
    sun = _ids(tok, " sun")[0]  # " sunny" begins with it, and so does "the sun is at its highest"
    coin = _ids(tok, " coin")[0]  # "coin purse" begins with it, and so does "not a coin less"
    rain, fog, horse, dog = (_ids(tok, w)[0] for w in (" rain", " fog", " horse", " dog"))
    card = CARD + ' Often says "Right as rain!" Keeps a clear head.'
    knowledge = "name: Brenna | wares: apple pie 3, wolf pelt 9 | places: the inn (east of the square)"
    row = scene.row({"weather": "fog", "nearby": "dog", "player_item": "lute"}, card, knowledge,
                    "Is that a horse?", 8.0)
    assert sun not in row.competitors and coin not in row.competitors and rain in row.competitors
    # The player's words and the card's ware names never compete: "No horse here", "the apple pie".
    assert horse not in row.competitors and _ids(tok, " apple")[0] not in row.competitors
    assert _ids(tok, " wolf")[0] not in row.competitors and _ids(tok, " cat")[0] in row.competitors
    _say(row, tok, "Right as")
    assert row.boost(rain) == ([], [])  # the card's catchphrase goes on: "as rain" is the card's
    _say(row, tok, " rain! It's all")
    assert row.boost(rain) == ([fog], [8.0])  # "all rain" is not: the scene's weather
    _say(row, tok, " fog. The")
    assert row.boost(_ids(tok, " cat")[0]) == ([dog], [8.0])
    _say(row, tok, " dog.")
    assert row.boost(_ids(tok, " Clear")[0]) == ([], [])  # a sentence begun with a word of the card


def test_no_steering_without_a_target_a_context_or_a_bias(steering) -> None:
    scene, tok = steering
    assert scene.row(RAIN, CARD, "", "hi", 0.0) is None
    assert scene.row({}, CARD, "", "hi", 8.0) is None
    # A key it does not list, and the place, which is steered only in a reply to "where are we?" (below).
    assert scene.row({"location": "forge", "mood": "tense"}, CARD, "", "hi", 8.0) is None
    # The empty-handed player is never a target: "nothing" is too common a word to steer to.
    assert scene.row({"player_item": "nothing"}, CARD, "", "hi", 8.0) is None
    # A value the list does not know is its own word, and every listed weather competes with it.
    row = scene.row({"weather": "drizzle"}, CARD, "", "hi", 8.0)
    assert row.targets == {"weather": ["drizzle"]}
    assert row.boost(_ids(tok, " snow")[0]) == ([_ids(tok, " drizzle")[0]], [8.0])


def test_the_place_is_steered_only_in_a_reply_to_where_are_we(steering) -> None:
    scene, tok = steering
    gate, library, temple, market = (_ids(tok, w)[0] for w in (" gate", " library", " temple", " market"))
    card = CARD + ' Often says "Off to the temple!"'
    knowledge = "name: Rolf | places: the gate (north of the square), the temple (up the hill)"
    at_gate = {"location": "gate", "weather": "fog"}
    row = scene.row(at_gate, card, knowledge, "Where are we? Not the market?", 8.0, "ask place")
    _say(row, tok, "You're standing at the")
    assert row.boost(library) == ([gate], [8.0])  # another place of the village
    assert row.boost(temple) == ([gate], [8.0])  # the card's own place and phrase too: the usual slip
    assert row.boost(market) == ([], [])  # the player's word: "No, not the market"
    assert row.boost(gate) == ([], [])
    for hint in ("directions", "rumours", ""):  # elsewhere a named place is another place, rightly
        other = scene.row(at_gate, card, knowledge, "How do I get to the temple?", 8.0, hint)
        assert library not in other.competitors and temple not in other.competitors
        assert _ids(tok, " snow")[0] in other.competitors  # the other keys as before
    assert scene.row({"location": "gate"}, card, knowledge, "Where is the inn?", 8.0, "directions") is None


def test_a_nudge_that_would_not_fit_is_not_begun(steering) -> None:
    scene, tok = steering
    row = scene.row({"player_item": "coin purse"}, CARD, "", "hi", 8.0)
    assert row.boost(_ids(tok, " sword")[0], room=2) == ([], [])  # two tokens and the end need three
    assert row.boost(_ids(tok, " sword")[0], room=3)[0] == [_ids(tok, " coin")[0]]


def test_scene_words_are_validated() -> None:
    want = {"weather": {"rain": ("rain", "raining")}}
    assert validate_scene_words({"weather": {"rain": ["Rain", "raining"]}}) == want
    for bad, what in (([], "object of context keys"), ({"weather": {}}, "non-empty object"),
                      ({"weather": {"rain": "rain"}}, "non-empty list"),
                      ({"weather": {"rain": [""]}}, "non-empty list")):
        with pytest.raises(ValueError, match=what):
            validate_scene_words(bad)


def test_a_bundle_with_malformed_scene_words_is_refused(tmp_path) -> None:
    import shutil

    from export.make_bundle import rewrite_manifest
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.errors import BundleError
    from npc_runtime.ort_backend import RuntimeOptions

    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    rewrite_manifest(copy, {"scene_words": {"weather": ["rain"]}})
    with pytest.raises(BundleError, match="scene_words"):
        RoleModelEngine(load_bundle(copy), RuntimeOptions(device="cpu", intra_op_threads=1))


def test_a_bundle_needing_a_runtime_feature_this_runtime_lacks_is_refused_by_name(tmp_path) -> None:
    """Scene words with the place need the place steered only under its hint: the export says so in
    ``requires``, the shipped manifest carries it, and a feature this runtime lacks is refused, named."""
    import json
    import shutil

    from export.make_bundle import add_scene_words, rewrite_manifest
    from npc_runtime.bundle import RUNTIME_FEATURES, load_bundle
    from npc_runtime.errors import BundleError

    shipped = json.loads((BUNDLE / "bundle.json").read_text(encoding="utf-8"))
    assert "location" in shipped["scene_words"] and shipped["requires"] == ["hinted-scene-steering"]
    assert set(shipped["requires"]) <= RUNTIME_FEATURES
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    rewrite_manifest(copy, {"requires": ["hinted-scene-steering", "time-travel"]})
    with pytest.raises(BundleError, match="needs 'time-travel', which this npc-runtime does not have"):
        load_bundle(copy)
    for bad in ("hinted-scene-steering", [1], [""]):
        rewrite_manifest(copy, {"requires": bad})
        with pytest.raises(BundleError, match="'requires' must be a list"):
            load_bundle(copy)
    manifest = json.loads((copy / "bundle.json").read_text(encoding="utf-8"))
    del manifest["requires"]
    (copy / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert load_bundle(copy).manifest.get("requires") is None  # a bundle from before the field
    add_scene_words(copy)
    assert load_bundle(copy).manifest["requires"] == ["hinted-scene-steering"]


def test_the_shipped_bundle_names_the_scenes_time_of_day_with_scene_steering() -> None:
    """The real model and scheduler: greeted at noon, the blacksmith wishes the player a fine morning (a greeting
    gets no looked-up time in its hint, so the steering is shown where there is none); with the default steering
    it is the noon ("A fine noon, time for a bite to eat")."""
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.grounding import DEFAULT_SCENE_BIAS
    from npc_runtime.ort_backend import RuntimeOptions
    from npc_runtime.scheduler import GenOptions, GenRequest, SchedulerConfig

    from .test_scheduler import _run

    engine = RoleModelEngine(load_bundle(BUNDLE), RuntimeOptions(device="cpu", intra_op_threads=1))
    assert engine.scene is not None
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    reqs = [GenRequest(key=bias, fingerprint=card.fingerprint(), card_text=card.card_text(),
                       knowledge=card.knowledge_text(voice=engine.prompt_voice), text="Hello there!",
                       context={"time_of_day": "noon", "weather": "clear", "nearby": "dog"}, history=[], image=None,
                       options=GenOptions(temperature=0.0, scene_bias=bias))
            for bias in (0.0, DEFAULT_SCENE_BIAS)]  # fmt: skip
    done = _run(engine, reqs, SchedulerConfig(max_batch=2))
    off, on = done[0.0][1]["text"], done[DEFAULT_SCENE_BIAS][1]["text"]
    assert "morning" in off.lower() and "noon" not in off.lower(), off
    assert "noon" in on.lower() and "morning" not in on.lower(), on


def test_the_shipped_model_names_first_the_creature_the_player_asks_about() -> None:
    """The guard at the gate with a cat nearer than the wolf: asked about the wolf, the hint (by the bundle's scene
    words, plurals included) and the reply put the wolf first; asked about the beasts around, the nearer cat."""
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from npc_runtime.ort_backend import RuntimeOptions
    from npc_runtime.scheduler import GenOptions, GenRequest, SchedulerConfig

    from .test_scheduler import _run

    engine = RoleModelEngine(load_bundle(BUNDLE), RuntimeOptions(device="cpu", intra_op_threads=1))
    gate = {"location": "the village gate", "time_of_day": "night", "weather": "rain", "nearby": "cat, wolf"}
    assert engine.looked_up("ask creatures", "", gate, "Are those wolves?") == "ask creatures: wolf, cat"
    card = PersonaPack.load(default_pack_dir()).get("guard")
    lines = ("What is that wolf doing here?", "What beasts are around?")
    reqs = [GenRequest(key=line, fingerprint=card.fingerprint(), card_text=card.card_text(),
                       knowledge=card.knowledge_text(voice=engine.prompt_voice), text=line, context=gate, history=[],
                       image=None, options=GenOptions(temperature=0.0))
            for line in lines]  # fmt: skip
    done = _run(engine, reqs, SchedulerConfig(max_batch=2))
    asked, around = (done[line][1]["text"].lower() for line in lines)
    assert "wolf" in asked and ("cat" not in asked or asked.index("wolf") < asked.index("cat")), asked
    assert "cat" in around and ("wolf" not in around or around.index("cat") < around.index("wolf")), around
