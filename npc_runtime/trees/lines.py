"""Player option lines: the corpus's intent paraphrases, shipped as ``npc_runtime/data/player_lines.json``.

The runtime must not import ``export/``, so the paraphrase templates of ``export.corpus_intents`` are copied into
a data file by :func:`render_player_lines`; a test keeps the copy current. Regenerate it with
``python -m npc_runtime.trees.lines --write`` (that entry point alone imports ``export/``, lazily).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from .model import TreeError

__all__ = ["DATA_FILE", "OPTION_INTENTS", "render_player_lines", "load_player_lines", "main"]

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "player_lines.json"

#: Intents a writer wants as player options; out-of-world probes (jailbreaks, "are you an AI?") are left out.
OPTION_INTENTS: tuple[str, ...] = (
    "greeting", "farewell", "ask_name", "ask_trade", "buy", "sell", "complaint", "ask_health", "directions",
    "rumours", "quest_ask", "quest_accept", "quest_decline", "small_talk", "compliment", "insult", "threat",
    "ask_weather", "ask_time", "ask_creatures", "ask_item", "ask_place",
)  # fmt: skip


def render_player_lines(templates: Mapping[str, Sequence[str]]) -> str:
    """The data file's text for ``templates`` (intent -> paraphrase templates with ``{item}``-style slots)."""
    missing = [intent for intent in OPTION_INTENTS if intent not in templates]
    if missing:
        raise TreeError(f"the corpus has no templates for {', '.join(missing)}")
    data = {
        "source": "export.corpus_intents.PLAYER_TEMPLATES",
        "regenerate": "python -m npc_runtime.trees.lines --write",
        "intents": {intent: list(templates[intent]) for intent in OPTION_INTENTS},
    }
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def load_player_lines(path: Path = DATA_FILE) -> Mapping[str, tuple[str, ...]]:
    """Intent -> paraphrase templates, read from the shipped data file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        intents = data["intents"]
        lines = {str(k): tuple(str(t) for t in v) for k, v in intents.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TreeError(f"{path}: cannot read player lines: {exc}") from exc
    empty = [intent for intent in OPTION_INTENTS if not lines.get(intent)]
    if empty:
        raise TreeError(f"{path}: no player lines for {', '.join(empty)}")
    return MappingProxyType(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npc_runtime.trees.lines", description="Regenerate the player option lines data file."
    )
    parser.add_argument("--write", action="store_true", help=f"write {DATA_FILE.name} (default: print it)")
    args = parser.parse_args(argv)
    from export.corpus_intents import PLAYER_TEMPLATES  # the generator's one link to export/

    text = render_player_lines(PLAYER_TEMPLATES)
    if args.write:
        DATA_FILE.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
