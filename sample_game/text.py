"""Word wrapping for speech bubbles and the history log, measured with whatever font the caller uses."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

__all__ = ["wrap_text", "printable"]


def printable(text: str) -> str:
    """``text`` without control characters (a model's reply may hold any), newlines kept, tabs as spaces."""
    text = text.replace("\t", " ")
    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")


def _split_long_word(word: str, measure: Callable[[str], int], max_width: int) -> list[str]:
    """Cuts a word wider than ``max_width`` into pieces that fit (at least one character each)."""
    pieces: list[str] = []
    current = ""
    for char in word:
        if current and measure(current + char) > max_width:
            pieces.append(current)
            current = char
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def wrap_text(text: str, measure: Callable[[str], int], max_width: int, max_lines: int | None = None) -> list[str]:
    """Lines of ``text`` no wider than ``max_width`` as measured by ``measure`` (e.g. ``lambda s: font.size(s)[0]``).

    Breaks at spaces, keeps explicit newlines, cuts words that cannot fit on a line of their own. With
    ``max_lines``, keeps the last lines (a streaming bubble shows the newest words) and marks the cut with ``…``.
    """
    if max_width <= 0:
        raise ValueError(f"max_width must be positive, got {max_width}")
    if max_lines is not None and max_lines <= 0:
        raise ValueError(f"max_lines must be positive, got {max_lines}")
    lines: list[str] = []
    for paragraph in printable(text).split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if measure(candidate) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
            if measure(word) <= max_width:
                current = word
            else:
                *full, current = _split_long_word(word, measure, max_width)
                lines.extend(full)
        lines.append(current)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[-max_lines:]
        first = lines[0]
        while len(first) > 1 and measure("…" + first) > max_width:
            first = first[1:]
        lines[0] = "…" + first
    return lines
