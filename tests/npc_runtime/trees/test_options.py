"""Player options fit the conversation: distinct, follow-ups first, farewells end branches, card-aware."""

from __future__ import annotations

import pytest

from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.trees.generate import TreeJob, TreeSettings, plan_tree
from npc_runtime.trees.lines import load_player_lines

LINES = load_player_lines()


@pytest.fixture(scope="module")
def pack() -> PersonaPack:
    return PersonaPack.load(default_pack_dir())


@pytest.mark.parametrize("persona", ["merchant", "guard", "healer", "child", "bard"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plans_are_sensible(pack: PersonaPack, persona: str, seed: int) -> None:
    job = TreeJob(persona, pack.get(persona), TreeSettings(depth=4, branches=3, seed=seed), context={"nearby": "cat"})
    plan = plan_tree(job, LINES)
    by_id = {n.id: n for n in plan}
    card = pack.get(persona)
    for node in plan:
        steps = [s for s, _ in node.options]
        assert len({s.text for s in steps}) == len(steps)  # distinct options
        if node.level >= job.settings.depth or node.path[-1].intent == "farewell":
            assert steps == []  # a farewell ends its branch; the last level has no options
            continue
        assert 1 <= len(steps) <= 3
        intents = [s.intent for s in steps]
        assert "greeting" not in intents  # no "Hello" in the middle of a conversation
        if node.level >= 1:
            assert intents[-1] == "farewell"
        said = [s.text for s in node.path]
        assert not set(s.text for s in steps) & set(said)  # never the same line twice on a path
        if node.path[-1].intent == "quest_ask":
            assert {"quest_accept", "quest_decline"} <= set(intents)
        for step in steps:
            if step.intent == "complaint":
                assert any(s.intent == "buy" and s.slot == step.slot for s in node.path)
            if step.intent in ("buy", "ask_trade"):
                assert card.knowledge.wares
            if step.intent in ("quest_accept", "quest_decline"):
                assert node.path[-1].intent == "quest_ask"
            if step.intent in ("sell", "ask_item"):
                pytest.fail("no player_item in the scene, so nothing to sell")
    assert all(by_id[n.parent].level == n.level - 1 for n in plan if n.parent)


def test_trade_questions_lead_to_prices(pack: PersonaPack) -> None:
    found = False
    for seed in range(20):
        job = TreeJob("m", pack.get("merchant"), TreeSettings(depth=2, branches=3, seed=seed))
        for node in plan_tree(job, LINES):
            if node.path[-1].intent == "ask_trade" and node.options:
                intents = [s.intent for s, _ in node.options]
                assert intents.count("buy") >= 1
                items = [s.slot for s, _ in node.options if s.intent == "buy"]
                assert len(set(items)) == len(items)
                found = True
    assert found


def test_opening_and_seed(pack: PersonaPack) -> None:
    card = pack.get("guard")
    custom = plan_tree(TreeJob("g", card, TreeSettings(seed=3), opening="Halt yourself!"), LINES)
    assert custom[0].path[0].text == "Halt yourself!" and custom[0].path[0].intent == "opening"
    a = plan_tree(TreeJob("g", card, TreeSettings(seed=3)), LINES)
    b = plan_tree(TreeJob("g", card, TreeSettings(seed=3)), LINES)
    c = plan_tree(TreeJob("g", card, TreeSettings(seed=4)), LINES)
    assert a[0].path[0].intent == "greeting"
    assert [(n.id, n.path) for n in a] == [(n.id, n.path) for n in b]
    assert [(n.id, n.path) for n in a] != [(n.id, n.path) for n in c]


def test_scene_facts_unlock_options(pack: PersonaPack) -> None:
    card = pack.get("merchant")
    intents = set()
    for seed in range(10):
        job = TreeJob("m", card, TreeSettings(depth=3, seed=seed), context={"player_item": "an old lute"})
        intents |= {s.intent for n in plan_tree(job, LINES) for s, _ in n.options}
        texts = [s.text for n in plan_tree(job, LINES) for s, _ in n.options if s.intent == "sell"]
        assert all("old lute" in t and "an old" not in t for t in texts)
    assert "sell" in intents or "ask_item" in intents


@pytest.mark.parametrize("bad", [{"depth": 0}, {"branches": 9}, {"seed": -1}, {"temperature": 3.0}, {"max_tokens": 0}])
def test_settings_check_themselves(bad: dict) -> None:
    with pytest.raises(ValueError):
        TreeSettings(**bad)
