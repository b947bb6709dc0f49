"""The training-corpus builder draws exactly the scenes the game's renderer draws for the same facts."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from sample_game.scene import SceneFacts, render_scene
from sample_game.world import CREATURES, LOCATIONS, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("export.corpus") is None,
    reason="export/corpus.py (the corpus builder, owned by another engineer) is not in this checkout yet",
)

CASES = [
    SceneFacts(loc, tod, weather, nearby=(CREATURES[i % len(CREATURES)],) * (i % 3),
               player_item=PLAYER_ITEMS[i % len(PLAYER_ITEMS)])
    for i, (loc, tod, weather) in enumerate(itertools.islice(itertools.product(LOCATIONS, TIMES_OF_DAY, WEATHERS),
                                                             0, None, 7))
]


@pytest.mark.parametrize("size", [(64, 64), (160, 120)])
def test_corpus_scene_matches_the_game_renderer(size):
    from export.corpus import render_example_scene

    for seed, facts in enumerate(CASES):
        expected = render_scene(facts, size=size, seed=seed)
        got = np.asarray(render_example_scene(facts, size, seed))
        assert got.shape == expected.shape and got.dtype == np.uint8, facts
        assert np.array_equal(got, expected), facts
