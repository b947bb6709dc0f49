"""Spelling constraint: a reply only spells words the model was trained on or words of its own request.

A small role model writes a name or a ware it has never seen piece by piece, copying byte-level BPE pieces from
the persona card, and a wrong piece gives a word that is no word at all ("Otttttilie", "the beyer"). The bundle's
lexicon is every word of the training corpus's replies, player lines and cards; each request adds the words of its
own card, scene, history and player line. While a row is decoded, a candidate token is allowed only when every
word it completes is in one of the two, and the word it leaves open is the beginning of one. The sampler takes
the best allowed candidate (greedy) or resamples until it draws one (sampling), and falls back to the model's own
choice when none of its best candidates is allowed, so the constraint can never stall a reply.

Words are runs of letters, with apostrophes inside them (``don't``), compared case-folded, as the evaluation counts
them. Digits, spaces and punctuation end a word and are never constrained themselves. A piece that is only part of
a multi-byte character is allowed only where the lexicon or the request has text beyond ASCII, and leaves its word
unconstrained until it ends; otherwise it would be a way around the constraint (the corpus is ASCII).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Lexicon", "RowSpelling", "lexicon_words", "write_lexicon", "read_lexicon"]

_APOSTROPHES = "'\u2019"
#: ``partial`` of a row whose open word contains a broken multi-byte character: no check until the word ends.
_FREE = None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _word_chars(ch: str, open_word: bool) -> bool:
    return ch.isalpha() or (open_word and ch in _APOSTROPHES)


def lexicon_words(texts: Iterable[str]) -> set[str]:
    """Every word of ``texts`` as the constraint reads words: case-folded letter runs, apostrophes inside."""
    out: set[str] = set()
    for text in texts:
        word = ""
        for ch in _fold(text) + " ":
            if _word_chars(ch, bool(word)):
                word += ch
            else:
                if word:
                    out.add(word.rstrip(_APOSTROPHES))
                word = ""
    out.discard("")
    return out


def _prefixes(words: Iterable[str]) -> set[str]:
    return {word[:i] for word in words for i in range(1, len(word) + 1)}


def write_lexicon(words: Iterable[str], path: str | Path) -> Path:
    """One word per line, sorted, UTF-8."""
    path = Path(path)
    path.write_text("".join(f"{w}\n" for w in sorted(set(words))), encoding="utf-8")
    return path


def read_lexicon(path: str | Path) -> set[str]:
    return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}


class Lexicon:
    """The bundle's words and the text of every decoder token, shared by all rows."""

    def __init__(self, words: Iterable[str], pieces: list[str], end_id: int = -1) -> None:
        """``words``: the lexicon (already in :func:`lexicon_words` form); ``pieces``: each token id's text;
        ``end_id``: the token that ends a reply, allowed only after a whole word."""
        self.words = frozenset(words)
        self.end_id = end_id
        self.ascii = all(word.isascii() for word in self.words)
        self.prefixes = frozenset(_prefixes(self.words))
        self.pieces = pieces

    def row(self, texts: Iterable[str]) -> RowSpelling:
        """The constraint of one reply whose request carries ``texts`` (card, scene, history, player line)."""
        texts = list(texts)
        own = lexicon_words(texts) - self.words
        bytes_ok = not self.ascii or not all(text.isascii() for text in texts)
        return RowSpelling(self, frozenset(own), frozenset(_prefixes(own)), bytes_ok)


class RowSpelling:
    """One reply's constraint: the word it has open so far, and whether a token may come next."""

    __slots__ = ("lexicon", "own", "own_prefixes", "bytes_ok", "partial")

    def __init__(self, lexicon: Lexicon, own: frozenset[str], own_prefixes: frozenset[str],
                 bytes_ok: bool = False) -> None:
        """``bytes_ok``: pieces of a multi-byte character may be said (the request or the lexicon has some)."""
        self.lexicon = lexicon
        self.own = own
        self.own_prefixes = own_prefixes
        self.bytes_ok = bytes_ok
        self.partial: str | None = ""

    def _complete(self, word: str) -> bool:
        word = word.rstrip(_APOSTROPHES)
        return not word or word in self.lexicon.words or word in self.own

    def _begun(self, word: str) -> bool:
        # An apostrophe must lead on to a known word ("don'", "miller'"): a run of them is no word.
        return not word or word in self.lexicon.prefixes or word in self.own_prefixes

    def _walk(self, token: int, check: bool) -> tuple[bool, str | None]:
        """(allowed, the open word after it) for ``token`` following this row's text; ``check=False`` only
        follows the word."""
        lexicon = self.lexicon
        if token == lexicon.end_id:
            return (not check or self.ends_ok()), ""
        if not 0 <= token < len(lexicon.pieces):
            return True, ""
        word = self.partial
        for ch in _fold(lexicon.pieces[token]):
            if ch == "\ufffd":  # part of a multi-byte character: this word goes unchecked
                if check and not self.bytes_ok:
                    return False, word
                word = _FREE
            elif word is _FREE:
                if not ch.isalpha() and ch not in _APOSTROPHES:
                    word = ""
            elif _word_chars(ch, bool(word)):
                word += ch
            else:
                if check and not self._complete(word):
                    return False, word
                word = ""
        if check and word is not _FREE and not self._begun(word):
            return False, word
        return True, word

    def allows(self, token: int) -> bool:
        return self._walk(token, True)[0]

    def ends_ok(self) -> bool:
        """Whether the reply may end here (its last word is a whole word)."""
        return self.partial is _FREE or self._complete(self.partial)

    def advance(self, token: int) -> None:
        """Take ``token`` (allowed or not: a fallback may have chosen it)."""
        self.partial = self._walk(token, False)[1]
