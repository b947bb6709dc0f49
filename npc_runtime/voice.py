"""Voice steering: a decoding-time nudge towards the card's own catchphrase and form of address.

A card describes its voice in its speaking style (``often says "Sweet as clover!"; calls people 'honeybun'``). The
corpus ends about a third of a persona's replies with its catchphrase and puts its form of address before a
sentence's last punctuation ("Good day to you, honeybun."), so at each of those places the marker is one choice
among several and rarely the single likeliest: greedy decoding (and sampling at a low temperature) seldom says it,
even for a persona seen in training, although the model ranks the card's marker far above any other (the
evaluation's likelihood probe, docs/eval.md).

The steering acts only where a reply would otherwise end a sentence, so it never pushes a marker in front of the
facts a reply is giving (a first version that also nudged the catchphrase at the reply's start and the address
after any comma put "darling" where a price belonged: "for the ballad in your honour, darling."):

- **catchphrase**: where the row's likeliest next token is ``<eos>`` after a sentence's end, ``bias`` (in
  logits, that is nats) is added to the catchphrase's first token;
- **form of address**: where the likeliest next token ends a sentence (``.``, ``!``, ``?``) right after a word,
  ``bias`` is added to a comma, and after that comma to the address's first token;
- a begun marker's next token gets ``CONTINUE_FACTOR`` times ``bias``, so it is finished rather than bent into a
  phrase learned by heart ("Sweet as" went on "a summer tune", a training persona's, at the same bias).

Each marker gets one try per reply: nudged at one place, it is not nudged again, said or not (a refused nudge
tried again at every sentence's end looped: ", and that, and that"). The catchphrase is not nudged at all when the NPC's previous
reply in the history said it: a catchphrase in every line is a tic, not a voice. The bias changes which choice wins
only where the model already gives the marker some weight: a marker the model cannot produce (a token it never
copies) stays unsaid. It is a server setting (``npc-runtime serve --voice-bias``), like the n-gram ban; 0 turns it
off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["ADDRESS_RE", "CATCHPHRASE_RE", "DEFAULT_VOICE_BIAS", "CONTINUE_FACTOR", "style_markers", "card_markers", "VoiceSteering",
           "RowVoice"]  # fmt: skip

#: The default bias in nats (``GenOptions.voice_bias``): chosen on the evaluation (docs/eval.md, "Voice steering").
DEFAULT_VOICE_BIAS = 3.0

#: A begun marker's next token gets this many times the bias.
CONTINUE_FACTOR = 2.0

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


def card_markers(card_text: str) -> dict[str, str]:
    """:func:`style_markers` of the speaking style inside a card's ``card_text`` (the whole text where the text is
    not in that layout)."""
    found = _STYLE_IN_CARD.search(card_text)
    return style_markers(found.group(1) if found else card_text)


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

    def row(self, card_text: str, history: Sequence[tuple[str, str]], bias: float) -> RowVoice | None:
        """The steering of one reply (None where the card names no marker or ``bias`` is 0)."""
        if bias <= 0.0:
            return None
        markers = card_markers(card_text)
        last_reply = history[-1][1].casefold() if history else ""
        if "catchphrase" in markers and markers["catchphrase"].casefold() in last_reply:
            del markers["catchphrase"]
        if self.comma_id is None:
            markers.pop("address", None)
        sequences = {}
        for kind, marker in markers.items():
            ids = list(self._encode(" " + marker))
            if ids:
                sequences[kind] = ids
        return RowVoice(self, sequences, bias) if sequences else None


class RowVoice:
    """The steering state of one reply: which markers are still unsaid, and how far a begun one has got."""

    def __init__(self, steering: VoiceSteering, sequences: dict[str, list[int]], bias: float) -> None:
        self._steering = steering
        self.sequences = sequences
        self.bias = bias
        self.said: set[str] = set()
        self._recent: list[int] = []  # the reply's last tokens, as many as the longest marker has
        self._keep = max(len(ids) for ids in sequences.values())
        self._begun: dict[str, int] = {}  # marker kind -> how many of its tokens were said since its place
        self.tried: set[str] = set()  # markers nudged once already: one try each, or a refused one loops
        self._comma_nudged = False  # this step's boost raised a comma for the address
        self._comma_for_address = False  # the last token is that comma

    def boost(self, logits: np.ndarray) -> tuple[list[int], list[float]]:
        """The token ids to raise at this step, and by how much each, given the row's ``logits (V,)``."""
        steering = self._steering
        last = self._recent[-1] if self._recent else None
        best = int(np.argmax(logits))
        ids_out, by = [], []
        self._comma_nudged = False
        for kind, ids in self.sequences.items():
            if kind in self.said:
                continue
            done = self._begun.get(kind, 0)
            if not done and kind in self.tried and not (kind == "address" and self._comma_for_address):
                continue
            if done:
                ids_out.append(ids[done])
                by.append(CONTINUE_FACTOR * self.bias)
            elif kind == "catchphrase":
                if last is not None and steering.sentence_end[last] and best == steering.eos_id:
                    ids_out.append(ids[0])
                    by.append(self.bias)
                    self.tried.add(kind)
            elif self._comma_for_address:  # its one try: the comma was taken, now the address
                ids_out.append(ids[0])
                by.append(CONTINUE_FACTOR * self.bias)
            elif last is not None and steering.word_end[last] and steering.sentence_end[best]:
                ids_out.append(steering.comma_id)
                by.append(self.bias)
                self._comma_nudged = True
                self.tried.add(kind)
        return ids_out, by

    def advance(self, token: int) -> None:
        """Take the token the reply just said. A marker counts as begun only where it began at its place (so a
        common first word said elsewhere, "The", does not drag the rest of "The curtain rises!" after it), and as
        said wherever the reply says it whole."""
        steering = self._steering
        last = self._recent[-1] if self._recent else None
        for kind, ids in self.sequences.items():
            if kind in self.said:
                continue
            done = self._begun.pop(kind, 0)
            if kind == "catchphrase":
                at_place = last is not None and bool(steering.sentence_end[last])
            else:
                at_place = self._comma_for_address
            if token == ids[done] and (done or at_place) and done + 1 < len(ids):
                self._begun[kind] = done + 1
        self._comma_for_address = self._comma_nudged and token == steering.comma_id
        self._comma_nudged = False
        self._recent = (self._recent + [token])[-self._keep :]
        for kind, ids in self.sequences.items():
            if self._recent[-len(ids) :] == ids:
                self.said.add(kind)
                self._begun.pop(kind, None)
