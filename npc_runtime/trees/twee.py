"""Dialogue tree -> Twee 3 (Twine's text format) for the Harlowe story format: one passage per NPC line.

``StoryTitle`` and ``StoryData`` (with an IFID derived from the tree, so the same tree gives the same file)
come first; each node is a passage tagged with its emotion (``emotion-joy``, ``intensity-0.62``) and placed on
Twine's story map by level. The NPC line is Harlowe verbatim markup (backticks), so no generated character is
read as markup; link labels are HTML character references where a character could end or split the link.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid

from .model import DialogueTree, clean_text, safe_speaker

__all__ = ["to_twee", "escape_link_label", "verbatim", "tree_ifid", "STORY_FORMAT", "STORY_FORMAT_VERSION"]

STORY_FORMAT = "Harlowe"
STORY_FORMAT_VERSION = "3.3.9"
#: Characters that are link or markup syntax in Harlowe (and in Twine's own link scanner) when in a label.
_LINK_SPECIAL = set("[]|<>&-=$_*/\\^~(){}#`@:'\"")


def tree_ifid(tree: DialogueTree) -> str:
    """A version-4 UUID (upper case, as Twine writes it) derived from the tree id and content."""
    digest = hashlib.sha256((tree.id + "\n" + tree.dumps()).encode("utf-8")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4)).upper()


def verbatim(text: str) -> str:
    """``text`` inside Harlowe verbatim markup: a run of backticks longer than any inside the text."""
    text = clean_text(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_link_label(text: str) -> str:
    """A ``[[label->target]]`` label: syntax characters become numeric character references."""
    return "".join(f"&#{ord(c)};" if c in _LINK_SPECIAL else c for c in clean_text(text))


def _passage_name_safe(name: str) -> str:
    # passage names are node ids (identifiers), but the title passage could hold anything
    return re.sub(r"[\[\]{}\\]", lambda m: "\\" + m.group(0), name)


def to_twee(tree: DialogueTree) -> str:
    speaker = safe_speaker(tree.speaker)
    data = {
        "ifid": tree_ifid(tree),
        "format": STORY_FORMAT,
        "format-version": STORY_FORMAT_VERSION,
        "start": tree.root.id,
        "zoom": 1,
    }
    title = clean_text(f"{tree.speaker} ({tree.id})").lstrip(":")
    parts = [f":: StoryTitle\n{title}", f":: StoryData\n{json.dumps(data, indent=2)}"]
    column: dict[int, int] = {}
    for node in tree.nodes:
        row = column.get(node.level, 0)
        column[node.level] = row + 1
        tags = f"emotion-{node.emotion.label} intensity-{node.emotion.intensity:.2f}"
        position = json.dumps({"position": f"{100 + node.level * 250},{100 + row * 150}", "size": "100,100"})
        body = []
        if node.id == tree.root.id:
            opening = clean_text(tree.opening)
            while "--" in opening:  # '--' could close the HTML comment
                opening = opening.replace("--", "- -")
            body.append(f"<!-- Opening (player): {opening} -->")
        body.append(verbatim(f"{speaker}: {node.text}"))
        for choice in node.choices:
            body.append(f"[[{escape_link_label(choice.text)}->{_passage_name_safe(choice.next)}]]")
        parts.append(f":: {_passage_name_safe(node.id)} [{tags}] {position}\n" + "\n".join(body))
    return "\n\n\n".join(parts) + "\n"
