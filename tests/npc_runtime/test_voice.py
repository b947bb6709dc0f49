"""Voice steering: the markers read from a card, where the bias applies, and the real scheduler saying them."""

from __future__ import annotations

import dataclasses

from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.scheduler import GenOptions, GenRequest, SchedulerConfig
from npc_runtime.voice import CONTINUE_FACTOR, VoiceSteering, card_markers, style_markers

from .test_scheduler import _run

# A toy vocabulary: each token's text, and an encoder that splits on spaces into whole tokens.
PIECES = ["<eos>", " Good", " day", ".", ",", " Sweet", " as", " clover", "!", " honeybun", " The", " hives", "?"]


def _encode(text: str) -> list[int]:
    out = []
    for word in text.replace("!", " !").replace(".", " .").replace(",", " ,").split():
        piece = word if word in ("!", ".", ",", "?") else " " + word
        out.append(PIECES.index(piece))
    return out


STEERING = VoiceSteering(_encode, PIECES)
CARD = ("Hespera, the beekeeper. Traits: cheerful. Speaking style: warm; often says \"Sweet as clover!\"; calls "
        "people 'honeybun'. Says things like: \"Mind the smoke.\" Backstory: keeps hives.")


def test_markers_come_from_the_speaking_style_only() -> None:
    assert style_markers("gruff; often says \"Mind the edge.\"; calls people 'lad'") == {
        "catchphrase": "Mind the edge.", "address": "lad"}
    assert style_markers("plain and polite") == {}
    assert card_markers(CARD) == {"catchphrase": "Sweet as clover!", "address": "honeybun"}
    # a quoted example line is not a catchphrase: only what the style says the persona says
    assert card_markers(CARD.replace('often says "Sweet as clover!"; ', "")) == {"address": "honeybun"}
    cards = {card.id: card for card in PersonaPack.load(default_pack_dir())}
    assert card_markers(cards["blacksmith"].card_text()) == {"catchphrase": "Mind the edge.", "address": "lad"}


def test_the_catchphrase_is_nudged_at_a_sentence_start_and_the_address_after_a_comma() -> None:
    row = STEERING.row(CARD, [], 3.0)
    assert row is not None
    assert row.boost() == ([PIECES.index(" Sweet")], [3.0])  # the reply's start
    row.advance(PIECES.index(" Good"))
    assert row.boost() == ([], [])  # mid-sentence: nothing
    row.advance(PIECES.index(","))
    assert row.boost() == ([PIECES.index(" honeybun")], [3.0])
    row.advance(PIECES.index(" honeybun"))
    assert row.said == {"address"}
    row.advance(PIECES.index("."))
    assert row.boost() == ([PIECES.index(" Sweet")], [3.0])
    row.advance(PIECES.index(" Sweet"))  # begun at its place: the rest is pushed harder, token by token
    assert row.boost() == ([PIECES.index(" as")], [CONTINUE_FACTOR * 3.0])
    for piece in (" as", " clover", "!"):
        row.advance(PIECES.index(piece))
    assert row.said == {"address", "catchphrase"} and row.boost() == ([], [])


def test_a_common_first_word_said_elsewhere_does_not_drag_the_marker_after_it() -> None:
    row = STEERING.row(CARD, [], 3.0)
    row.advance(PIECES.index(" Good"))
    row.advance(PIECES.index(" Sweet"))  # not at a sentence start
    assert row.boost() == ([], [])
    row.advance(PIECES.index(" The"))
    # said whole anywhere, a marker counts as said and is not nudged again
    for piece in (" Sweet", " as", " clover", "!"):
        row.advance(PIECES.index(piece))
    assert "catchphrase" in row.said


def test_no_steering_without_markers_bias_or_after_a_catchphrase_last_turn() -> None:
    assert STEERING.row(CARD, [], 0.0) is None
    assert STEERING.row("Bob, the miller. Speaking style: plain. Says things like: \"Hi.\"", [], 3.0) is None
    row = STEERING.row(CARD, [("Hi.", "Sweet as clover! Hello, honeybun.")], 3.0)
    assert row is not None and set(row.sequences) == {"address"}  # a catchphrase in every line is a tic


def test_the_scheduler_says_the_cards_markers_when_steered(tiny_engine) -> None:
    card = next(c for c in PersonaPack.load(default_pack_dir()) if c.id == "blacksmith")
    base = GenRequest(key=0, fingerprint=card.fingerprint(), card_text=card.card_text(),
                      knowledge=tiny_engine.knowledge_of(card), text="Hello there.", context={}, history=[],
                      image=None, options=GenOptions(temperature=0.0, max_tokens=12, voice_bias=0.0))  # fmt: skip
    # a bias far above anything an untrained model's logits differ by: the reply opens with the catchphrase
    steered = dataclasses.replace(base, key=1, options=dataclasses.replace(base.options, voice_bias=40.0))
    done = _run(tiny_engine, [base, steered], SchedulerConfig(max_batch=2))
    assert done[1][0] == "reply" and done[1][1]["text"].startswith("Mind the edge.")
    assert not done[0][1]["text"].startswith("Mind the edge.")
    # the server's setting, not the protocol's: a request's options never change it
    assert GenOptions.from_protocol(_protocol_options(), GenOptions(voice_bias=1.5)).voice_bias == 1.5


def _protocol_options():
    from npc_runtime.protocol import SayOptions

    return SayOptions()

