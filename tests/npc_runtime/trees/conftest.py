"""Fixtures for the dialogue tree tests: hand-made, hostile and generated trees, and the npm interpreters.

A missing Node.js or npm package skips the tests that need it, unless ``NPC_REQUIRE_TOOLCHAINS=1`` (CI) makes
it a failure; ``engine_bridge/tools/install_toolchains.sh`` installs inkjs and yarn-bound.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from npc_runtime.trees.model import Choice, DialogueTree, Emotion, TreeNode

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / "engine_bridge" / ".toolchain" / "node_modules"
JS = Path(__file__).resolve().parent / "js"
INSTALL_HINT = "run engine_bridge/tools/install_toolchains.sh"

#: Every character and sequence the exporters must neutralise, plus quotes, non-ASCII, controls and newlines.
HOSTILE = (
    "a -> b <- c <> d // e /* f */ # g ~ h = i { j } | k [[ l ]] m << n >> \\ o \\n p {{ q }} r => s =>< t "
    "[#tag] [if x] [b]bold[/b] $> u % v \"double\" 'single' `tick` ``two`` ünïcödé 漢字 🙂 ::w x: y :: "
    "<!-- z --> &amp; &#91; ''bold'' //it// ===\nnew\tline\r\x00\x07 end"
)
#: Lines that begin with syntax in one format or another.
HOSTILE_STARTS = (
    "- dash", "* star", "+ plus", "= eq", "=== end", "~ tilde", "# hash", "-> div", "=> go", "<< cmd >>",
    "[[ link ]]", "{ brace }", ":: colon", "% pct", "| pipe", "TODO: x", "VAR x = 1", "if x", "do y", "`t` z",
    "\\ slash", "// c", "Note: this", "title: x", "---", "(label) x", "<- t", "EXTERNAL f()",
)  # fmt: skip


def _emotion(i: int) -> Emotion:
    labels = ("joy", "anger", "neutral", "fear", "surprise", "sadness", "disgust")
    return Emotion(labels[i % len(labels)], round((i * 37 % 100) / 100, 2))


def hand_made_tree() -> DialogueTree:
    """A small tree with every shape: a root with three options, a farewell leaf, a second level."""
    nodes = (
        TreeNode("n", 0, "Welcome to the forge, traveller.", Emotion("joy", 0.62), (
            Choice("What do you sell?", "ask_trade", "n_1"),
            Choice("Any news?", "rumours", "n_2"),
            Choice("Goodbye.", "farewell", "n_3"),
        )),
        TreeNode("n_1", 1, "Swords, forty silver. Daggers, twelve.", Emotion("neutral", 0.3), (
            Choice("How much for the dagger?", "buy", "n_1_1"),
            Choice("Farewell!", "farewell", "n_1_2"),
        )),
        TreeNode("n_2", 1, "Wolves in the meadow again.", Emotion("fear", 0.5)),
        TreeNode("n_3", 1, "Mind the sparks on your way out.", Emotion("neutral", 0.1)),
        TreeNode("n_1_1", 2, "Twelve silver, and cheap at that.", Emotion("joy", 0.9)),
        TreeNode("n_1_2", 2, "Come back when your blade needs mending.", Emotion("sadness", 0.2)),
    )  # fmt: skip
    return DialogueTree("blacksmith", "blacksmith", "Brenna Ashford", "Hello there!", nodes,
                        {"time_of_day": "night"}, {"note": "hand-made"})  # fmt: skip


def hostile_tree() -> DialogueTree:
    """Every hostile line as an NPC reply, and as a player option (options keep a word: see docs/trees.md)."""
    texts = [HOSTILE, *HOSTILE_STARTS]
    root_choices = tuple(Choice(f"{t} ({i})", "hostile", f"n_{i + 1}") for i, t in enumerate(texts))
    nodes = [TreeNode("n", 0, HOSTILE, _emotion(0), root_choices)]
    nodes += [TreeNode(f"n_{i + 1}", 1, t, _emotion(i + 1)) for i, t in enumerate(texts)]
    return DialogueTree("hostile-1", "guard", "Rolf [the] #1 {Gate}: Captain", HOSTILE, tuple(nodes))


@pytest.fixture
def hand_made() -> DialogueTree:
    return hand_made_tree()


@pytest.fixture
def hostile() -> DialogueTree:
    return hostile_tree()


@pytest.fixture(scope="session")
def generated_trees(tiny_engine: Any) -> list[DialogueTree]:
    """Two trees from the tiny random model (its replies are noise: control characters, any punctuation)."""
    from npc_runtime.personas import PersonaPack, default_pack_dir
    from npc_runtime.trees.generate import TreeJob, TreeSettings, generate_trees

    pack = PersonaPack.load(default_pack_dir())
    settings = TreeSettings(depth=2, branches=3, seed=5, max_tokens=12)
    jobs = [
        TreeJob("merchant-market", pack.get("merchant"), settings, "Do you sell lanterns?",
                {"location": "market", "player_item": "a rusty sword"}),  # fmt: skip
        TreeJob("guard", pack.get("guard"), settings),
    ]
    return generate_trees(tiny_engine, jobs, max_in_flight=64)


def requires_toolchains() -> bool:
    return os.environ.get("NPC_REQUIRE_TOOLCHAINS", "") == "1"


def need(condition: bool, reason: str) -> None:
    if condition:
        return
    if requires_toolchains():
        pytest.fail(f"{reason} (NPC_REQUIRE_TOOLCHAINS=1)")
    pytest.skip(reason)


@dataclass(frozen=True)
class NodeTools:
    """Runs the committed walker scripts with Node.js and the toolchain's node_modules."""

    node: str
    node_modules: Path

    def run(self, script: str, *args: str) -> dict:
        env = {**os.environ, "NODE_PATH": str(self.node_modules)}
        proc = subprocess.run(
            [self.node, str(JS / script), *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"{script} failed (rc {proc.returncode}): {proc.stderr[-2000:]}") from None
        result["returncode"] = proc.returncode
        return result


def _node_tools(package: str) -> NodeTools:
    node = shutil.which("node")
    need(node is not None, f"Node.js is not on PATH; {INSTALL_HINT}")
    need((NODE_MODULES / package / "package.json").is_file(), f"npm package {package} is missing; {INSTALL_HINT}")
    return NodeTools(str(node), NODE_MODULES)


@pytest.fixture
def inkjs() -> NodeTools:
    return _node_tools("inkjs")


@pytest.fixture
def yarn_bound() -> NodeTools:
    return _node_tools("yarn-bound")


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
