"""Tests of the decoder tokenizer and of turns encoded the way the runtime lays them out."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models

from export.tiny import tiny_corpus
from export.tokenizer import IGNORE_INDEX, encode_turn, load_tokenizer, special_token_ids, train_tokenizer
from npc_runtime.prompt import BOS, EOS, NPC, PREFIX, SPECIAL_TOKENS, build_decoder_text

TEXTS = [
    "Aye, forged this very morning. Mind the edge.",
    "Grüß Gott! Ça va? ¿Dónde está el río? Ψ λ 東京 😀",
    "  two  spaces,\ttabs and\nnew lines  ",
    "MiXeD CaSe StAyS",
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_keeps_case_and_non_ascii(tiny_tokenizer: Tokenizer, text: str) -> None:
    ids = tiny_tokenizer.encode(text).ids
    assert 1 not in ids  # byte-level: nothing is ever unknown
    assert tiny_tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_have_fixed_ids(tiny_tokenizer: Tokenizer) -> None:
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tiny_tokenizer.token_to_id(token) == i
        assert tiny_tokenizer.id_to_token(i) == token
    assert special_token_ids() == {token: i for i, token in enumerate(SPECIAL_TOKENS)}


def test_no_tokens_added_automatically(tiny_tokenizer: Tokenizer) -> None:
    ids = tiny_tokenizer.encode("hello").ids
    assert all(i >= len(SPECIAL_TOKENS) for i in ids)


def test_special_tokens_are_single_tokens_in_decoder_text(tiny_tokenizer: Tokenizer) -> None:
    text = build_decoder_text(
        "name: Brenna | wares: longsword 40",
        {"time_of_day": "night", "location": "forge"},
        [("Hello.", "Evening.")],
        "Swords?",
        reply="Aye.",
    )
    ids = tiny_tokenizer.encode(text).ids
    ids_of = special_token_ids()
    assert ids[0] == ids_of["<know>"]
    assert ids.count(ids_of["<ctx>"]) == 1
    assert ids.count(ids_of["<player>"]) == 2
    assert ids.count(ids_of[NPC]) == 2
    assert ids[-1] == ids_of[EOS]
    assert tiny_tokenizer.decode(ids, skip_special_tokens=False) == text


def test_saved_tokenizer_loads_and_wrong_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tok.json"
    trained = train_tokenizer(tiny_corpus(60), 300, path)
    loaded = load_tokenizer(path)
    assert loaded.encode("Brenna's forge").ids == trained.encode("Brenna's forge").ids
    assert loaded.get_vocab_size() == 300
    bad = Tokenizer(models.WordLevel({"<eos>": 0, "<pad>": 1}, unk_token="<pad>"))
    bad.save(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="special token"):
        load_tokenizer(tmp_path / "bad.json")


def test_vocab_too_small_is_rejected() -> None:
    with pytest.raises(ValueError):
        train_tokenizer(["abc"], vocab_size=100)


def test_encode_turn_layout_and_labels(tiny_tokenizer: Tokenizer) -> None:
    ids_of = special_token_ids()
    args = ("name: Mira", {"weather": "fog"}, [], "Hello there!")
    prompt = encode_turn(tiny_tokenizer, 5, *args)
    assert prompt.ids[:6] == [ids_of[PREFIX]] * 5 + [ids_of[BOS]]
    assert prompt.prefix_mask == [1.0] * 5 + [0.0] * (len(prompt.ids) - 5)
    assert prompt.ids[prompt.emotion_position] == ids_of[NPC]
    assert prompt.labels == [IGNORE_INDEX] * len(prompt.ids)

    turn = encode_turn(tiny_tokenizer, 5, *args, reply="Evening, traveller.")
    assert turn.ids[: len(prompt.ids)] == prompt.ids
    assert turn.prompt_length == prompt.prompt_length
    trained = [(pos, label) for pos, label in enumerate(turn.labels) if label != IGNORE_INDEX]
    assert trained[0][0] == prompt.emotion_position  # the final <npc> predicts the first reply token
    assert [label for _, label in trained] == turn.ids[prompt.prompt_length :]
    assert turn.ids[-1] == ids_of[EOS] and turn.labels[-1] == IGNORE_INDEX
    reply_text = tiny_tokenizer.decode(turn.ids[prompt.prompt_length : -1], skip_special_tokens=False)
    assert reply_text == " Evening, traveller."
