"""The shipped player lines are the corpus's paraphrases, kept current; the runtime reads them without export/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from npc_runtime.trees.lines import DATA_FILE, OPTION_INTENTS, load_player_lines, render_player_lines


def test_data_file_is_current_with_the_corpus() -> None:
    from export.corpus_intents import PLAYER_TEMPLATES

    expected = render_player_lines(PLAYER_TEMPLATES)
    assert DATA_FILE.read_text(encoding="utf-8") == expected, "run: python -m npc_runtime.trees.lines --write"


def test_loaded_lines_cover_every_option_intent() -> None:
    lines = load_player_lines()
    assert set(lines) == set(OPTION_INTENTS)
    assert "jailbreak" not in lines and "ask_ai" not in lines
    assert all("{item}" in t for t in lines["buy"])


def test_trees_package_does_not_import_export_or_torch() -> None:
    code = (
        "import sys, npc_runtime.trees, npc_runtime.trees.cli, npc_runtime.trees.checks\n"
        "bad = [m for m in sys.modules if m == 'torch' or m == 'export' or m.startswith(('torch.', 'export.'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_load_rejects_a_broken_file(tmp_path: Path) -> None:
    import pytest

    from npc_runtime.trees.model import TreeError

    path = tmp_path / "lines.json"
    path.write_text(json.dumps({"intents": {"greeting": ["Hi"]}}), encoding="utf-8")
    with pytest.raises(TreeError, match="no player lines"):
        load_player_lines(path)
