"""``npc-runtime reader-cv``: template cross-validation of the intent reader with each version of the phrasings."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from export.intent_reader import READER_FITS, cross_fitted_hints, reader_lines
from export.reader_cv import main, parse_fit, template_cv
from npc_runtime.errors import ConfigError


def _bag_of_words(texts: list[str]) -> np.ndarray:
    """A fixed stand-in for a sentence encoder: hashed word counts."""
    out = np.zeros((len(texts), 64))
    for row, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            out[row, zlib.crc32(word.encode()) % 64] += 1.0
    return out + 1e-3


LINES = [
    (f"{verb} {noun}?", intent, f"{intent}/{t}")
    for intent, verbs, nouns in (
        ("buy", ("how much is the", "what does the", "price of the"), ("rope", "lantern", "cloak")),
        ("greeting", ("hello there", "good morning", "hi"), ("friend", "neighbour", "traveller")),
        ("ask_time", ("what hour is it", "is it late", "what time is it"), ("now", "today", "here")),
    )
    for t, verb in enumerate(verbs)
    for noun in nouns
]


def test_parse_fit_reads_l2_and_steps_and_names_a_bad_one() -> None:
    assert parse_fit("1e-5:3000") == {"l2": 1e-5, "steps": 3000}
    assert parse_fit("1e-4:400:256") == {"l2": 1e-4, "steps": 400, "hidden": 256}
    for bad in ("1e-5", "x:10", "1e-5:0", "-1:10", "1e-4:400:0", "1e-4:400:8:8", "1e-4:400:wide"):
        with pytest.raises(ConfigError, match="L2"):
            parse_fit(bad)


def test_template_cv_is_the_cross_fitted_accuracy_of_each_version_and_fit(monkeypatch) -> None:
    fit = {"l2": 1e-3, "steps": 60}
    rows = template_cv(_bag_of_words, LINES, [0, 1], [fit], folds=3)
    assert [row["phrasings"] for row in rows] == [0, 1]
    assert rows[0]["extra_lines"] == 0 and rows[1]["extra_lines"] == len(reader_lines(1, 0))
    texts, intents, groups = zip(*LINES)
    x = _bag_of_words(list(texts))
    extra_lines = reader_lines(1, 0)
    extra = (_bag_of_words([t for t, _ in extra_lines]), [i for _, i in extra_lines])
    assert rows[0]["accuracy"] == round(cross_fitted_hints(x, intents, groups, folds=3, **fit)[1], 4)
    assert rows[1]["accuracy"] == round(cross_fitted_hints(x, intents, groups, folds=3, extra=extra, **fit)[1], 4)
    # A fit with a hidden layer is passed on as it is.
    wide = {"l2": 1e-3, "steps": 30, "hidden": 8}
    (row,) = template_cv(_bag_of_words, LINES, [0], [wide], folds=3)
    assert row["hidden"] == 8 and rows[0]["hidden"] == 0
    assert row["accuracy"] == round(cross_fitted_hints(x, intents, groups, folds=3, **wide)[1], 4)
    # Without --fit each version is tried with the linear fit it ships with, and with the hidden layer's fit.
    monkeypatch.setattr("export.reader_cv.READER_FITS", {0: {"l2": 1e-3, "steps": 7}, 1: {"l2": 1e-4, "steps": 9}})
    monkeypatch.setattr("export.reader_cv.READER_HIDDEN_FIT", {"l2": 1e-2, "steps": 5})
    monkeypatch.setattr("export.reader_cv.READER_HIDDEN", 4)
    shipped = template_cv(_bag_of_words, LINES, [0, 1], None, folds=3)
    assert [(row["hidden"], row["l2"], row["steps"]) for row in shipped] == [
        (0, 1e-3, 7), (4, 1e-2, 5), (0, 1e-4, 9), (4, 1e-2, 5)]  # fmt: skip


def test_reader_cv_command_writes_its_rows(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cv.json"
    corpus = ["n_procedural_personas=12", "examples_per_persona=6", "examples_per_bundled_persona=20", "n_scenes=200"]
    argv = ["--model", str(tiny_bundle), "--corpus", *corpus, "--phrasings", "0", "2", "--fit", "1e-3:20",
            "--folds", "2", "--threads", "1", "--no-progress", "--out-json", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [(row["phrasings"], row["steps"], row["folds"]) for row in rows] == [(0, 20, 2), (2, 20, 2)]
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["lines"] > 20 for row in rows)
    assert "| 2 | " in capsys.readouterr().out
    assert main(["--model", str(tiny_bundle), "--phrasings", "9"]) == 1
    assert "versions run from 0 to" in capsys.readouterr().err
    assert main(["--model", str(tiny_bundle), "--fit", "fast"]) == 1
    assert "L2:STEPS" in capsys.readouterr().err


def test_the_cli_delegates_reader_cv_and_it_needs_no_torch(capsys) -> None:
    import subprocess
    import sys

    from npc_runtime import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["reader-cv", "--help"])
    assert info.value.code == 0 and "npc-runtime reader-cv" in capsys.readouterr().out
    code = "import sys, export.reader_cv, export.evaluate, export.corpus; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
