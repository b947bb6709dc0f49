"""Voice steering: the card's own catchphrase and form of address, said where a reply or a sentence would end.

A card describes its voice in its speaking style (``often says "Sweet as clover!"; calls people 'honeybun'``). The
corpus ends about a third of a persona's replies with its catchphrase and puts its form of address before a
sentence's last punctuation ("Good day to you, honeybun."), so at each of those places the marker is one choice
among several and rarely the single likeliest: greedy decoding (and sampling at a low temperature) seldom says it,
even for a persona seen in training, although the model ranks the card's marker far above any other (the
evaluation's likelihood probe, docs/eval.md).

The steering acts only where a reply would otherwise end a sentence, so it never pushes a marker in front of the
facts a reply is giving (a first version that also nudged the catchphrase at the reply's start and the address
after any comma put "darling" where a price belonged: "for the ballad in your honour, darling."). Each marker has
one place per reply; the model makes the choice for the address, a draw for the catchphrase (below), and what
follows a taken choice is finished for it:

- **catchphrase**: a share of replies (``rate``, :func:`catchphrase_due`) end with it. In those, where the row's
  likeliest next token is ``<eos>`` after a sentence's end, the catchphrase is begun (its first token gets
  ``FINISH_BIAS``), the rest of it follows (with a full stop where it has no sentence end of its own), and then
  the reply ends, as the corpus's replies end after one;
- **form of address**: where the likeliest next token ends a sentence (``.``, ``!``, ``?``) right after a word,
  ``bias`` is added to a comma; if the comma is taken, the address follows, then the punctuation the row was
  about to say ("Good day to you, honeybun.").

The rest of a taken marker gets ``FINISH_BIAS``: an earlier form that only nudged it let "Sweet as" run on into "a
summer tune" (a training persona's phrase) and a comma run into a training persona's address ("lass"). Each
marker gets one try per reply: nudged once, it is not nudged again, said or not (a refused nudge tried again at
every sentence's end looped: ", and that, and that"); and a marker gets none when the NPC's previous reply in the
history said it, since a catchphrase or a "honeybun" in every line is a tic, not a voice. How often the address
is said is the model's choice under the bias: a bias of a few nats makes a marker that the model gives a tenth of
the weight of ending the reply win. Both are server settings (``npc-runtime serve --voice-bias`` and
``--catchphrase-rate``), like the n-gram ban; 0 turns each off.

**Why the catchphrase is drawn, not nudged.** The corpus ends a reply with the persona's catchphrase at random, in
about 3 of 10 replies, whatever the reply says (``export.corpus_style.stylise``); a card's "often says" means no
more than that. A nudge of a few nats let seen personas say theirs (learnt by heart) in about a quarter of replies,
but never a catchphrase written after training: the card's text glues the opening quote to its first word, so the
model cannot copy the first token, though it ranks the rest far above any other phrase once begun (the
evaluation's likelihood probe, docs/eval.md). So the runtime makes the one choice the corpus made by chance (does
this reply end with it?) by a draw fixed by the request, and the model says the phrase and places it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["ADDRESS_RE", "CATCHPHRASE_RE", "DEFAULT_VOICE_BIAS", "DEFAULT_CATCHPHRASE_RATE", "FINISH_BIAS",
           "style_markers", "card_markers", "catchphrase_due", "plain_words", "Nudge", "VoiceSteering", "RowVoice",
           "steer"]  # fmt: skip

#: The default bias in nats (``GenOptions.voice_bias``): the one of 1.5, 2.0, 2.5 and 3.0 with which the shipped
#: model says a card's form of address closest to as often as the corpus's reference lines do (about half the
#: replies; 3.0 makes it three in four, a tic). The model shipped before needed 1.5 (docs/eval.md, "Voice
#: steering").
DEFAULT_VOICE_BIAS = 2.0

#: The share of replies that end with the card's catchphrase (``GenOptions.catchphrase_rate``): the corpus's rate
#: (``export.corpus_style.stylise`` adds it to a reply with probability 0.3).
DEFAULT_CATCHPHRASE_RATE = 0.3

#: What a taken nudge's remaining tokens get: enough to finish it whatever the model prefers (a marker begun and
#: bent into a phrase learned by heart, "Sweet as a summer tune", is worse than none).
FINISH_BIAS = 50.0

#: ``calls people 'honeybun'``, ``addresses everyone as "friend"``: group 1 is the form of address.
ADDRESS_RE = re.compile(
    r"\b(?:calls|call|addresses|address)\s+(?:people|everyone|others|folk|strangers|customers|visitors|"
    r"the player|travellers|you)?\s*(?:as\s+)?[\"'\u2018\u201c]([A-Za-z][A-Za-z' -]{0,24}?)[\"'\u2019\u201d]",
    re.IGNORECASE,
)
#: ``often says "Sweet as clover!"``, ``catchphrase: "Rules are rules."``: group 1 is the catchphrase.
CATCHPHRASE_RE = re.compile(
    r"\b(?:says|saying|catchphrase|catch-phrase|exclaims|repeats)\s*:?\s*[\"\u201c]([^\"\u201d]{2,60})[\"\u201d]",
    re.IGNORECASE,
)
#: Where ``PersonaCard.card_text`` keeps the speaking style.
_STYLE_IN_CARD = re.compile(r"Speaking style: (.*?)\. Says things like:", re.DOTALL)
_SENTENCE_END = ".!?"


def style_markers(speaking_style: str) -> dict[str, str]:
    """The catchphrase and form of address a speaking style names, each only where it names one."""
    out = {}
    for kind, pattern in (("catchphrase", CATCHPHRASE_RE), ("address", ADDRESS_RE)):
        found = pattern.search(speaking_style)
        if found and found.group(1).strip():
            out[kind] = found.group(1).strip()
    return out


def plain_words(text: str) -> str:
    """``text`` as lower-case words joined by single spaces: a marker matches whatever its case and punctuation."""
    return " ".join(re.findall(r"[a-z0-9']+", text.casefold()))


def card_markers(card_text: str) -> dict[str, str]:
    """:func:`style_markers` of the speaking style inside a card's ``card_text`` (the whole text where the text is
    not in that layout)."""
    found = _STYLE_IN_CARD.search(card_text)
    return style_markers(found.group(1) if found else card_text)


def catchphrase_due(catchphrase: str, player_text: str, history: Sequence[tuple[str, str]], rate: float) -> bool:
    """Whether this reply is one of the share ``rate`` that end with ``catchphrase``: a draw fixed by the
    catchphrase, the player's line, how many exchanges the history holds and the NPC's last reply in it, so the
    same request gets the same answer (greedy replies and dialogue trees stay reproducible) while the lines of one
    conversation, and one line asked of different NPCs, are drawn apart. (The last reply is part of the key
    because a server keeps only the latest exchanges: past them the count stops changing, and the same line would
    draw the same way every time.)"""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    last = f"\x00{history[-1][1]}" if history else ""
    key = f"{catchphrase}\x00{len(history)}\x00{player_text}{last}".encode("utf-8")
    draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64
    return draw < rate


class VoiceSteering:
    """Per engine: how each token ends (sentence end, comma, word), and how a marker is spelled in tokens."""

    def __init__(self, encode: Callable[[str], Sequence[int]], pieces: Sequence[str], eos_id: int) -> None:
        """``encode`` gives the token ids of a text as it appears inside a reply; ``pieces`` is each token's text."""
        self._encode = encode
        self.eos_id = eos_id
        ends = [piece.rstrip() for piece in pieces]
        self.sentence_end = np.array([bool(p) and p[-1] in _SENTENCE_END for p in ends], dtype=bool)
        self.word_end = np.array([bool(p) and p == piece and p[-1].isalnum() for p, piece in zip(ends, pieces)],
                                 dtype=bool)  # fmt: skip
        comma = list(encode(","))
        self.comma_id = comma[0] if len(comma) == 1 else None
        period = list(encode("."))
        self.period_id = period[0] if len(period) == 1 else None

    def closing(self, ids: Sequence[int]) -> list[int]:
        """What follows a catchphrase spelt ``ids`` to end the reply: a full stop where it has no sentence end of
        its own (a card's "Sit yourself down"), then ``<eos>``."""
        stop = [] if self.sentence_end[ids[-1]] or self.period_id is None else [self.period_id]
        return [*stop, self.eos_id]

    def row(self, card_text: str, history: Sequence[tuple[str, str]], bias: float, player_text: str = "",
            catchphrase_rate: float = 0.0) -> RowVoice | None:
        """The steering of one reply to ``player_text``: the address nudged by ``bias``, the catchphrase said
        where :func:`catchphrase_due` draws it at ``catchphrase_rate``. None where neither applies (the card names
        no marker, both settings are 0, the catchphrase is not drawn and there is no address to nudge)."""
        if bias <= 0.0 and catchphrase_rate <= 0.0:
            return None
        last_reply = f" {plain_words(history[-1][1])} " if history else ""
        markers = {kind: marker for kind, marker in card_markers(card_text).items()
                   if f" {plain_words(marker)} " not in last_reply}  # fmt: skip
        if self.comma_id is None or bias <= 0.0:
            markers.pop("address", None)
        if "catchphrase" in markers and not catchphrase_due(markers["catchphrase"], player_text, history,
                                                              catchphrase_rate):
            markers.pop("catchphrase")
        sequences = {}
        for kind, marker in markers.items():
            ids = list(self._encode(" " + marker))
            if ids:
                sequences[kind] = ids
        return RowVoice(self, sequences, bias) if sequences else None


class Nudge:
    """What every steering of one reply keeps (voice, facts, scene): this step's offer, its first token and the
    tokens that finish it if the reply takes it, and the rest of a taken offer, said with ``FINISH_BIAS``."""

    def __init__(self) -> None:
        self._offer: tuple[int, list[int]] | None = None
        self._finish: list[int] = []

    def busy(self) -> bool:
        """Whether a taken offer still has tokens to say (no side effect): another steering of the reply must
        not cut in (``facts.Steerings``)."""
        return bool(self._finish)

    def finishing(self) -> bool:
        """Whether a taken offer still has tokens to say (``finish_step`` gives this step's); clears the last
        step's offer, so call it first in ``boost``."""
        self._offer = None
        return self.busy()

    def finish_step(self) -> tuple[list[int], list[float]]:
        return [self._finish[0]], [FINISH_BIAS]

    def propose(self, first: int, rest: Sequence[int], bias: float) -> tuple[list[int], list[float]]:
        """Offer ``first`` with ``bias``; if the reply takes it, ``rest`` follows with ``FINISH_BIAS``."""
        self._offer = (first, list(rest))
        return [first], [bias]

    def advance(self, token: int) -> None:
        """Take the token the reply just said."""
        if self._finish:
            self._finish = self._finish[1:] if token == self._finish[0] else []  # refused even so: let it go
        elif self._offer is not None and token == self._offer[0]:
            self._finish = list(self._offer[1])
        self._offer = None


class RowVoice(Nudge):
    """The steering state of one reply: which markers are said or tried, and what a taken nudge still has to say."""

    def __init__(self, steering: VoiceSteering, sequences: dict[str, list[int]], bias: float) -> None:
        super().__init__()
        self._steering = steering
        self.sequences = sequences
        self.bias = bias
        self.said: set[str] = set()
        self.tried: set[str] = set()  # nudged once already: one try each, or a refused nudge loops
        self._recent: list[int] = []  # the reply's last tokens, as many as the longest marker has
        self._keep = max(len(ids) for ids in sequences.values())
        self._closing = steering.closing(sequences["catchphrase"]) if "catchphrase" in sequences else []
        # tokens a marker needs beyond its own: ", honeybun." adds the comma and the punctuation; a catchphrase, its
        # closing (a full stop, the end)
        self._extra = {"address": 2, "catchphrase": len(self._closing)}

    def boost(self, best: int, room: int | None = None) -> tuple[list[int], list[float]]:
        """The token ids to raise at this step, and by how much each, given the row's likeliest next token
        (``best``, the argmax of its logits) and the tokens the reply may still say (``room``; None: no limit): a
        marker that would be cut off is not begun."""
        if self.finishing():
            return self.finish_step()
        steering = self._steering
        last = self._recent[-1] if self._recent else None
        if last is None:
            return [], []
        fits = {kind: room is None or len(ids) + self._extra[kind] <= room for kind, ids in self.sequences.items()}
        open_kinds = [kind for kind in self.sequences
                      if kind not in self.said and kind not in self.tried and fits[kind]]  # fmt: skip
        if "catchphrase" in open_kinds and steering.sentence_end[last] and best == steering.eos_id:
            ids = self.sequences["catchphrase"]
            self.tried.add("catchphrase")
            return self.propose(ids[0], [*ids[1:], *self._closing], FINISH_BIAS)  # drawn: said, then the end
        if "address" in open_kinds and steering.word_end[last] and steering.sentence_end[best]:
            self.tried.add("address")
            return self.propose(steering.comma_id, [*self.sequences["address"], best], self.bias)  # ", honeybun."
        return [], []

    def advance(self, token: int) -> None:
        """Take the token the reply just said."""
        super().advance(token)
        self._recent = (self._recent + [token])[-self._keep :]
        for kind, ids in self.sequences.items():
            if self._recent[-len(ids) :] == ids:
                self.said.add(kind)


def steer(logits: np.ndarray, voices: Sequence[RowVoice | None],
          rooms: Sequence[int | None] | None = None) -> np.ndarray:
    """``logits (B, V)`` with each row's nudges added (``RowVoice.boost``; None: a row without steering), given
    each row's room left (None: no limit). A copy where any row is nudged, else ``logits`` itself."""
    steered = [i for i, voice in enumerate(voices) if voice is not None]
    if not steered:
        return logits
    best = logits[steered].argmax(axis=1)  # one argmax for all steered rows
    nudges = [(i, *voices[i].boost(int(b), rooms[i] if rooms is not None else None))  # type: ignore[union-attr]
              for i, b in zip(steered, best)]  # fmt: skip
    if not any(ids for _, ids, _ in nudges):
        return logits
    out = logits.copy()
    for i, ids, by in nudges:
        if ids:
            np.add.at(out[i], ids, by)  # two markers may begin with the same token
    return out
