"""A tree spec: many personas and openings for one ``npc-runtime tree --spec FILE`` run, in TOML or JSON.

Top-level keys give defaults (``depth``, ``branches``, ``seed``, ``temperature``, ``max_tokens``, ``context``,
``formats``, ``out``); each entry of ``trees`` names a ``persona`` and may set ``id``, ``opening``, ``context``
(merged over the defaults), ``image`` and any of the numeric settings. Paths are relative to the spec file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .formats import FORMATS
from .generate import TreeSettings

__all__ = ["TreeEntry", "TreeSpec", "load_spec", "parse_spec"]

_SETTINGS = ("depth", "branches", "seed", "temperature", "max_tokens")
_TOP_KEYS = (*_SETTINGS, "context", "formats", "out", "trees")
_ENTRY_KEYS = (*_SETTINGS, "persona", "id", "opening", "context", "image")
DEFAULT_FORMATS = ("ink", "yarn", "twee", "dialogue")


@dataclass(frozen=True)
class TreeEntry:
    """One tree of a spec, with its settings resolved."""

    tree_id: str
    persona: str
    settings: TreeSettings
    opening: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    image: Path | None = None


@dataclass(frozen=True)
class TreeSpec:
    entries: tuple[TreeEntry, ...]
    formats: tuple[str, ...]
    out_dir: Path


def load_spec(path: str | Path) -> TreeSpec:
    """Read a ``.toml`` or ``.json`` spec; :class:`ConfigError` names what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix.lower() == ".toml" else json.loads(raw)
    except FileNotFoundError as exc:
        raise ConfigError(f"tree spec not found: {path}") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"{path}: cannot read tree spec: {exc}") from exc
    return parse_spec(data, path.parent, default_out=path.parent / f"{path.stem}-trees", where=str(path))


def _context(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise ConfigError(f"{where}: 'context' must be a table of scene facts (key = value)")
    return {str(k): str(v) for k, v in value.items()}


def _unknown(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = sorted(set(data) - set(known))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(known)})")


def parse_spec(data: Any, base: Path, default_out: Path, where: str = "tree spec") -> TreeSpec:
    """A spec from already-parsed TOML/JSON ``data``; relative paths resolve against ``base``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a tree spec must be a table/object")
    _unknown(data, _TOP_KEYS, where)
    defaults = {k: data[k] for k in _SETTINGS if k in data}
    base_context = _context(data.get("context", {}), where)
    formats = data.get("formats", list(DEFAULT_FORMATS))
    formats = [formats] if isinstance(formats, str) else formats
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        raise ConfigError(f"{where}: 'formats' must list some of {', '.join(FORMATS)}")
    out = data.get("out")
    if out is not None and not isinstance(out, str):
        raise ConfigError(f"{where}: 'out' must be a folder path")
    trees = data.get("trees")
    if not isinstance(trees, list) or not trees:
        raise ConfigError(f"{where}: 'trees' must list at least one tree ([[trees]] with a persona)")
    entries: list[TreeEntry] = []
    ids: set[str] = set()
    for i, item in enumerate(trees):
        at = f"{where}: trees[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("persona"), str):
            raise ConfigError(f"{at}: needs a 'persona' id")
        _unknown(item, _ENTRY_KEYS, at)
        persona = item["persona"]
        tree_id = item.get("id")
        if tree_id is None:
            tree_id, n = persona, 2
            while tree_id in ids:
                tree_id, n = f"{persona}-{n}", n + 1
        if not isinstance(tree_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", tree_id) or tree_id in ids:
            raise ConfigError(f"{at}: 'id' must be a unique name of letters, digits, '_' or '-', got {tree_id!r}")
        ids.add(tree_id)
        try:
            settings = TreeSettings(**{**defaults, **{k: item[k] for k in _SETTINGS if k in item}})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{at}: {exc}") from exc
        opening = item.get("opening")
        if opening is not None and (not isinstance(opening, str) or not opening.strip()):
            raise ConfigError(f"{at}: 'opening' must be a non-empty string")
        image = item.get("image")
        if image is not None and not isinstance(image, str):
            raise ConfigError(f"{at}: 'image' must be a file path")
        context = {**base_context, **_context(item.get("context", {}), at)}
        entries.append(
            TreeEntry(tree_id, persona, settings, opening, context, base / image if image is not None else None)
        )
    return TreeSpec(tuple(entries), tuple(dict.fromkeys(formats)), base / out if out else default_out)
