"""The export formats of a dialogue tree, by name: file suffix and the function that writes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .dialogue import to_dialogue
from .ink import to_ink
from .model import DialogueTree, TreeError
from .twee import to_twee
from .yarn import to_yarn

__all__ = ["FORMATS", "SUFFIXES", "export_tree", "format_for_path"]

#: name -> (file suffix, writer)
FORMATS: dict[str, tuple[str, Callable[[DialogueTree], str]]] = {
    "json": (".json", DialogueTree.dumps),
    "ink": (".ink", to_ink),
    "yarn": (".yarn", to_yarn),
    "twee": (".twee", to_twee),
    "dialogue": (".dialogue", to_dialogue),
}
SUFFIXES = {suffix: name for name, (suffix, _) in FORMATS.items()}


def export_tree(tree: DialogueTree, fmt: str) -> str:
    """The text of ``tree`` in format ``fmt`` (one of :data:`FORMATS`)."""
    try:
        _, writer = FORMATS[fmt]
    except KeyError:
        raise TreeError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    return writer(tree)


def format_for_path(path: Path) -> str | None:
    """The format a file name implies (``.ink`` -> ``ink``; ``.tw``/``.twee`` -> ``twee``), or None."""
    suffix = path.suffix.lower()
    return "twee" if suffix == ".tw" else SUFFIXES.get(suffix)
