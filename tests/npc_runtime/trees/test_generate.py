"""Batched tree generation with the tiny model: complete trees, the same tree for the same seed."""

from __future__ import annotations

from typing import Any

import pytest

from npc_runtime.errors import InferenceError
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.trees.generate import EMPTY_REPLY, TreeJob, TreeSettings, count_lines, generate_trees, plan_tree
from npc_runtime.trees.model import DialogueTree, clean_text


@pytest.fixture(scope="module")
def pack() -> PersonaPack:
    return PersonaPack.load(default_pack_dir())


def _jobs(pack: PersonaPack, seed: int, temperature: float = 0.8) -> list[TreeJob]:
    settings = TreeSettings(depth=2, branches=2, seed=seed, temperature=temperature, max_tokens=8)
    return [
        TreeJob("bard", pack.get("bard"), settings, context={"time_of_day": "night"}),
        TreeJob("healer", pack.get("healer"), settings, "My head hurts."),
    ]


def test_generated_trees_are_complete(generated_trees: list[DialogueTree], tiny_engine: Any) -> None:
    labels = set(tiny_engine.bundle.emotions)
    for tree in generated_trees:
        assert DialogueTree.loads(tree.dumps()) == tree
        assert all(clean_text(n.text) for n in tree.nodes)
        assert all(n.emotion.label in labels for n in tree.nodes)
        assert tree.meta["job_key"] and tree.meta["model"].startswith(tiny_engine.bundle.name)
        assert tree.meta["settings"]["seed"] == 5
    merchant = generated_trees[0]
    assert merchant.opening == "Do you sell lanterns?" and merchant.context["location"] == "market"


def test_tree_follows_its_plan(generated_trees: list[DialogueTree], pack: PersonaPack) -> None:
    tree = generated_trees[1]
    job = TreeJob("guard", pack.get("guard"), TreeSettings(depth=2, branches=3, seed=5, max_tokens=12))
    plan = plan_tree(job)
    assert [n.id for n in tree.nodes] == [n.id for n in plan]
    assert [[c.text for c in n.choices] for n in tree.nodes] == [[s.text for s, _ in p.options] for p in plan]
    assert count_lines([job]) == len(tree.nodes)


def test_same_seed_same_tree(pack: PersonaPack, tiny_engine: Any) -> None:
    progress: list[int] = []
    first = generate_trees(tiny_engine, _jobs(pack, seed=7), progress=progress.append)
    second = generate_trees(tiny_engine, _jobs(pack, seed=7))
    assert [t.dumps() for t in first] == [t.dumps() for t in second]
    assert sum(progress) == sum(len(t.nodes) for t in first)
    other = generate_trees(tiny_engine, _jobs(pack, seed=8))
    assert [n.text for n in other[0].nodes] != [n.text for n in first[0].nodes]


def test_greedy_tree_does_not_depend_on_its_batch(pack: PersonaPack, tiny_engine: Any) -> None:
    together = generate_trees(tiny_engine, _jobs(pack, seed=1, temperature=0.0))
    alone = generate_trees(tiny_engine, _jobs(pack, seed=1, temperature=0.0)[1:])
    assert [n.text for n in together[1].nodes] == [n.text for n in alone[0].nodes]


def test_prompts_carry_the_path_and_replies_are_cleaned(
    pack: PersonaPack, tiny_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import npc_runtime.trees.generate as gen
    from npc_runtime.batch import Generation

    seen: dict[str, Any] = {}

    def fake(engine: Any, prompts: list, options: Any, max_in_flight: int, progress: Any) -> list[Generation]:
        for p in prompts:
            seen[p.key] = p
        return [Generation(f"said {p.key}" if "_" in p.key else "\x01 \n", "joy", 1.7, 1, False, 1.0) for p in prompts]

    monkeypatch.setattr(gen, "generate", fake)
    trees = gen.generate_trees(tiny_engine, _jobs(pack, seed=2))
    healer = trees[1]
    assert healer.root.text == EMPTY_REPLY and healer.root.emotion.intensity == 1.0
    leaf = healer.node("n_1_1")
    prompt = seen["1/n_1_1"]
    assert prompt.player == healer.node("n_1").choices[0].text
    assert prompt.history == (("My head hurts.", EMPTY_REPLY), (healer.root.choices[0].text, "said 1/n_1"))
    assert prompt.options.seed != seen["1/n_1_2"].options.seed and prompt.options.max_tokens == 8
    assert leaf.text == "said 1/n_1_1"

    def failing(engine: Any, prompts: list, options: Any, max_in_flight: int, progress: Any) -> list[Generation]:
        return [Generation("", "", 0.0, 0, False, 0.0, error="internal: boom") for _ in prompts]

    monkeypatch.setattr(gen, "generate", failing)
    with pytest.raises(InferenceError, match="boom"):
        gen.generate_trees(tiny_engine, _jobs(pack, seed=2))
