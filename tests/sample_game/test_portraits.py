"""Portraits change with the emotion; icons exist for every label."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from npc_runtime.emotion import EMOTIONS
from sample_game.portraits import EMOTION_COLORS, draw_emotion_icon, draw_portrait
from sample_game.world import PERSONA_IDS


def test_every_persona_has_a_distinct_face_per_emotion():
    for persona in PERSONA_IDS + ("player",):
        faces = {e: np.asarray(draw_portrait(persona, e, 64)) for e in EMOTIONS}
        for a, b in itertools.combinations(EMOTIONS, 2):
            # Compare the face only (the frame colour alone would differ anyway).
            assert not np.array_equal(faces[a][12:52, 12:52], faces[b][12:52, 12:52]), (persona, a, b)


def test_personas_look_different():
    a = np.asarray(draw_portrait("guard", "joy"))
    b = np.asarray(draw_portrait("bard", "joy"))
    assert a.shape == (96, 96, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_icons_are_coloured_by_emotion():
    for emotion in EMOTIONS:
        icon = np.asarray(draw_emotion_icon(emotion, 20))
        assert icon.shape == (20, 20, 4)
        centre = icon[4:16, 4:16, :3].reshape(-1, 3).astype(int)
        distance = np.abs(centre - np.asarray(EMOTION_COLORS[emotion])).sum(1)
        assert (distance < 40).mean() > 0.3, emotion


def test_unknown_values_raise():
    with pytest.raises(ValueError):
        draw_portrait("dragon")
    with pytest.raises(ValueError):
        draw_portrait("guard", "boredom")
    with pytest.raises(ValueError):
        draw_emotion_icon("boredom")
