"""The engine-neutral dialogue tree: NPC lines with emotion, player choices between them, JSON in and out.

Every exporter (Ink, Yarn Spinner, Twee, Godot Dialogue Manager) reads this model and nothing else; the JSON form
(schema in ``docs/trees.md``) is what the ``tree`` command writes and what a resumed run reads back.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TreeError

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "NODE_ID",
    "TreeError",
    "Emotion",
    "Choice",
    "TreeNode",
    "DialogueTree",
    "clean_text",
    "safe_speaker",
]

SCHEMA = "npc-dialogue-tree"
SCHEMA_VERSION = 1
#: Node ids are identifiers in every target format (Ink knots, Yarn titles, Godot titles, Twine passages).
NODE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def clean_text(text: str) -> str:
    """One display line: control characters become spaces, runs of whitespace (newlines too) one space.

    Every exporter writes text through this first: a line in a dialogue file is a line.
    """
    chars = [" " if unicodedata.category(c) == "Cc" else c for c in text]
    return " ".join("".join(chars).split())


#: Lower-case words that start a statement in some target format (Godot Dialogue Manager) at a line start.
_STATEMENT_WORDS = ("import ", "using ", "if ", "elif", "else", "while ", "match ", "when ", "do ", "do! ", "set ")


def safe_speaker(name: str) -> str:
    """The speaker name every exporter writes before an NPC line: letters, digits, spaces and ``'.-`` only.

    A speaker name ends at the first ``:`` in Yarn and Dialogue Manager and starts the line everywhere, so it is
    kept free of syntax; a lower-case statement word at its start is capitalised.
    """
    kept = "".join(c if c.isalnum() or c in " '.-" else " " for c in clean_text(name))
    speaker = " ".join(kept.split()).lstrip("-.' ") or "NPC"
    if speaker.startswith(_STATEMENT_WORDS):
        speaker = speaker[0].upper() + speaker[1:]
    return speaker


@dataclass(frozen=True)
class Emotion:
    """The runtime's emotion for a line: one of the bundle's labels and an intensity in 0..1."""

    label: str
    intensity: float

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not re.fullmatch(r"[a-z_]{1,32}", self.label):
            raise TreeError(f"emotion label must be a lower-case word, got {self.label!r}")
        if not isinstance(self.intensity, (int, float)) or not (0.0 <= float(self.intensity) <= 1.0):
            raise TreeError(f"emotion intensity must be in 0..1, got {self.intensity!r}")


@dataclass(frozen=True)
class Choice:
    """A player option: what the player says, the corpus intent it came from, and the node it leads to."""

    text: str
    intent: str
    next: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not clean_text(self.text):
            raise TreeError("a choice needs non-empty text")
        if not isinstance(self.next, str) or not NODE_ID.fullmatch(self.next):
            raise TreeError(f"choice target {self.next!r} is not a valid node id")


@dataclass(frozen=True)
class TreeNode:
    """One NPC line and the player's choices after it; a node without choices ends the conversation."""

    id: str
    level: int
    text: str
    emotion: Emotion
    choices: tuple[Choice, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not NODE_ID.fullmatch(self.id):
            raise TreeError(f"node id {self.id!r} must match {NODE_ID.pattern}")
        if not isinstance(self.level, int) or self.level < 0:
            raise TreeError(f"node {self.id}: level must be an integer >= 0")
        if not isinstance(self.text, str) or not clean_text(self.text):
            raise TreeError(f"node {self.id}: text must not be empty")
        texts = [clean_text(c.text) for c in self.choices]
        if len(set(texts)) != len(texts):
            raise TreeError(f"node {self.id}: choices must be distinct")

    @property
    def end(self) -> bool:
        return not self.choices


@dataclass(frozen=True)
class DialogueTree:
    """A whole conversation tree for one persona and opening, with how it was made.

    ``nodes`` are in breadth-first order, root first. ``meta`` holds provenance that exporters only echo
    (persona fingerprint, model, settings, job key).
    """

    id: str
    persona_id: str
    speaker: str
    opening: str
    nodes: tuple[TreeNode, ...]
    context: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", self.id):
            raise TreeError(f"tree id {self.id!r} must be 1-128 letters, digits, '_' or '-'")
        if not isinstance(self.speaker, str) or not clean_text(self.speaker):
            raise TreeError(f"tree {self.id}: speaker must not be empty")
        if not self.nodes:
            raise TreeError(f"tree {self.id}: has no nodes")
        if self.nodes[0].level != 0:
            raise TreeError(f"tree {self.id}: the root must be at level 0")
        by_id: dict[str, TreeNode] = {}
        for node in self.nodes:
            if node.id in by_id:
                raise TreeError(f"tree {self.id}: duplicate node id {node.id!r}")
            by_id[node.id] = node
        parents: dict[str, str] = {}
        for node in self.nodes:
            for choice in node.choices:
                child = by_id.get(choice.next)
                if child is None:
                    raise TreeError(f"tree {self.id}: node {node.id} leads to unknown node {choice.next!r}")
                if choice.next in parents or choice.next == self.nodes[0].id:
                    raise TreeError(f"tree {self.id}: node {choice.next} has more than one way in (not a tree)")
                if child.level != node.level + 1:
                    raise TreeError(f"tree {self.id}: node {child.id} must be one level below {node.id}")
                parents[choice.next] = node.id
        orphans = [n.id for n in self.nodes[1:] if n.id not in parents]
        if orphans:
            raise TreeError(f"tree {self.id}: unreachable nodes {', '.join(orphans)}")
        object.__setattr__(self, "context", dict(self.context))
        object.__setattr__(self, "meta", dict(self.meta))
        object.__setattr__(self, "_by_id", by_id)

    @property
    def root(self) -> TreeNode:
        return self.nodes[0]

    def node(self, node_id: str) -> TreeNode:
        return self._by_id[node_id]  # type: ignore[attr-defined]

    def paths(self) -> Iterator[list[tuple[TreeNode, Choice | None]]]:
        """Every root-to-end path as ``[(node, choice taken or None at the end), ...]``, depth first."""

        def walk(node: TreeNode, prefix: list[tuple[TreeNode, Choice | None]]) -> Iterator[list]:
            if node.end:
                yield prefix + [(node, None)]
                return
            for choice in node.choices:
                yield from walk(self.node(choice.next), prefix + [(node, choice)])

        yield from walk(self.root, [])

    # ------------------------------------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SCHEMA,
            "version": SCHEMA_VERSION,
            "id": self.id,
            "persona": self.persona_id,
            "speaker": self.speaker,
            "opening": self.opening,
            "context": dict(self.context),
            "root": self.root.id,
            "nodes": [
                {
                    "id": n.id,
                    "level": n.level,
                    "text": n.text,
                    "emotion": {"label": n.emotion.label, "intensity": round(float(n.emotion.intensity), 4)},
                    "choices": [{"text": c.text, "intent": c.intent, "next": c.next} for c in n.choices],
                }
                for n in self.nodes
            ],
            "meta": dict(self.meta),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> DialogueTree:
        """Rebuild a tree from :meth:`to_json` output; :class:`TreeError` says what is wrong."""
        if not isinstance(data, Mapping):
            raise TreeError("a dialogue tree must be a JSON object")
        if data.get("format") != SCHEMA or data.get("version") != SCHEMA_VERSION:
            raise TreeError(f"expected format {SCHEMA!r} version {SCHEMA_VERSION}")
        try:
            nodes = tuple(_node_from_json(n) for n in _list(data, "nodes"))
            tree = cls(
                id=_str(data, "id"),
                persona_id=_str(data, "persona"),
                speaker=_str(data, "speaker"),
                opening=_str(data, "opening"),
                nodes=nodes,
                context={str(k): str(v) for k, v in _map(data, "context").items()},
                meta=_map(data, "meta"),
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise TreeError(f"malformed dialogue tree: {exc}") from exc
        if data.get("root") != tree.root.id:
            raise TreeError(f"'root' must name the first node ({tree.root.id!r})")
        return tree

    @classmethod
    def loads(cls, text: str) -> DialogueTree:
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise TreeError(f"dialogue tree is not valid JSON: {exc}") from exc


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise TreeError(f"field {key!r} must be a string")
    return value


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise TreeError(f"field {key!r} must be a list")
    return value


def _map(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise TreeError(f"field {key!r} must be an object")
    return dict(value)


def _node_from_json(data: Any) -> TreeNode:
    if not isinstance(data, Mapping):
        raise TreeError("every node must be an object")
    emotion = _map(data, "emotion")
    intensity = emotion.get("intensity")
    if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not math.isfinite(intensity):
        raise TreeError(f"node {data.get('id')!r}: emotion intensity must be a number")
    level = data.get("level")
    if isinstance(level, bool) or not isinstance(level, int):
        raise TreeError(f"node {data.get('id')!r}: level must be an integer")
    choices = []
    for c in _list(data, "choices"):
        if not isinstance(c, Mapping):
            raise TreeError("every choice must be an object")
        choices.append(Choice(text=_str(c, "text"), intent=_str(c, "intent"), next=_str(c, "next")))
    return TreeNode(
        id=_str(data, "id"),
        level=level,
        text=_str(data, "text"),
        emotion=Emotion(label=_str(emotion, "label"), intensity=float(intensity)),
        choices=tuple(choices),
    )
