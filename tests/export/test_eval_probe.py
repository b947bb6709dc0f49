"""The voice likelihood probe: the card's catchphrase against a foil, scored by teacher forcing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from export.corpus import build_corpus
from export.eval_metrics import voice_markers
from export.eval_probe import voice_probe
from export.evaluate import NOVEL_CATCHPHRASES, novel_voice_card


@pytest.fixture(scope="module")
def heldout() -> list:
    corpus = build_corpus()
    return corpus.splits["test_heldout"][:120]


@pytest.fixture(scope="module")
def phrases() -> list[str]:
    corpus = build_corpus()
    return sorted({voice_markers(c).get("catchphrase") for c in corpus.cards.values()} - {None})


class _Reader:
    """A hand-made scorer: a reply scores 1 when it contains the catchphrase of the card in its prompt (a model
    that copies from the card), or, with ``copies=False``, always prefers the first new catchphrase it knows."""

    max_positions = 10_000

    def __init__(self, copies: bool) -> None:
        self.copies = copies

    def knowledge_of(self, card):
        return card.knowledge_text(voice=True)

    def prepare(self, fingerprint, card_text, knowledge, context, history, player, image):
        return SimpleNamespace(ids=[0], knowledge=knowledge)

    def reply_ids(self, reply: str) -> list[int]:
        return [ord(ch) for ch in reply]

    def continuation_logprobs(self, prepared, lines):
        texts = ["".join(map(chr, line)) for line in lines]
        if self.copies:
            return [float(any(p in t and p in prepared.knowledge for p in self._all)) for t in texts]
        return [float(NOVEL_CATCHPHRASES[0] in t) for t in texts]


def _run(reader: _Reader, examples, phrases) -> dict:
    reader._all = [*phrases, *NOVEL_CATCHPHRASES]
    return voice_probe(reader, examples, lambda ex: None, NOVEL_CATCHPHRASES, phrases, novel_voice_card)


def test_a_model_that_copies_from_the_card_passes_and_one_that_does_not_fails(heldout, phrases) -> None:
    good = _run(_Reader(copies=True), heldout, phrases)
    assert good["card"]["n"] > 5 and good["card"]["n"] == good["rewritten"]["n"] == good["rewritten_no_card"]["n"]
    assert good["card"]["prefers_card"] == 1.0 and good["rewritten"]["prefers_card"] == 1.0
    assert good["rewritten_no_card"]["prefers_card"] == 0.0  # no card, nothing to copy: ties are not wins
    bad = _run(_Reader(copies=False), heldout, phrases)
    # Preferring one new catchphrase whatever the card says wins only where it happens to be the card's.
    assert bad["rewritten"]["prefers_card"] == bad["rewritten_no_card"]["prefers_card"] < 0.5



def test_a_reply_that_would_not_fit_after_its_prompt_is_left_out(heldout, phrases) -> None:
    reader = _Reader(copies=True)
    reader.max_positions = 1  # room for the prompt, none for any reply
    probe = _run(reader, heldout, phrases)
    assert all(row["n"] == 0 and row["prefers_card"] is None for row in probe.values())
