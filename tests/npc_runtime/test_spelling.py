"""The spelling constraint and the n-gram ban: words a reply may spell and how the sampler obeys them (the
scheduler with a lexicon bundle: ``test_scheduler.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npc_runtime.engine import RoleModelEngine
from npc_runtime.prompt import FIELD_SEPARATOR
from npc_runtime.sampling import sample_token, sample_tokens
from npc_runtime.scheduler import GenOptions
from npc_runtime.spelling import Lexicon, lexicon_words, read_lexicon, write_lexicon

#: Token texts of a toy vocabulary: id 0 ends a reply.
PIECES = ["", " the", " be", "e", "keep", "er", " O", "t", "il", "ie", ",", "'", "s", "\ufffd", " mill", " beer", "x"]
END, THE, BE, E, KEEP, ER, O, T, IL, IE, COMMA, APOS, S, BYTE, MILL, BEER, X = range(len(PIECES))
LEXICON = Lexicon(lexicon_words(["the mill, the beer.", "The miller's beer"]), PIECES, end_id=END)


def _row(*texts: str):
    return LEXICON.row(texts)


def _says(row, tokens: list[int]) -> list[bool]:
    out = []
    for token in tokens:
        out.append(row.allows(token))
        row.advance(token)
    return out


def test_lexicon_words_are_case_folded_letter_runs_with_inner_apostrophes(tmp_path: Path) -> None:
    assert lexicon_words(["The Miller's BEER, 12 coins'", "don't—stop"]) == {
        "the", "miller's", "beer", "coins", "don't", "stop"}  # fmt: skip
    path = write_lexicon({"b", "a"}, tmp_path / "lexicon.txt")
    assert path.read_text(encoding="utf-8") == "a\nb\n"
    assert read_lexicon(path) == {"a", "b"}


def test_a_card_word_is_spelled_piece_by_piece_and_no_other() -> None:
    row = _row("name: Ottilie | role: beekeeper")
    assert _says(row, [THE, BE, E, KEEP, ER, COMMA, O, T, T, IL, IE, END]) == [True] * 12
    row = _row("name: Ottilie")
    assert _says(row, [O, T, T]) == [True] * 3
    assert not row.allows(T) and not row.allows(X)  # "ottt", "ottx" begin no word
    assert row.allows(IL)
    # without the card, neither word exists: "bek" and "o" begin nothing in this lexicon ("bee" begins "beer")
    row = _row("no card")
    assert _says(row, [BE]) == [True]
    assert not row.allows(KEEP) and not row.allows(MILL) and row.allows(E) and row.allows(ER)  # "be" is no word
    assert not _row("no card").allows(O)


def test_a_word_must_be_whole_before_a_boundary_or_the_end() -> None:
    row = _row("role: beekeeper")
    _says(row, [BE, E])  # "bee": a beginning, not a word
    assert not row.allows(COMMA) and not row.allows(MILL) and not row.allows(END)
    assert not row.ends_ok()
    row.advance(KEEP)
    row.advance(ER)
    assert row.allows(COMMA) and row.allows(END) and row.ends_ok()


def test_apostrophes_only_inside_known_words() -> None:
    row = _row("")
    row.advance(THE)
    assert not row.allows(APOS)  # "the'" begins no word
    row = LEXICON.row(["the miller's beer"])
    for token in (MILL, ER):
        row.advance(token)
    assert row.allows(APOS)
    row.advance(APOS)
    assert row.allows(S) and not row.allows(APOS)  # "miller''" is no word


def test_pieces_of_a_multibyte_character_only_where_the_request_has_some() -> None:
    assert not _row("plain ASCII card").allows(BYTE)
    row = _row("name: Zoë")
    assert row.allows(BYTE)
    row.advance(BYTE)
    assert row.allows(X)  # the word is unchecked until it ends
    row.advance(COMMA)
    assert not row.allows(X)


def test_greedy_takes_the_best_allowed_token_and_falls_back_when_none_is() -> None:
    logits = np.full(len(PIECES), -5.0)
    logits[[X, KEEP, ER]] = [3.0, 2.0, 1.0]
    row = _row("")
    row.advance(BE)
    rng = np.random.default_rng(0)
    none = np.array([], dtype=np.int64)
    greedy = GenOptions(temperature=0.0)
    assert sample_token(logits, [BE], greedy, rng, none) == X  # unconstrained
    assert sample_token(logits, [BE], greedy, rng, none, row.allows) == ER  # "bex", "bekeep" refused
    # nothing allowed but a token far down the list: the whole vocabulary is searched
    only_end = np.full(len(PIECES), -9.0)
    only_end[X] = 5.0
    assert sample_token(only_end, [BE], greedy, rng, none, row.allows) != X
    # nothing allowed at all: the model's own choice, so a reply never stalls
    assert sample_token(logits, [], greedy, rng, none, lambda token: False) == X


def test_sampling_draws_only_allowed_tokens_and_stays_seeded() -> None:
    logits = np.zeros(len(PIECES))
    logits[[X, KEEP, E, ER]] = [4.0, 3.5, 1.0, 1.0]
    row = _row("")
    row.advance(BE)
    opts = GenOptions(temperature=1.0, top_k=0, top_p=1.0)
    none = np.array([], dtype=np.int64)
    draws = [sample_token(logits, [BE], opts, np.random.default_rng(s), none, row.allows) for s in range(200)]
    assert all(row.allows(t) for t in draws) and {E, ER} <= set(draws)
    again = [sample_token(logits, [BE], opts, np.random.default_rng(s), none, row.allows) for s in range(200)]
    assert draws == again
    free = [sample_token(logits, [BE], opts, np.random.default_rng(s), none) for s in range(200)]
    assert X in free and KEEP in free  # the control: unconstrained, the refused tokens are drawn


def test_no_repeat_ngram_bans_the_token_that_would_repeat_an_ngram() -> None:
    logits = np.zeros(8)
    logits[3] = 5.0  # the model wants token 3 again and again
    none = np.array([], dtype=np.int64)
    rng = np.random.default_rng(0)
    cases = [(4, [1, 2, 3, 1, 2, 3, 1, 2], True), (4, [1, 2, 3, 1, 2], False), (2, [3, 5], False),
             (2, [5, 3, 5], True), (1, [3], True), (0, [3, 3], False)]  # fmt: skip
    for n, generated, banned in cases:
        opts = GenOptions(temperature=0.0, repetition_penalty=1.0, no_repeat_ngram=n)
        assert (sample_token(logits, generated, opts, rng, none) != 3) == banned, (n, generated)
    # sampled rows obey it too
    opts = GenOptions(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, no_repeat_ngram=2)
    draws = {sample_token(np.zeros(4), [1, 2, 1], opts, np.random.default_rng(s), none) for s in range(100)}
    assert draws == {0, 1, 3}


def test_a_word_the_ngram_ban_would_cut_is_still_finished() -> None:
    row = _row("role: beekeeper")
    generated = [BE, E, KEEP, ER, COMMA, BE, E, KEEP]  # "beekeeper, beekeep": only "er" finishes the word
    for token in generated:
        row.advance(token)
    logits = np.zeros(len(PIECES))
    logits[ER] = 3.0
    opts = GenOptions(temperature=0.0, repetition_penalty=1.0, no_repeat_ngram=4)  # "be e keep" + "er" repeats
    banned = np.array([E], dtype=np.int64)  # "beekeepe" would begin the word too: take that way out
    assert sample_token(logits, generated, opts, np.random.default_rng(0), banned) != ER  # the ban alone
    assert sample_token(logits, generated, opts, np.random.default_rng(0), banned, row.allows) == ER


def test_batched_constrained_sampling_equals_row_by_row() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, len(PIECES))) * 3
    options = [GenOptions(temperature=0.0), GenOptions(temperature=0.9, top_k=5), GenOptions(temperature=0.0),
               GenOptions(temperature=1.1, top_k=0, top_p=0.95)]  # fmt: skip
    generated = [[BE], [O], [], [THE]]
    rows = []
    for text, prior in zip(["beekeeper", "Ottilie", "", "the"], generated):
        row = _row(text)
        for token in prior:
            row.advance(token)
        rows.append(row)
    none = np.array([END], dtype=np.int64)
    batched = sample_tokens(logits, generated, options, [np.random.default_rng(s) for s in range(4)], none,
                            [r.allows for r in rows])  # fmt: skip
    alone = [sample_token(logits[i], generated[i], options[i], np.random.default_rng(i), none, rows[i].allows)
             for i in range(4)]  # fmt: skip
    assert batched.tolist() == alone
    assert all(rows[i].allows(t) for i, t in enumerate(alone))


def test_replies_never_carry_the_field_separator(tiny_engine: RoleModelEngine) -> None:
    separators = [i for i in range(tiny_engine.tokenizer.get_vocab_size())
                  if FIELD_SEPARATOR.strip() in tiny_engine.decode([i])]  # fmt: skip
    assert separators and set(separators) <= set(tiny_engine.banned_ids.tolist())
    assert tiny_engine.lexicon is None  # the plain tiny bundle has no lexicon: no spelling constraint
