"""The world vocabulary is complete, consistent and described for text."""

from __future__ import annotations

import pytest

from sample_game import world


def test_vocabulary_matches_the_contract():
    assert world.LOCATIONS == (
        "forge", "inn", "market", "gate", "square", "temple", "riverside", "library", "meadow",
    )
    assert world.TIMES_OF_DAY == ("morning", "noon", "evening", "night")
    assert world.WEATHERS == ("clear", "rain", "fog", "snow")
    assert len(world.CREATURES) >= 6 and len(set(world.CREATURES)) == len(world.CREATURES)
    assert world.PLAYER_ITEMS[0] == world.NOTHING == "nothing"
    assert len(set(world.PLAYER_ITEMS)) == len(world.PLAYER_ITEMS)


def test_every_word_has_a_description():
    assert set(world.LOCATION_TEXT) == set(world.LOCATIONS)
    assert set(world.TIME_TEXT) == set(world.TIMES_OF_DAY)
    assert set(world.WEATHER_TEXT) == set(world.WEATHERS)
    assert set(world.CREATURE_TEXT) == set(world.CREATURES) == set(world.CREATURE_PLURALS)
    assert set(world.ITEM_TEXT) == set(world.PLAYER_ITEMS)
    assert world.LOCATION_TEXT["forge"] == "the forge"
    assert world.CREATURE_TEXT["wolf"] == "a wolf"


def test_npc_placement_uses_known_places_and_the_grid_covers_every_location():
    assert set(world.NPC_LOCATIONS) == set(world.PERSONA_IDS)
    assert world.NPC_HOME["blacksmith"] == "forge"
    assert world.NPC_LOCATIONS["bard"] == ("inn", "square")
    for places in world.NPC_LOCATIONS.values():
        assert places and all(p in world.LOCATIONS for p in places)
    cells = [loc for row in world.VILLAGE_GRID for loc in row]
    assert sorted(cells) == sorted(world.LOCATIONS)
    assert world.residents("inn") == ("innkeeper", "bard")
    assert world.residents("meadow") == ()
    with pytest.raises(ValueError):
        world.residents("moon")


def test_describe_creatures_counts_and_joins():
    assert world.describe_creatures([]) == ""
    assert world.describe_creatures(["wolf"]) == "a wolf"
    assert world.describe_creatures(["wolf", "crow", "crow"]) == "a wolf and two crows"
    assert world.describe_creatures(["cat", "dog", "pig"]) == "a cat, a dog and a pig"
    with pytest.raises(ValueError):
        world.describe_creatures(["dragon"])


def test_world_tables_are_read_only():
    with pytest.raises(TypeError):
        world.NPC_HOME["guard"] = "inn"  # type: ignore[index]
