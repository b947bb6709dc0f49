"""Static checks of exported dialogue files, read back the way their engines read them, and their playthroughs.

For Twee and Godot Dialogue Manager (no interpreter we can run) these parse the file by the format's rules,
check that every link or jump lands on a passage or title that exists and that no text leaked into syntax, and
return every path as events; Yarn gets a static jump-target check (its playthrough runs in a Yarn interpreter).
:func:`expected_paths` gives the events a tree should produce, for comparison with any playthrough.
"""

from __future__ import annotations

import html
import json
import re
from .dialogue import ZWSP
from .model import DialogueTree, TreeError, clean_text, safe_speaker

__all__ = ["Event", "expected_paths", "check_yarn", "check_twee", "check_dialogue"]

#: ("line", "Speaker: text"), ("choice", "text") or ("end", "")
Event = tuple[str, str]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expected_paths(tree: DialogueTree) -> list[list[Event]]:
    """Every path of ``tree`` as the events a player sees, with text as the exporters clean it."""
    name = safe_speaker(tree.speaker)
    out = []
    for path in tree.paths():
        events: list[Event] = []
        for node, choice in path:
            events.append(("line", f"{name}: {clean_text(node.text)}"))
            if choice is not None:
                events.append(("choice", clean_text(choice.text)))
        events.append(("end", ""))
        out.append(events)
    return out


def _walk(start: str, lines: dict[str, str], links: dict[str, list[tuple[str, str]]]) -> list[list[Event]]:
    paths: list[list[Event]] = []

    def visit(name: str, prefix: list[Event], seen: frozenset[str]) -> None:
        if name in seen:
            raise TreeError(f"the file loops back to {name!r}")
        events = prefix + [("line", lines[name])]
        if not links[name]:
            paths.append(events + [("end", "")])
        for label, target in links[name]:
            visit(target, events + [("choice", label)], seen | {name})

    visit(start, [], frozenset())
    return paths


def _check_targets(kind: str, start: str, links: dict[str, list[tuple[str, str]]]) -> None:
    if start not in links:
        raise TreeError(f"{kind}: start {start!r} does not exist")
    for name, out in links.items():
        for _, target in out:
            if target not in links:
                raise TreeError(f"{kind}: {name!r} leads to {target!r}, which does not exist")
    reached, todo = {start}, [start]
    while todo:
        for _, target in links[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    unreached = sorted(set(links) - reached)
    if unreached:
        raise TreeError(f"{kind}: unreachable {', '.join(unreached[:5])}")


# ------------------------------------------------------------------------------------------------ Yarn


def check_yarn(text: str) -> dict[str, list[str]]:
    """Titles and their jump targets; every title valid and unique, every ``<<jump>>`` target existing."""
    jumps: dict[str, list[str]] = {}
    title, in_body = None, False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not in_body:
            if stripped.startswith("title:"):
                title = stripped[len("title:") :].strip()
                if not _IDENT.fullmatch(title):
                    raise TreeError(f"yarn line {number}: invalid node title {title!r}")
                if title in jumps:
                    raise TreeError(f"yarn line {number}: duplicate node title {title!r}")
                jumps[title] = []
            elif stripped == "---":
                if title is None:
                    raise TreeError(f"yarn line {number}: node body without a title")
                in_body = True
            continue
        if stripped == "===":
            in_body, title = False, None
            continue
        for target in re.findall(r"<<jump\s+([^>]*)>>", line):
            jumps[title].append(target.strip())  # type: ignore[index]
    if in_body:
        raise TreeError("yarn: the last node is not closed with ===")
    for name, targets in jumps.items():
        for target in targets:
            if target not in jumps:
                raise TreeError(f"yarn: node {name!r} jumps to {target!r}, which does not exist")
    return jumps


# ------------------------------------------------------------------------------------------------ Twee


_HEADER = re.compile(r"^:: ((?:\\.|[^\\\[\]{}])+?)(?: \[([^\]]*)\])?(?: (\{.*\}))?\s*$")
_LINK = re.compile(r"\[\[(.*?)->([^\]]*)\]\]")
_IFID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")


def _unverbatim(line: str) -> str:
    match = re.fullmatch(r"(`+)(.*)\1", line)
    if match is None:
        raise TreeError(f"twee: expected a verbatim line, got {line[:60]!r}")
    fence, inner = match.groups()
    if fence in inner:
        raise TreeError(f"twee: verbatim text closes early: {line[:60]!r}")
    if inner.startswith(" `") or inner.endswith("` "):
        inner = inner[1:-1]
    return inner


def check_twee(text: str) -> list[list[Event]]:
    """Parse Twee 3 (StoryData, passages, links), check everything resolves, and return every path."""
    passages: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("::"):
            match = _HEADER.match(line)
            if match is None:
                raise TreeError(f"twee line {number}: malformed passage header")
            name = re.sub(r"\\(.)", r"\1", match.group(1))
            if name in passages:
                raise TreeError(f"twee line {number}: duplicate passage {name!r}")
            if match.group(3):
                json.loads(match.group(3))
            current = passages[name] = []
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise TreeError(f"twee line {number}: text before the first passage")
    try:
        data = json.loads("\n".join(passages.pop("StoryData")))
    except (KeyError, ValueError) as exc:
        raise TreeError(f"twee: missing or unreadable StoryData: {exc}") from exc
    if not _IFID.fullmatch(str(data.get("ifid", ""))):
        raise TreeError(f"twee: StoryData ifid {data.get('ifid')!r} is not an upper-case version-4 UUID")
    if "StoryTitle" not in passages or not "".join(passages.pop("StoryTitle")).strip():
        raise TreeError("twee: missing StoryTitle")
    lines: dict[str, str] = {}
    links: dict[str, list[tuple[str, str]]] = {}
    for name, body in passages.items():
        content = [b for b in body if b.strip() and not b.startswith("<!--")]
        said = [b for b in content if not b.startswith("[[")]
        if len(said) != 1:
            raise TreeError(f"twee: passage {name!r} should hold one line, has {len(said)}")
        lines[name] = _unverbatim(said[0])
        links[name] = []
        for raw in content:
            if not raw.startswith("[["):
                continue
            match = _LINK.fullmatch(raw)
            if match is None or "[[" in match.group(1) or "]]" in match.group(1) or "|" in match.group(1):
                raise TreeError(f"twee: passage {name!r} has a malformed link {raw[:60]!r}")
            if re.search(r"[<>\[\]|]|->", match.group(1)):
                raise TreeError(f"twee: link label in {name!r} holds unescaped link syntax")
            links[name].append((html.unescape(match.group(1)), match.group(2)))
    start = str(data.get("start", ""))
    _check_targets("twee", start, links)
    return _walk(start, lines, links)


# ------------------------------------------------------------------------------------------------ Godot DM


_DM_KEYWORDS = ("import ", "using ", "#", "~ ", "if ", "elif", "else", "while ", "match ", "when ", "do ", "do! ",
                "set ", "$> ", "$>> ", "=> ", "=>< ", "- ", "%", "| ")  # fmt: skip


def _dm_text(raw: str, where: str) -> str:
    """Check that escaped text is inert in Dialogue Manager and return what it displays."""
    if re.search(r"\[(?!lb\]|rb\])", raw) or "{{" in raw or "}}" in raw or "=>" in raw:
        raise TreeError(f"dialogue: {where}: text would be read as syntax: {raw[:60]!r}")
    if re.search(r"(?<!\\):", raw) or re.search(r"\\n", raw):
        raise TreeError(f"dialogue: {where}: unescaped colon or newline escape in {raw[:60]!r}")
    shown = raw.replace("\\:", ":").replace("[lb]", "\x00").replace("[rb]", "]").replace("\x00", "[")
    return shown.replace(ZWSP, "")


def check_dialogue(text: str) -> list[list[Event]]:
    """Parse a ``.dialogue`` file by Dialogue Manager's line rules, check titles and jumps, return every path."""
    lines: dict[str, str] = {}
    links: dict[str, list[tuple[str, str]]] = {}
    ends: set[str] = set()
    title = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        if raw != raw.lstrip():
            raise TreeError(f"dialogue: {where}: unexpected indentation")
        if line.startswith("~ "):
            title = line[2:].strip()
            if not _IDENT.fullmatch(title) or title in links:
                raise TreeError(f"dialogue: {where}: invalid or duplicate title {title!r}")
            links[title] = []
            continue
        if title is None:
            raise TreeError(f"dialogue: {where}: content before the first title")
        if line.startswith("- "):
            match = re.fullmatch(r"- (.*) => ([A-Za-z_][A-Za-z0-9_]*)", line)
            if match is None:
                raise TreeError(f"dialogue: {where}: malformed response {line[:60]!r}")
            links[title].append((_dm_text(match.group(1), where), match.group(2)))
        elif line == "=> END":
            ends.add(title)
        elif line.startswith(_DM_KEYWORDS):
            raise TreeError(f"dialogue: {where}: unexpected statement {line[:60]!r}")
        else:
            match = re.fullmatch(r"([^:\[]+?): (.*) \[#emotion=([a-z_]+), #intensity=([0-9.]+)\]", line)
            if match is None or title in lines:
                raise TreeError(f"dialogue: {where}: expected one 'Speaker: text [#tags]' line per title")
            lines[title] = f"{match.group(1)}: {_dm_text(match.group(2), where)}"
    for name in links:
        if name not in lines:
            raise TreeError(f"dialogue: title {name!r} has no line")
        if bool(links[name]) == (name in ends):
            raise TreeError(f"dialogue: title {name!r} needs either responses or '=> END'")
    if not links:
        raise TreeError("dialogue: no titles")
    start = next(iter(links))
    _check_targets("dialogue", start, links)
    return _walk(start, lines, links)
