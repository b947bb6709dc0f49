"""Every exporter round-trips hand-made, hostile and generated trees: compiled or parsed back, every path played."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from npc_runtime.trees.checks import Event, check_dialogue, check_twee, check_yarn, expected_paths
from npc_runtime.trees.formats import export_tree
from npc_runtime.trees.model import DialogueTree, TreeError
from npc_runtime.trees.yarn import yarn_title

from .conftest import NodeTools, hand_made_tree, hostile_tree

TREES = ("hand_made", "hostile", "generated_0", "generated_1")


@pytest.fixture(params=TREES)
def tree(request: pytest.FixtureRequest) -> DialogueTree:
    if request.param == "hand_made":
        return hand_made_tree()
    if request.param == "hostile":
        return hostile_tree()
    return request.getfixturevalue("generated_trees")[int(request.param[-1])]


def _ink_events(path: list) -> list[Event]:
    out: list[Event] = []
    for event in path:
        if event == "END":
            out.append(("end", ""))
        elif "choice" in event:
            out.append(("choice", event["choice"]))
        else:
            out.append(("line", event["line"]))
    return out


def _yarn_events(path: list) -> list[Event]:
    out: list[Event] = []
    for event in path:
        if event == "END":
            out.append(("end", ""))
            continue
        kind = "choice" if "choice" in event else "line"
        text = event[kind].strip()
        if event.get("character"):  # yarn-bound splits 'Name: text' before it unescapes the name
            name = re.sub(r"\\(.)", r"\1", event["character"]).rstrip("\\")
            text = f"{name}: {text}"
        out.append((kind, text))
    return out


def test_json_round_trip(tree: DialogueTree) -> None:
    text = export_tree(tree, "json")
    again = DialogueTree.loads(text)
    assert again == tree
    assert export_tree(again, "json") == text
    assert json.loads(text)["format"] == "npc-dialogue-tree"


def test_ink_compiles_and_every_path_reaches_end(
    tree: DialogueTree, inkjs: NodeTools, write_file: Callable[[str, str], Path]
) -> None:
    path = write_file(f"{tree.id}.ink", export_tree(tree, "ink"))
    result = inkjs.run("ink_walk.js", str(path))
    assert result["returncode"] == 0 and result["errors"] == [] and result["warnings"] == []
    assert [_ink_events(p) for p in result["paths"]] == expected_paths(tree)
    first_line = result["paths"][0][0]
    emotion = tree.root.emotion
    assert first_line["tags"] == [f"emotion: {emotion.label}", f"intensity: {emotion.intensity:.2f}"]


def test_yarn_jumps_resolve_and_interpreter_plays_every_path(
    tree: DialogueTree, yarn_bound: NodeTools, write_file: Callable[[str, str], Path]
) -> None:
    text = export_tree(tree, "yarn")
    jumps = check_yarn(text)
    assert set(jumps) == {yarn_title(tree, n.id) for n in tree.nodes}
    path = write_file(f"{tree.id}.yarn", text)
    result = yarn_bound.run("yarn_walk.js", str(path), yarn_title(tree, tree.root.id))
    assert result["returncode"] == 0 and result["errors"] == []
    assert [_yarn_events(p) for p in result["paths"]] == expected_paths(tree)
    emotion = tree.root.emotion
    assert result["paths"][0][0]["hashtags"] == [f"emotion:{emotion.label}", f"intensity:{emotion.intensity:.2f}"]


def test_twee_story_data_passages_and_links_resolve(tree: DialogueTree) -> None:
    text = export_tree(tree, "twee")
    assert check_twee(text) == expected_paths(tree)
    assert text.startswith(":: StoryTitle\n")
    assert export_tree(tree, "twee") == text  # the IFID is derived, not random
    root_header = next(line for line in text.splitlines() if line.startswith(f":: {tree.root.id} ["))
    assert f"emotion-{tree.root.emotion.label}" in root_header


def test_godot_dialogue_structure_and_paths(tree: DialogueTree) -> None:
    text = export_tree(tree, "dialogue")
    assert check_dialogue(text) == expected_paths(tree)
    assert re.search(rf"^~ {tree.root.id}$", text, re.M)
    assert f"[#emotion={tree.root.emotion.label}, #intensity={tree.root.emotion.intensity:.2f}]" in text


@pytest.mark.parametrize("fmt", ["ink", "yarn", "twee", "dialogue"])
def test_no_hostile_line_adds_structure(fmt: str) -> None:
    """The hostile tree's file has exactly the structure of a tree with the same shape and harmless text."""
    hostile = hostile_tree()
    plain_nodes = tuple(
        type(n)(n.id, n.level, f"line {i}", n.emotion,
                tuple(type(c)(f"option {j} {n.id}", c.intent, c.next) for j, c in enumerate(n.choices)))
        for i, n in enumerate(hostile.nodes)
    )  # fmt: skip
    plain = DialogueTree(hostile.id, hostile.persona_id, "Plain", "hello", plain_nodes)
    structure = {
        "ink": lambda t: re.findall(r"^(?:=== \w+ ===|\+ \[.*?\] -> \w+|-> END)$", t, re.M),
        "yarn": lambda t: re.findall(r"^(?:title: \w+|---|===|-> .*|    <<jump \w+>>)$", t, re.M),
        "twee": lambda t: re.findall(r"^:: .*$|\[\[.*?->\w+\]\]", t, re.M),
        "dialogue": lambda t: re.findall(r"^(?:~ \w+|- .* => \w+|=> END)$", t, re.M),
    }[fmt]
    assert len(structure(export_tree(hostile, fmt))) == len(structure(export_tree(plain, fmt)))


def test_checks_catch_broken_files(hand_made: DialogueTree) -> None:
    yarn = export_tree(hand_made, "yarn")
    with pytest.raises(TreeError, match="does not exist"):
        check_yarn(yarn.replace("<<jump blacksmith_n_1>>", "<<jump blacksmith_nowhere>>"))
    twee = export_tree(hand_made, "twee")
    with pytest.raises(TreeError, match="does not exist"):
        check_twee(twee.replace("->n_2]]", "->n_9]]"))
    with pytest.raises(TreeError, match="ifid"):
        check_twee(re.sub(r'"ifid": "[^"]+"', '"ifid": "nope"', twee))
    dialogue = export_tree(hand_made, "dialogue")
    with pytest.raises(TreeError, match="does not exist"):
        check_dialogue(dialogue.replace("=> n_3", "=> n_33"))
    with pytest.raises(TreeError, match="syntax"):
        check_dialogue(dialogue.replace("Mind the sparks", "Mind [#the] sparks"))
