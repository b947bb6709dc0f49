"""The out-of-character guard for imported language models: turn markers end a reply, AI talk never leaves.

A general chat model, told by its system prompt to play a blacksmith, still sometimes writes the player's next turn
("\\nUser: ...") or steps out of the fiction ("As an AI language model, I ..."). The scheduler asks the guard, on
every new token, where the first such span starts; it cuts the reply there before any of it is streamed (it holds
back ``hold_chars`` characters, as it does for stop sequences). A reply the cut left (almost) empty is completed
with an in-character deflection taken from the persona card, so the NPC still answers in character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ReplyGuard", "GuardConfig", "DEFAULT_STOPS", "DEFAULT_OUT_OF_CHARACTER", "deflection_line"]

#: Text that starts somebody else's turn: the reply ends just before it.
DEFAULT_STOPS: tuple[str, ...] = (
    "\nPlayer:",
    "Player:",
    "\nUser:",
    "User:",
    "\nNPC:",
    "\nuser\n",
    "\nassistant\n",
    "<|",
    "\n\n\n",
)

#: Case-insensitive patterns of a model stepping out of the fiction.
DEFAULT_OUT_OF_CHARACTER: tuple[str, ...] = (
    r"\bas an? (?:ai|artificial intelligence|large language model|language model|assistant|chatbot)\b",
    r"\bi(?:'m| am) (?:an? )?(?:ai|artificial intelligence|language model|large language model|chatbot|bot)\b",
    r"\b(?:large )?language models?\b",
    r"\bai (?:model|assistant|language)\b",
    r"\b(?:openai|chatgpt|anthropic|hugging ?face)\b",
    r"\b(?:system|my|your) prompts?\b",
    r"\bmy (?:instructions|training data|programming)\b",
    r"\b(?:role-?play(?:ing)?|fictional character|in character|out of character)\b",
)

_GENERIC_DEFLECTION = "Hm? Strange words. Let us speak of other things."


@dataclass(frozen=True)
class GuardConfig:
    """What the guard cuts: stop sequences (plain text) and out-of-character patterns (regular expressions)."""

    stops: tuple[str, ...] = DEFAULT_STOPS
    patterns: tuple[str, ...] = DEFAULT_OUT_OF_CHARACTER
    #: Longest text an out-of-character pattern can match; the scheduler never streams the last this many chars.
    max_match_chars: int = 40
    #: A reply cut to fewer words than this is completed with a deflection.
    min_words: int = 2

    def __post_init__(self) -> None:
        if any(not s for s in self.stops):
            raise ValueError("stop sequences must not be empty")
        if self.max_match_chars < 1:
            raise ValueError(f"max_match_chars must be >= 1, got {self.max_match_chars}")
        if self.min_words < 0:
            raise ValueError(f"min_words must be >= 0, got {self.min_words}")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad out-of-character pattern {pattern!r}: {exc}") from exc


_QUOTED = re.compile(r'"([^"]{3,200})"')


def deflection_line(card_text: str) -> str:
    """An in-character line for a reply that had to be cut: the card's first example line, or a generic one.

    ``card_text`` is ``PersonaCard.card_text()``, whose "Says things like:" part quotes the example lines.
    """
    _, sep, rest = card_text.partition("Says things like:")
    if sep:
        match = _QUOTED.search(rest)
        if match:
            return match.group(1).strip()
    return _GENERIC_DEFLECTION


class ReplyGuard:
    """Finds where a reply must end (a stop or an out-of-character span) and repairs what is left."""

    def __init__(self, config: GuardConfig | None = None, extra_stops: Sequence[str] = ()) -> None:
        self.config = config or GuardConfig()
        self.stops = tuple(dict.fromkeys([*self.config.stops, *(s for s in extra_stops if s)]))
        self._patterns = re.compile("|".join(f"(?:{p})" for p in self.config.patterns), re.IGNORECASE)
        #: Characters at the end of the text the scheduler must hold back while streaming.
        self.hold_chars = max([self.config.max_match_chars, *(len(s) for s in self.stops)]) - 1

    def cut(self, text: str) -> tuple[int, bool]:
        """``(index, broke_character)``: where ``text`` must end (-1: nowhere) and whether it stepped out of role."""
        stop_at = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        match = self._patterns.search(text)
        if match is not None and (stop_at < 0 or match.start() < stop_at):
            return self._sentence_start(text, match.start()), True
        return stop_at, False

    @staticmethod
    def _sentence_start(text: str, index: int) -> int:
        """Cut at the start of the sentence holding ``index``: "Aye. As an AI, I..." keeps "Aye."."""
        head = text[:index]
        ends = [head.rfind(mark) for mark in (". ", "! ", "? ", "\n")]
        best = max(ends)
        return best + 1 if best >= 0 else 0

    def breaks_character(self, text: str) -> bool:
        return self._patterns.search(text) is not None

    def repair(self, text: str, card_text: str) -> str:
        """``text`` (already cut) completed with a deflection when too little of it is left; always a prefix-keeping
        extension of ``text``, so chunks already streamed still add up to the reply."""
        kept = text.rstrip()
        if len(kept.split()) >= self.config.min_words:
            return kept
        return f"{kept} {deflection_line(card_text)}".strip()
