"""Generated voice markers: rewriting a card's catchphrase and address, and the training augmentation."""

from __future__ import annotations

import random

import pytest

from export.corpus import build_corpus
from export.corpus_personas import _ADDRESSES, _CATCHPHRASES, PROCEDURAL_PREFIX
from export.dataset import DataConfig, _swap_voices
from export.eval_metrics import contains_phrase, voice_markers, words
from export.evaluate import NOVEL_ADDRESSES, NOVEL_CATCHPHRASES
from export.voice_swap import ADDRESS_WORDS, random_markers, swap_voice
from npc_runtime.personas import PersonaPack, default_pack_dir


def test_generated_markers_never_use_the_evals_new_voice_words() -> None:
    """The eval's rewritten-card control must stay a voice no training turn has: not one of its words is generated."""
    function_words = {"and", "the", "up", "with", "my", "keep"}
    eval_words = {w for m in (*NOVEL_CATCHPHRASES, *NOVEL_ADDRESSES) for w in words(m)} - function_words
    rng = random.Random(0)
    drawn = [random_markers(rng) for _ in range(3000)]
    generated = {w for m in drawn for text in m.values() for w in words(text)}
    assert not eval_words & generated
    phrases = {m["catchphrase"] for m in drawn}
    assert len(phrases) > 1000  # over a thousand distinct in 3,000 draws: not a list to learn by heart
    assert len(phrases & set(_CATCHPHRASES)) <= 2  # mostly new to the corpus ("By the anvil!" can come up)
    assert not set(ADDRESS_WORDS) & {a for g in _ADDRESSES.values() for a in g}


def test_swap_voice_rewrites_card_and_texts_keeping_case() -> None:
    card = PersonaPack.load(default_pack_dir()).get("blacksmith")
    old = voice_markers(card)  # "Mind the edge." and "lad"
    new = {"catchphrase": "By the teapot!", "address": "cub"}
    swapped, texts = swap_voice(card, old, new, ["Lad, the longsword is 40. Mind the edge.", "A ladder? No, lad."])
    assert voice_markers(swapped) == new
    assert texts == ["Cub, the longsword is 40. By the teapot!", "A ladder? No, cub."]  # whole words only
    assert swapped.knowledge == card.knowledge and swapped.name == card.name


def test_training_turns_of_generated_personas_get_new_markers_consistently() -> None:
    corpus = build_corpus(DataConfig(n_procedural_personas=6, examples_per_persona=30, examples_per_bundled_persona=4,
                                     n_scenes=200).corpus_config())  # fmt: skip
    train = corpus.splits["train"]
    out = _swap_voices(train, DataConfig(voice_swap=0.5), "train")
    assert out == _swap_voices(train, DataConfig(voice_swap=0.5), "train")  # fixed by the seed
    changed = [(a, b) for a, b in zip(train, out) if a is not b]
    assert all(a.persona_id.startswith(PROCEDURAL_PREFIX) for a, _ in changed)
    procedural = sum(ex.persona_id.startswith(PROCEDURAL_PREFIX) for ex in train)
    assert 0.3 * procedural < len(changed) < 0.7 * procedural
    for before, after in changed:
        old, new = voice_markers(before.card), voice_markers(after.card)
        assert new != old and new["catchphrase"] in after.card.knowledge_text(voice=True)
        if contains_phrase(before.reply, old["catchphrase"]):
            assert contains_phrase(after.reply, new["catchphrase"])
            assert not contains_phrase(after.reply, old["catchphrase"])
        assert [p for p, _ in after.history] == [p for p, _ in before.history]  # player lines untouched
    assert _swap_voices(train, DataConfig(voice_swap=0.0), "train") == list(train)


def test_voice_swap_share_is_validated() -> None:
    with pytest.raises(ValueError, match="voice_swap"):
        DataConfig(voice_swap=1.0)
