"""The tree model: JSON round trip, validation, text cleaning."""

from __future__ import annotations

import json

import pytest

from npc_runtime.trees.model import Choice, DialogueTree, Emotion, TreeError, TreeNode, clean_text, safe_speaker

from .conftest import hand_made_tree


def test_clean_text_makes_one_line() -> None:
    assert clean_text("  a\nb\r\n\tc\x00d\u2028e  ") == "a b c d e"
    assert clean_text("ünï 漢字 🙂") == "ünï 漢字 🙂"
    assert clean_text("\x01\x02\n") == ""


def test_safe_speaker_keeps_names_and_drops_syntax() -> None:
    assert safe_speaker("Sister Elowen") == "Sister Elowen"
    assert safe_speaker("Jörg O'Neil-Smith") == "Jörg O'Neil-Smith"
    assert safe_speaker("Rolf [the] #1: {x}") == "Rolf the 1 x"
    assert safe_speaker("if only") == "If only"
    assert safe_speaker("::") == "NPC"


def test_json_round_trip_and_paths() -> None:
    tree = hand_made_tree()
    data = json.loads(tree.dumps())
    assert data["root"] == "n" and data["nodes"][0]["choices"][0] == {
        "text": "What do you sell?", "intent": "ask_trade", "next": "n_1"}  # fmt: skip
    assert DialogueTree.from_json(data) == tree
    paths = list(tree.paths())
    assert len(paths) == 4  # n_1_1, n_1_2, n_2, n_3
    assert [node.id for node, _ in paths[0]] == ["n", "n_1", "n_1_1"]
    assert all(node.end for node, choice in (p[-1] for p in paths))


def _data() -> dict:
    return json.loads(hand_made_tree().dumps())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["nodes"][0]["choices"][0].update(next="n_9"), "unknown node"),
        (lambda d: d["nodes"][1]["choices"][0].update(next="n_2"), "one level below|more than one way"),
        (lambda d: d["nodes"][0]["choices"][1].update(next="n_1"), "more than one way"),
        (lambda d: d["nodes"].append({**d["nodes"][2], "id": "orphan"}), "unreachable"),
        (lambda d: d["nodes"][2].update(id="n_1"), "duplicate"),
        (lambda d: d["nodes"][2].update(text=" \n "), "empty"),
        (lambda d: d["nodes"][2].update(id="2bad"), "node id"),
        (lambda d: d["nodes"][2]["emotion"].update(intensity=1.5), "intensity"),
        (lambda d: d["nodes"][2]["emotion"].update(label="Joy!"), "label"),
        (lambda d: d["nodes"][0]["choices"][1].update(text="What do you sell?"), "distinct"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(root="n_1"), "root"),
        (lambda d: d.update(nodes={}), "list"),
    ],
)
def test_malformed_trees_are_rejected(mutate, message: str) -> None:
    data = _data()
    mutate(data)
    with pytest.raises(TreeError, match=message):
        DialogueTree.from_json(data)


def test_loads_rejects_bad_json() -> None:
    with pytest.raises(TreeError, match="JSON"):
        DialogueTree.loads("{nope")


def test_constructor_checks_shape() -> None:
    leaf = TreeNode("n_1", 1, "Bye.", Emotion("neutral", 0.0))
    with pytest.raises(TreeError, match="level 0"):
        DialogueTree("t", "p", "S", "hi", (TreeNode("n", 1, "x", Emotion("joy", 0.1), (Choice("a", "i", "n_1"),)),
                                          leaf))  # fmt: skip
    with pytest.raises(TreeError, match="tree id"):
        DialogueTree("bad id", "p", "S", "hi", (TreeNode("n", 0, "x", Emotion("joy", 0.1)),))
