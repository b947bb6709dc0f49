"""Voice steering: the markers read from a card, where the bias applies, and the real scheduler saying them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from npc_runtime.bundle import default_bundle_dir
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.scheduler import GenOptions, GenRequest, SchedulerConfig
from npc_runtime.facts import Steerings
from npc_runtime.voice import (FINISH_BIAS, VoiceSteering, card_markers, catchphrase_due, plain_words,
                               style_markers)  # fmt: skip

from .test_scheduler import _run

HANDWRITTEN = Path(__file__).resolve().parents[2] / "export" / "handwritten_cards"

# A toy vocabulary: each token's text, and an encoder that splits on spaces into whole tokens.
PIECES = ["<eos>", " Good", " day", ".", ",", " Sweet", " as", " clover", "!", " honeybun", " The", " hives", "?"]


def _encode(text: str) -> list[int]:
    out = []
    for word in text.replace("!", " !").replace(".", " .").replace(",", " ,").split():
        piece = word if word in ("!", ".", ",", "?") else " " + word
        out.append(PIECES.index(piece))
    return out


STEERING = VoiceSteering(_encode, PIECES, eos_id=0)
CARD = ("Hespera, the beekeeper. Traits: cheerful. Speaking style: warm; often says \"Sweet as clover!\"; calls "
        "people 'honeybun'. Says things like: \"Mind the smoke.\" Backstory: keeps hives.")


def _best(piece: str) -> int:
    """The row's likeliest next token: ``piece``."""
    return PIECES.index(piece)


def _ids(*pieces: str) -> list[int]:
    return [PIECES.index(p) for p in pieces]


def test_markers_come_from_the_speaking_style_only() -> None:
    assert style_markers("gruff; often says \"Mind the edge.\"; calls people 'lad'") == {
        "catchphrase": "Mind the edge.", "address": "lad"}
    assert style_markers("plain and polite") == {}
    assert card_markers(CARD) == {"catchphrase": "Sweet as clover!", "address": "honeybun"}
    # a quoted example line is not a catchphrase: only what the style says the persona says
    assert card_markers(CARD.replace('often says "Sweet as clover!"; ', "")) == {"address": "honeybun"}
    cards = {card.id: card for card in PersonaPack.load(default_pack_dir())}
    assert card_markers(cards["blacksmith"].card_text()) == {"catchphrase": "Mind the edge.", "address": "lad"}


def test_markers_are_nudged_only_where_a_sentence_or_the_reply_would_end() -> None:
    row = STEERING.row(CARD, [], 3.0, "Hello.", catchphrase_rate=1.0)
    assert row is not None
    assert row.boost(_best(" Good")) == ([], [])  # the reply's start: nothing
    row.advance(PIECES.index(" Good"))
    assert row.boost(_best(",")) == ([], [])  # a comma the model wants anyway: nothing (a fact may follow it)
    row.advance(PIECES.index(","))
    assert row.boost(_best(" day")) == ([], [])  # after the model's own comma, no address
    row.advance(PIECES.index(" day"))
    # the sentence would end after a word: a comma is nudged in; taken, the address and that "!" are finished
    assert row.boost(_best("!")) == (_ids(","), [3.0])
    row.advance(PIECES.index(","))
    for piece in (" honeybun", "!"):
        assert row.boost(_best(".")) == (_ids(piece), [FINISH_BIAS])
        row.advance(PIECES.index(piece))
    assert row.said == {"address"}
    row.advance(PIECES.index(" The"))
    assert row.boost(_best(".")) == ([], [])  # said once: no more
    row.advance(PIECES.index("."))
    assert row.boost(_best(" The")) == ([], [])  # the reply goes on: no catchphrase
    # it would end here and the catchphrase is drawn: it is said, and then the reply ends
    assert row.boost(_best("<eos>")) == (_ids(" Sweet"), [FINISH_BIAS])
    row.advance(PIECES.index(" Sweet"))
    for piece in (" as", " clover", "!", "<eos>"):
        assert row.boost(_best(" The")) == (_ids(piece), [FINISH_BIAS])
        row.advance(PIECES.index(piece))
    assert row.said == {"address", "catchphrase"} and row.boost(_best("<eos>")) == ([], [])


def test_each_marker_gets_one_try_per_reply() -> None:
    row = STEERING.row(CARD, [], 3.0, "Hello.", catchphrase_rate=1.0)
    row.advance(PIECES.index(" Good"))
    assert row.boost(_best(".")) == (_ids(","), [3.0])
    row.advance(PIECES.index("."))  # the comma refused
    assert row.boost(_best("<eos>")) == (_ids(" Sweet"), [FINISH_BIAS])
    row.advance(PIECES.index(" Good"))  # the catchphrase refused even so (a ban)
    assert row.boost(_best(".")) == ([], [])  # no second try for the address
    row.advance(PIECES.index("."))
    assert row.boost(_best("<eos>")) == ([], [])  # nor for the catchphrase
    assert row.tried == {"address", "catchphrase"} and not row.said


def test_a_marker_that_would_be_cut_off_is_not_begun() -> None:
    row = STEERING.row(CARD, [], 3.0, "Hello.", catchphrase_rate=1.0)
    row.advance(PIECES.index(" Good"))
    assert row.boost(_best("."), room=2) == ([], [])  # ", honeybun" and "." need 3 tokens
    assert row.boost(_best("."), room=4) == (_ids(","), [3.0])
    row.advance(PIECES.index("."))
    assert row.boost(_best("<eos>"), room=4) == ([], [])  # "Sweet as clover!" and the end need 5
    assert row.boost(_best("<eos>"), room=5) == (_ids(" Sweet"), [FINISH_BIAS])


def test_a_marker_said_unprompted_counts_and_a_refused_finish_is_let_go() -> None:
    row = STEERING.row(CARD, [], 3.0, "Hello.", catchphrase_rate=1.0)
    for piece in (" Good", " Sweet", " as", " clover", "!"):  # said mid-reply, of the model's own accord
        row.advance(PIECES.index(piece))
    assert row.said == {"catchphrase"} and not row.tried
    row.advance(PIECES.index(" day"))
    assert row.boost(_best(".")) == (_ids(","), [3.0])
    row.advance(PIECES.index(","))
    row.boost(_best("."))
    row.advance(PIECES.index(" The"))  # even the finishing push refused (a ban): nothing more is pushed
    assert row.boost(_best(".")) == ([], []) and "address" not in row.said


def test_no_steering_without_markers_bias_or_after_a_catchphrase_last_turn() -> None:
    assert STEERING.row(CARD, [], 0.0) is None  # the rate defaults to 0
    assert STEERING.row(CARD, [], 0.0, "Hello.", catchphrase_rate=0.0) is None
    assert STEERING.row("Bob, the miller. Speaking style: plain. Says things like: \"Hi.\"", [], 3.0, "Hello.",
                        catchphrase_rate=1.0) is None  # fmt: skip
    row = STEERING.row(CARD, [("Hi.", "Sweet as clover! Hello.")], 3.0, "Hello.", catchphrase_rate=1.0)
    assert row is not None and set(row.sequences) == {"address"}  # a catchphrase in every line is a tic
    row = STEERING.row(CARD, [("Hi.", "sweet as CLOVER. Hello, Honeybun!")], 3.0, "Hello.", catchphrase_rate=1.0)
    assert row is None  # so is an address; matched as words, whatever the case and punctuation
    # each setting alone: the address without the catchphrase, the catchphrase without the address
    assert set(STEERING.row(CARD, [], 3.0, "Hello.", catchphrase_rate=0.0).sequences) == {"address"}
    assert set(STEERING.row(CARD, [], 0.0, "Hello.", catchphrase_rate=1.0).sequences) == {"catchphrase"}


def test_the_catchphrase_ends_a_drawn_share_of_replies() -> None:
    lines = [f"Player line number {i}?" for i in range(3000)]
    for rate in (0.1, 0.3, 0.6):
        share = sum(catchphrase_due("Sweet as clover!", line, [], rate) for line in lines) / len(lines)
        assert abs(share - rate) < 0.03, (rate, share)
    # fixed by the request: the same line, history and catchphrase always draw the same
    history = [("Hi.", "Good day."), ("Honey?", "The best in the valley.")]
    assert [catchphrase_due("Sweet as clover!", line, history, 0.3) for line in lines[:200]] == \
        [catchphrase_due("Sweet as clover!", line, list(history), 0.3) for line in lines[:200]]
    # drawn apart across a conversation's turns, across NPCs asked the same line, and past the exchanges a server
    # keeps (the same number of them, other last replies)
    by_turn = [catchphrase_due("Sweet as clover!", "Hello.", [("Hi.", "Good day.")] * turn, 0.3) for turn in range(60)]
    by_phrase = [catchphrase_due(f"Phrase {i}!", "Hello.", [], 0.3) for i in range(60)]
    by_reply = [catchphrase_due("Sweet as clover!", "Hello.", [("Hi.", "Good day.")] * 7 + [("Hi.", f"Reply {i}.")],
                                0.3) for i in range(60)]  # fmt: skip
    assert all(5 <= sum(draws) <= 35 for draws in (by_turn, by_phrase, by_reply))
    assert not any(catchphrase_due("Sweet as clover!", line, [], 0.0) for line in lines[:200])
    assert all(catchphrase_due("Sweet as clover!", line, [], 1.0) for line in lines[:200])
    drawn = [line for line in lines[:50] if catchphrase_due("Sweet as clover!", line, [], 0.3)]
    assert drawn and all("catchphrase" in STEERING.row(CARD, [], 3.0, line, 0.3).sequences for line in drawn)
    kept = [line for line in lines[:50] if not catchphrase_due("Sweet as clover!", line, [], 0.3)]
    assert kept and all("catchphrase" not in STEERING.row(CARD, [], 3.0, line, 0.3).sequences for line in kept)


def test_a_catchphrase_without_its_own_sentence_end_gets_a_full_stop() -> None:
    card = CARD.replace('often says "Sweet as clover!"', 'often says "Sweet as clover"')
    row = STEERING.row(card, [], 0.0, "Hello.", catchphrase_rate=1.0)
    row.advance(PIECES.index(" Good"))
    row.advance(PIECES.index("."))
    assert row.boost(_best("<eos>"), room=4) == ([], [])  # three words, the full stop and the end need 5
    assert row.boost(_best("<eos>"), room=5) == (_ids(" Sweet"), [FINISH_BIAS])
    row.advance(PIECES.index(" Sweet"))
    for piece in (" as", " clover", ".", "<eos>"):
        assert row.boost(_best(" The")) == (_ids(piece), [FINISH_BIAS])
        row.advance(PIECES.index(piece))

class _Offering:
    """Another steering of the reply that offers a word at every step (as a price or the scene's weather can)."""

    def busy(self) -> bool:
        return False

    def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
        return _ids(" hives"), [8.0]

    def advance(self, token: int) -> None:
        pass


def test_a_begun_catchphrase_is_not_cut_in_on_by_another_steering() -> None:
    voice = STEERING.row(CARD, [], 0.0, "Hello.", catchphrase_rate=1.0)
    both = Steerings([_Offering(), voice])  # the other steering comes first in precedence
    both.advance(PIECES.index(" Good"))
    both.advance(PIECES.index("."))
    assert voice.boost(_best("<eos>")) == (_ids(" Sweet"), [FINISH_BIAS])  # taken where the reply would end
    both.advance(PIECES.index(" Sweet"))
    for piece in (" as", " clover", "!"):
        assert both.boost(_best("<eos>")) == (_ids(piece), [FINISH_BIAS])  # not " hives" ("Sweet as hives")
        both.advance(PIECES.index(piece))
    assert both.boost(_best(".")) == (_ids("<eos>"), [FINISH_BIAS])
    both.advance(PIECES.index("<eos>"))
    assert both.boost(_best(".")) == (_ids(" hives"), [8.0])  # nothing left to finish: precedence as before


class _EndingEngine:
    """The real tiny engine whose every reply wants to be ".": its prefill favours "." and its steps <eos> (an
    untrained model's logits would rarely reach the places the steering acts at)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self._stop = engine.tokenizer.token_to_id(".")

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def prefill(self, items):
        result = self._engine.prefill(items)
        result.logits[:, self._stop] = result.logits.max(axis=1) + 10.0
        return result

    def decode_step(self, *args):
        logits = self._engine.decode_step(*args).copy()
        logits[:, self.eos_id] = logits.max(axis=1) + 10.0
        return logits


def test_the_scheduler_says_the_catchphrase_where_the_reply_would_end(tiny_engine) -> None:
    card = next(c for c in PersonaPack.load(default_pack_dir()) if c.id == "blacksmith")
    base = GenRequest(key=0, fingerprint=card.fingerprint(), card_text=card.card_text(),
                      knowledge=tiny_engine.knowledge_of(card), text="Hello there.", context={}, history=[],
                      image=None, options=GenOptions(temperature=0.0, max_tokens=12, voice_bias=0.0,
                                                     catchphrase_rate=0.0))  # fmt: skip
    steered = dataclasses.replace(base, key=1, options=dataclasses.replace(base.options, catchphrase_rate=1.0))
    last_turn = dataclasses.replace(steered, key=2, history=[("Hi.", "Mind the edge.")])
    done = _run(_EndingEngine(tiny_engine), [base, steered, last_turn], SchedulerConfig(max_batch=4))
    assert done[0][1]["text"] == "." and done[2][1]["text"] == "."  # off; said in the previous reply
    assert done[1][0] == "reply" and done[1][1]["text"] == ". Mind the edge."
    # the server's settings, not the protocol's: a request's options never change them
    assert GenOptions.from_protocol(_protocol_options(), GenOptions(voice_bias=1.5)).voice_bias == 1.5
    assert GenOptions.from_protocol(_protocol_options(), GenOptions(catchphrase_rate=0.0)).catchphrase_rate == 0.0
    assert GenOptions.from_protocol(_protocol_options(), GenOptions(fact_bias=3.0)).fact_bias == 3.0
    assert GenOptions.from_protocol(_protocol_options(), GenOptions(scene_bias=0.0)).scene_bias == 0.0


def _protocol_options():
    from npc_runtime.protocol import SayOptions

    return SayOptions()



@pytest.mark.skipif(not (default_bundle_dir() / "bundle.json").exists(), reason="no shipped bundle")
def test_the_shipped_model_says_hand_written_cards_addresses_when_steered() -> None:
    """Cards written after training (addresses such as 'honeybun' and 'wayfarer', words no training card uses) get
    their own form of address from the shipped model with the server's default steering, and hardly without it
    (the evaluation's 36 questions: 20 with it, 2 without; docs/eval.md)."""
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from sample_game.scene import SceneFacts

    engine = RoleModelEngine(load_bundle(default_bundle_dir()))
    cards = list(PersonaPack.load(HANDWRITTEN))
    scene = SceneFacts(location="market", time_of_day="evening", weather="fog").to_context()
    asked = [(card, line) for card in cards for line in ("Good day to you!", "What's the weather like?")]

    def with_address(bias: float) -> int:
        reqs = [GenRequest(key=i, fingerprint=card.fingerprint(), card_text=card.card_text(),
                           knowledge=engine.knowledge_of(card), text=line, context=scene, history=[], image=None,
                           options=GenOptions(temperature=0.0, max_tokens=48, voice_bias=bias))
                for i, (card, line) in enumerate(asked)]  # fmt: skip
        done = _run(engine, reqs, SchedulerConfig(max_batch=len(reqs)))
        return sum(f" {card_markers(card.card_text())['address']} " in f" {plain_words(done[i][1]['text'])} "
                   for i, (card, _) in enumerate(asked))  # fmt: skip

    steered, plain = with_address(GenOptions().voice_bias), with_address(0.0)
    assert steered >= len(asked) // 3 and steered >= plain + 4, (steered, plain)


@pytest.mark.skipif(not (default_bundle_dir() / "bundle.json").exists(), reason="no shipped bundle")
def test_the_shipped_model_says_hand_written_cards_catchphrases_where_drawn() -> None:
    """A catchphrase written after training ("Sweet as clover!", "Salt and oars!") is never begun by the shipped
    model alone; drawn for every reply, the replies that reach their end say it whole and end there."""
    from npc_runtime.bundle import load_bundle
    from npc_runtime.engine import RoleModelEngine
    from sample_game.scene import SceneFacts

    engine = RoleModelEngine(load_bundle(default_bundle_dir()))
    cards = list(PersonaPack.load(HANDWRITTEN))
    scene = SceneFacts(location="market", time_of_day="evening", weather="fog").to_context()
    asked = [(card, line) for card in cards for line in ("Who are you?", "What's the weather like?")]

    def replies(rate: float) -> list[str]:
        reqs = [GenRequest(key=i, fingerprint=card.fingerprint(), card_text=card.card_text(),
                           knowledge=engine.knowledge_of(card), text=line, context=scene, history=[], image=None,
                           options=GenOptions(temperature=0.0, max_tokens=48, catchphrase_rate=rate))
                for i, (card, line) in enumerate(asked)]  # fmt: skip
        done = _run(engine, reqs, SchedulerConfig(max_batch=len(reqs)))
        return [done[i][1]["text"] for i in range(len(asked))]

    def phrase(card) -> str:
        return plain_words(card_markers(card.card_text())["catchphrase"])

    drawn, plain = replies(1.0), replies(0.0)
    assert not any(phrase(card) in plain_words(text) for (card, _), text in zip(asked, plain)), plain
    ending = [plain_words(text).endswith(phrase(card)) for (card, _), text in zip(asked, drawn)]
    assert sum(ending) >= len(asked) * 3 // 4, drawn
