"""Scene facts validate against the world, and the renderer is deterministic, headless and shows the facts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sample_game.landmarks import DISTRICT_SIZE
from sample_game.scene import SceneFacts, render_scene
from sample_game.world import CREATURES, LOCATIONS, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS


def _facts(**overrides) -> SceneFacts:
    base = dict(location="forge", time_of_day="noon", weather="clear")
    base.update(overrides)
    return SceneFacts(**base)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize(
    "field, value",
    [
        ("location", "moon"),
        ("time_of_day", "dusk"),
        ("weather", "hail"),
        ("nearby", ("dragon",)),
        ("nearby", "wolf"),
        ("nearby", ("wolf",) * 9),
        ("player_item", "bazooka"),
        ("npc", "wizard"),
    ],
)
def test_facts_reject_unknown_values(field, value):
    with pytest.raises(ValueError):
        _facts(**{field: value})


def test_facts_to_context_is_the_protocol_map():
    facts = _facts(nearby=["wolf", "crow"], player_item="torch", npc="blacksmith", time_of_day="night")
    assert facts.nearby == ("wolf", "crow")  # lists are frozen into tuples
    assert facts.to_context() == {
        "time_of_day": "night",
        "weather": "clear",
        "location": "forge",
        "nearby": "wolf, crow",
        "player_item": "torch",
    }
    assert _facts().to_context()["nearby"] == ""
    assert _facts().to_context()["player_item"] == "nothing"


def test_render_is_deterministic_and_seed_dependent():
    facts = _facts(nearby=("dog",), player_item="sword", npc="blacksmith")
    a = render_scene(facts, seed=3)
    b = render_scene(facts, seed=3)
    c = render_scene(facts, seed=4)
    assert a.shape == (DISTRICT_SIZE[1], DISTRICT_SIZE[0], 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_resizes_to_width_height():
    out = render_scene(_facts(), size=(64, 48), seed=0)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError):
        render_scene(_facts(), size=(0, 10))
    with pytest.raises(ValueError):
        render_scene(_facts(), size=(10,))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_scene(_facts(), seed="x")  # type: ignore[arg-type]


def test_every_combination_of_place_time_and_weather_renders():
    for index, (loc, tod, weather) in enumerate(itertools.product(LOCATIONS, TIMES_OF_DAY, WEATHERS)):
        facts = SceneFacts(
            loc, tod, weather,
            nearby=(CREATURES[index % len(CREATURES)],),
            player_item=PLAYER_ITEMS[index % len(PLAYER_ITEMS)],
        )
        out = render_scene(facts, size=(64, 64), seed=index)
        assert out.shape == (64, 64, 3)
        assert out.std() > 5  # a picture, not a flat fill


def _mean_over_seeds(seeds=range(4), **overrides) -> np.ndarray:
    return np.mean([render_scene(_facts(**overrides), size=(64, 64), seed=s).astype(np.float32) for s in seeds], 0)


def test_places_differ_more_than_seeds_of_one_place():
    same_place = _diff(render_scene(_facts(location="market"), seed=1), render_scene(_facts(location="market"), seed=2))
    for other in ("forge", "gate", "riverside", "temple"):
        d = _diff(render_scene(_facts(location="market"), seed=1), render_scene(_facts(location=other), seed=1))
        assert d > same_place, other


def test_times_of_day_change_the_light():
    means = {t: render_scene(_facts(time_of_day=t), seed=5).reshape(-1, 3).mean(0) for t in TIMES_OF_DAY}
    assert means["night"].sum() < 0.6 * means["noon"].sum()
    assert means["night"][2] > means["night"][0]  # blue night
    assert means["evening"][0] > 1.3 * means["evening"][2]  # orange evening
    for a, b in itertools.combinations(TIMES_OF_DAY, 2):
        assert np.abs(means[a] - means[b]).max() > 8, (a, b)


def test_weather_is_visible():
    clear = render_scene(_facts(weather="clear"), seed=7)
    for weather in ("rain", "fog", "snow"):
        assert _diff(clear, render_scene(_facts(weather=weather), seed=7)) > 8, weather
    fog = render_scene(_facts(weather="fog"), seed=7)
    assert fog.std() < clear.std()  # fog washes out contrast


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(changed pixel count, box width, box height) of where ``a`` and ``b`` differ."""
    changed = np.any(a != b, axis=2)
    ys, xs = np.nonzero(changed)
    if len(xs) == 0:
        return 0, 0, 0
    return int(changed.sum()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_each_creature_is_a_readable_sprite_of_its_own():
    empty = render_scene(_facts(location="meadow"), seed=9)
    seen = []
    for kind in CREATURES:
        with_one = render_scene(_facts(location="meadow", nearby=(kind,)), seed=9)
        count, width, height = _changed_box(empty, with_one)
        assert count > 150 and width <= 60 and height <= 60, (kind, count, width, height)
        seen.append(with_one)
    for a, b in itertools.combinations(range(len(CREATURES)), 2):
        assert not np.array_equal(seen[a], seen[b]), (CREATURES[a], CREATURES[b])


def test_each_held_item_is_drawn_at_the_player():
    bare = render_scene(_facts(location="square", npc="guide"), seed=2)
    for item in PLAYER_ITEMS[1:]:
        held = render_scene(_facts(location="square", npc="guide", player_item=item), seed=2)
        count, width, height = _changed_box(bare, held)
        assert count > 50 and width <= 45 and height <= 45, (item, count, width, height)


def test_the_npc_is_drawn_when_named():
    nobody = render_scene(_facts(location="meadow"), seed=4)
    child = render_scene(_facts(location="meadow", npc="child"), seed=4)
    assert _diff(nobody, child) > 0.5


def test_render_needs_no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert render_scene(_facts(), seed=0).shape == (120, 160, 3)
