"""The training corpus: deterministic, held-out splits that really are held out, and labels the metrics can trust."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest

from export.corpus import (
    BANNED_OUT_OF_WORLD_WORDS,
    SPLITS,
    Corpus,
    CorpusConfig,
    build_corpus,
    main,
    render_example_scene,
)
from export.corpus_emotion import choose_emotion, likeliest_emotion, rule_emotion
from export.eval_metrics import macro_f1
from export.corpus_intents import INTENTS, OUT_OF_WORLD_INTENTS, PLAYER_TEMPLATES, SURROUNDINGS_INTENTS
from export.corpus_personas import PROCEDURAL_PREFIX, Speaker
from npc_runtime.emotion import EMOTIONS
from npc_runtime.personas import MAX_KNOWLEDGE_CHARS, PersonaCard
from npc_runtime.prompt import EOS, KNOW
from sample_game.scene import SceneFacts, render_scene

SMALL = dict(
    examples_per_persona=10,
    examples_per_bundled_persona=40,
    test_seen_per_persona=3,
    test_seen_per_bundled_persona=6,
    test_heldout_per_persona=6,
    n_scenes=600,
)
_BANNED = re.compile(r"\b(" + "|".join(re.escape(w) for w in BANNED_OUT_OF_WORLD_WORDS) + r")\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus(CorpusConfig(seed=0, **SMALL))


def _scene_key(scene: SceneFacts) -> tuple:
    return (scene.location, scene.time_of_day, scene.weather, tuple(sorted(scene.nearby)), scene.player_item)


def test_same_seed_same_corpus_and_other_seed_differs(corpus: Corpus) -> None:
    again = build_corpus(CorpusConfig(seed=0, **SMALL))
    assert again.digest() == corpus.digest()
    assert [ex.key() for ex in again.splits["train"][:50]] == [ex.key() for ex in corpus.splits["train"][:50]]
    other = build_corpus(CorpusConfig(seed=1, **SMALL))
    assert other.digest() != corpus.digest()
    assert {ex.reply for ex in other.splits["train"]} != {ex.reply for ex in corpus.splits["train"]}


def test_every_intent_has_many_paraphrases_and_some_are_held_out(corpus: Corpus) -> None:
    for intent, templates in PLAYER_TEMPLATES.items():
        assert len(templates) >= 15, intent
        assert len(set(templates)) == len(templates), intent
        held_out = {t for t in corpus.heldout_templates if t.startswith(intent + "/")}
        assert 2 <= len(held_out) <= len(templates) // 3, intent


def test_every_split_is_filled_with_the_expected_sizes(corpus: Corpus) -> None:
    sizes = {split: len(corpus.splits[split]) for split in SPLITS}
    n_seen_proc = 240 - len(corpus.heldout_persona_ids)
    assert sizes["train"] + sizes["val"] == 9 * 40 + n_seen_proc * 10
    assert sizes["val"] > 0
    assert sizes["test_seen"] == 9 * 6 + n_seen_proc * 3
    assert sizes["test_heldout"] == len(corpus.heldout_persona_ids) * 6
    stats = corpus.stats()
    assert {split: s["examples"] for split, s in stats["splits"].items()} == sizes


def test_at_least_200_procedural_personas_that_are_real_cards(corpus: Corpus) -> None:
    procedural = [card for pid, card in corpus.cards.items() if pid.startswith(PROCEDURAL_PREFIX)]
    assert len(procedural) >= 200
    assert len({card.name for card in procedural}) == len(procedural)
    for card in procedural:
        assert isinstance(card, PersonaCard)
        assert len(card.example_lines) >= 2 and card.speaking_style and card.traits
        # The whole knowledge line fits: nothing a reply copies is cut off at run time.
        assert len(card.knowledge_text(max_chars=10**6)) <= MAX_KNOWLEDGE_CHARS
    assert len({card.speaking_style for card in procedural}) > 150
    assert len({card.role for card in procedural}) >= 15


def test_held_out_personas_appear_only_in_test_heldout(corpus: Corpus) -> None:
    heldout = set(corpus.heldout_persona_ids)
    assert 10 <= len(heldout) <= 40
    assert not heldout & set(corpus.bundled_ids)
    assert {ex.persona_id for ex in corpus.splits["test_heldout"]} == heldout
    for split in ("train", "val", "test_seen"):
        assert not {ex.persona_id for ex in corpus.splits[split]} & heldout, split
    assert set(corpus.bundled_ids) <= {ex.persona_id for ex in corpus.splits["train"]}


def test_test_seen_has_seen_personas_but_unseen_templates_and_scenes(corpus: Corpus) -> None:
    train = corpus.splits["train"] + corpus.splits["val"]
    test = corpus.splits["test_seen"]
    assert {ex.persona_id for ex in test} <= {ex.persona_id for ex in train}
    train_templates = {ex.template_id for ex in train}
    assert not {ex.template_id for ex in test} & train_templates
    assert {ex.template_id for ex in test} <= corpus.heldout_templates
    assert not {_scene_key(ex.scene) for ex in test} & {_scene_key(ex.scene) for ex in train}
    # Paraphrases of history turns are held out too.
    train_players = {ex.player.lower().rstrip(".!?") for ex in train}
    held_out_lines = {p.lower().rstrip(".!?") for ex in test for p, _ in ex.history}
    assert len(held_out_lines - train_players) > 0.8 * len(held_out_lines)


def test_task_replies_carry_their_required_facts(corpus: Corpus) -> None:
    tasks = [ex for ex in corpus.examples() if ex.required_facts]
    assert len(tasks) > 0.2 * sum(len(v) for v in corpus.splits.values())
    assert {"buy", "ask_trade", "directions", "quest_ask", "quest_accept"} <= {ex.intent for ex in tasks}
    for ex in tasks:
        visible = (ex.card.knowledge_text() + " " + " ".join(ex.scene.to_context().values())).lower()
        for fact in ex.required_facts:
            assert fact.lower() in ex.reply.lower(), (fact, ex.reply)
            assert fact.lower() in visible, (fact, ex.persona_id)  # the model can copy it from its inputs
    prices = [ex for ex in tasks if ex.intent == "buy"]
    assert all(any(f.isdigit() for f in ex.required_facts) for ex in prices)


def test_surroundings_replies_name_the_true_scene_element(corpus: Corpus) -> None:
    asked = [ex for ex in corpus.examples() if ex.intent in SURROUNDINGS_INTENTS]
    assert asked
    with_element = [ex for ex in asked if ex.scene_element is not None]
    assert len(with_element) > 0.8 * len(asked)
    for ex in with_element:
        assert ex.scene_element.lower() in ex.reply.lower(), (ex.scene_element, ex.reply)
        assert ex.scene_element in ex.scene.to_context().values() or ex.scene_element in ex.scene.nearby
    assert all(ex.scene_element is None for ex in corpus.examples() if ex.intent not in SURROUNDINGS_INTENTS)


def test_out_of_world_prompts_get_in_character_deflections(corpus: Corpus) -> None:
    oow = [ex for ex in corpus.examples() if ex.out_of_world]
    assert {ex.intent for ex in oow} == set(OUT_OF_WORLD_INTENTS)
    assert all(ex.intent in OUT_OF_WORLD_INTENTS for ex in oow)
    assert any(_BANNED.search(ex.player) for ex in oow)  # the prompts do try
    for ex in corpus.examples():
        assert not _BANNED.search(ex.reply), ex.reply
        for _, npc in ex.history:
            assert not _BANNED.search(npc), npc


def test_labels_are_balanced_and_valid(corpus: Corpus) -> None:
    train = corpus.splits["train"]
    emotions = Counter(ex.emotion for ex in train)
    assert set(emotions) == set(EMOTIONS)
    assert emotions["neutral"] / len(train) < 0.4
    assert min(emotions.values()) / len(train) > 0.02
    assert set(INTENTS) == {ex.intent for ex in train}
    intensities = [ex.intensity for ex in train]
    assert all(0.0 <= x <= 1.0 for x in intensities)
    assert np.std(intensities) > 0.1


def test_emotion_follows_persona_and_scene(corpus: Corpus) -> None:
    guard, child = (Speaker.from_card(corpus.cards[pid]) for pid in ("guard", "child"))
    calm = SceneFacts(location="gate", time_of_day="noon", weather="clear")
    wolf = SceneFacts(location="gate", time_of_day="noon", weather="clear", nearby=("wolf",))
    top = likeliest_emotion
    assert top(guard, "threat", calm) == "anger"  # a guard stands firm
    assert top(child, "threat", calm) == "fear"  # a child gets scared
    assert top(child, "compliment", calm) == "joy"
    assert top(child, "directions", wolf) == "fear"
    assert top(guard, "insult", calm) == "anger"


def test_rule_labels_follow_from_the_situation() -> None:
    """With rule labels a turn's label is the rule's for its persona, intent and scene: a model that learns the
    rule can reach macro-F1 1.0, and the rule is no constant in disguise."""
    corpus = build_corpus(CorpusConfig(seed=0, emotion_labels="rule", **SMALL))
    examples = corpus.splits["test_seen"][::4]
    gold = [ex.emotion for ex in examples]
    rule = [rule_emotion(Speaker.from_card(ex.card), ex.intent, ex.scene) for ex in examples]
    assert gold == rule
    first = examples[0]
    assert likeliest_emotion(Speaker.from_card(first.card), first.intent, first.scene, labels="rule") == gold[0]
    constant = max(macro_f1(gold, [label] * len(gold)) for label in EMOTIONS)
    defaults = macro_f1(gold, [ex.card.default_emotion for ex in examples])
    assert max(constant, defaults) < 0.5 and len(set(gold)) == len(EMOTIONS)


def test_sampled_labels_are_draws_whose_ceiling_is_the_likeliest_label(corpus: Corpus) -> None:
    """The corpora before rule labels drew each label: naming the likeliest label beats every input-blind guess
    but stays below the issue's target, because the draw itself cannot be known."""
    examples = corpus.splits["test_seen"][::4]
    speakers = [Speaker.from_card(ex.card) for ex in examples]
    rng = random.Random(5)
    drawn = [choose_emotion(sp, ex.intent, ex.scene, rng, "sampled")[0] for sp, ex in zip(speakers, examples)]
    likeliest = [likeliest_emotion(sp, ex.intent, ex.scene) for sp, ex in zip(speakers, examples)]
    assert likeliest_emotion(speakers[0], examples[0].intent, examples[0].scene) == likeliest[0]
    ceiling = macro_f1(drawn, likeliest)
    constant = max(macro_f1(drawn, [label] * len(drawn)) for label in EMOTIONS)
    defaults = macro_f1(drawn, [ex.card.default_emotion for ex in examples])
    assert ceiling > max(constant, defaults) + 0.2
    assert ceiling < 0.8


def test_sampled_corpus_labels_leave_the_rule() -> None:
    small = {**SMALL, "n_procedural_personas": 6}
    with pytest.raises(ValueError, match="emotion_labels"):
        CorpusConfig(emotion_labels="vibes")
    for mode in ("rule", "sampled"):
        train = build_corpus(CorpusConfig(seed=0, emotion_labels=mode, **small)).splits["train"]
        off = np.mean([ex.emotion != rule_emotion(Speaker.from_card(ex.card), ex.intent, ex.scene) for ex in train])
        assert off == 0.0 if mode == "rule" else off > 0.2, (mode, off)


def test_replies_are_short_clean_and_varied(corpus: Corpus) -> None:
    train = corpus.splits["train"]
    for ex in train:
        assert ex.reply[-1] in ".!?", ex.reply
        assert 2 <= len(ex.reply.split()) <= 40, ex.reply
        assert "{" not in ex.reply and "}" not in ex.reply and "  " not in ex.reply
    assert len({ex.reply for ex in train}) > 0.9 * len(train)
    words = [len(ex.reply.split()) for ex in train]
    assert 10 <= sum(words) / len(words) <= 25


def test_history_is_present_in_some_examples(corpus: Corpus) -> None:
    lengths = Counter(len(ex.history) for ex in corpus.splits["train"])
    assert set(lengths) == {0, 1, 2, 3}
    assert lengths[0] < 0.7 * sum(lengths.values())
    accepts = [ex for ex in corpus.splits["train"] if ex.intent == "quest_accept"]
    assert accepts and all(ex.history for ex in accepts)


def test_decoder_text_lays_out_the_turn(corpus: Corpus) -> None:
    for ex in corpus.splits["train"][:300]:
        text = ex.decoder_text()
        assert text.startswith(KNOW) and text.endswith(EOS)
        assert ex.reply in text and ex.player in text
        assert f"weather: {ex.scene.weather}" in text


def test_bundled_scenes_name_their_npc_and_render_like_the_game(corpus: Corpus) -> None:
    bundled = [ex for ex in corpus.splits["train"] if ex.persona_id in corpus.bundled_ids]
    assert all(ex.scene.npc == ex.persona_id for ex in bundled)
    ex = bundled[0]
    image = ex.render((64, 48))
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, render_scene(ex.scene, size=(64, 48), seed=ex.scene_seed))
    np.testing.assert_array_equal(render_example_scene(ex.scene, (64, 48), ex.scene_seed), image)


def test_reference_lines_per_bundled_persona(corpus: Corpus) -> None:
    refs = corpus.reference_lines(max_per_persona=30)
    assert set(refs) == set(corpus.bundled_ids)
    for pid, lines in refs.items():
        assert lines[: len(corpus.cards[pid].example_lines)] == list(corpus.cards[pid].example_lines)
        assert 20 <= len(lines) <= 30 and len(set(lines)) == len(lines)


@pytest.mark.parametrize(
    "bad",
    [
        {"seed": 1.5},
        {"n_procedural_personas": -1},
        {"examples_per_persona": True},
        {"val_fraction": 1.0},
        {"heldout_template_fraction": 0.0},
        {"n_scenes": 5},
        {"pack_dir": 3},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        CorpusConfig(**bad)


def test_cli_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "--stats" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


@pytest.mark.slow
def test_default_corpus_size_and_balance() -> None:
    corpus = build_corpus()
    stats = corpus.stats()
    train = stats["splits"]["train"]
    assert 35_000 <= train["examples"] <= 45_000
    assert train["emotion_share"]["neutral"] < 0.4
    assert stats["personas"]["procedural"] >= 200
