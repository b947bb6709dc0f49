"""Text wrapping for bubbles and the history log."""

from __future__ import annotations

import pytest

from sample_game.text import printable, wrap_text


def width_of(text: str) -> int:
    return 10 * len(text)  # a monospace font, 10 px per character


def test_short_text_stays_on_one_line():
    assert wrap_text("Aye, lad.", width_of, 200) == ["Aye, lad."]


def test_long_line_wraps_at_spaces_within_the_width():
    text = "Aye, forged this very morning by my own hand in the old forge. Mind the edge, lad, it bites."
    lines = wrap_text(text, width_of, 120)
    assert len(lines) > 3
    assert all(width_of(line) <= 120 for line in lines)
    assert " ".join(lines) == text  # nothing lost, nothing added


def test_words_longer_than_a_line_are_cut():
    lines = wrap_text("a " + "x" * 35 + " b", width_of, 100)
    assert all(width_of(line) <= 100 for line in lines)
    assert "".join(lines).replace(" ", "") == "a" + "x" * 35 + "b"


def test_newlines_are_kept_and_blank_text_gives_one_empty_line():
    assert wrap_text("one\ntwo", width_of, 200) == ["one", "two"]
    assert wrap_text("", width_of, 200) == [""]


def test_max_lines_keeps_the_newest_words_and_marks_the_cut():
    text = " ".join(f"w{i}" for i in range(40))
    lines = wrap_text(text, width_of, 60, max_lines=2)
    assert len(lines) == 2
    assert lines[0].startswith("…")
    assert lines[-1].endswith("w39")
    assert all(width_of(line) <= 60 for line in lines)


def test_bad_limits_raise():
    with pytest.raises(ValueError):
        wrap_text("x", width_of, 0)
    with pytest.raises(ValueError):
        wrap_text("x", width_of, 10, max_lines=0)


def test_control_characters_from_a_model_are_dropped():
    assert printable("a\x00b\x1b\tc\nd") == "ab c\nd"
    assert wrap_text("bad\x00text", width_of, 200) == ["badtext"]


def test_wrapping_with_a_real_pygame_font(pygame_headless):
    font = pygame_headless.font.Font(None, 22)
    text = "The wolves came down from the meadow after dark, and the guard says the gate stays shut till dawn."
    lines = wrap_text(text, lambda s: font.size(s)[0], 180)
    assert len(lines) >= 3
    assert all(font.size(line)[0] <= 180 for line in lines)
