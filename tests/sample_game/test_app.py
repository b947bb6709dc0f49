"""Keyboard handling and drawing of the pygame front end, on SDL's dummy drivers with a fake network."""

from __future__ import annotations

import numpy as np
import pygame
import pytest

from sample_game.app import App
from sample_game.game import ONLINE
from sample_game.net import Replied, Status
from sample_game.portraits import EMOTION_COLORS
from sample_game.ui import window_size


def key(app: App, code: int, up: bool = False) -> None:
    app.handle(pygame.event.Event(pygame.KEYUP if up else pygame.KEYDOWN, key=code, mod=0, unicode=""))


def type_text(app: App, text: str) -> None:
    app.handle(pygame.event.Event(pygame.TEXTINPUT, text=text))


@pytest.fixture
def app(pygame_headless, game) -> App:
    return App(game)


def stand_next_to(app: App, persona: str) -> None:
    place = app.game.village.npc(persona)
    app.game.player.x, app.game.player.y = place.x + 18, place.y + 2


def test_typing_a_line_sends_it_to_the_nearest_npc(app, fake_net):
    stand_next_to(app, "innkeeper")
    key(app, pygame.K_RETURN)
    assert app.ui.typing == ""
    type_text(app, "A room, ")
    type_text(app, "please!x")
    key(app, pygame.K_BACKSPACE)
    before = (app.game.player.x, app.game.player.y)
    key(app, pygame.K_w)  # a letter while typing is text, not a step north
    app.frame()
    assert (app.game.player.x, app.game.player.y) == before
    key(app, pygame.K_RETURN)
    assert app.ui.typing is None
    assert [(j.persona, j.text) for j in fake_net.jobs] == [("innkeeper", "A room, please!")]


def test_escape_cancels_typing_and_then_quits(app, fake_net):
    stand_next_to(app, "guard")
    key(app, pygame.K_RETURN)
    type_text(app, "never mind")
    key(app, pygame.K_ESCAPE)
    assert app.ui.typing is None and app.running and fake_net.jobs == []
    key(app, pygame.K_ESCAPE)
    assert not app.running


def test_number_keys_say_suggested_lines(app, fake_net):
    stand_next_to(app, "blacksmith")
    key(app, pygame.K_2)
    assert fake_net.jobs[0].text == app.game.cast["blacksmith"].suggestions[1]


def test_scene_keys_change_time_weather_item_and_creatures(app):
    game = app.game
    before = len(game.creatures)
    for code in (pygame.K_t, pygame.K_r, pygame.K_i, pygame.K_c):
        key(app, code)
    assert (game.time_of_day, game.weather, game.player.item) == ("evening", "rain", "sword")
    assert len(game.creatures) == before + 1
    key(app, pygame.K_F3)
    assert app.ui.show_latency


def test_held_arrow_keys_walk_until_released(app):
    player = app.game.player
    start = player.x
    key(app, pygame.K_RIGHT)
    for _ in range(10):
        app.frame()
    moved = player.x
    assert moved > start + 10
    key(app, pygame.K_RIGHT, up=True)
    app.frame()
    assert player.x == moved


def test_a_reply_is_drawn_as_a_bubble_in_the_emotion_colour(app, fake_net):
    stand_next_to(app, "child")
    exchange = app.game.say("Catch any fish?")
    app.frame()
    bare = pygame.surfarray.array3d(app.surface).swapaxes(0, 1).copy()
    fake_net.events = [Status(True, "ok"), Replied(exchange.line_id, "A big one!", "surprise", 0.9, 5, 9, {})]
    app.ui.show_latency = True
    app.frame()
    assert app.game.status == ONLINE
    shot = pygame.surfarray.array3d(app.surface).swapaxes(0, 1)
    assert shot.shape == (window_size(app.game)[1], window_size(app.game)[0], 3)
    colour = np.asarray(EMOTION_COLORS["surprise"])
    was = (np.abs(bare.astype(int) - colour).sum(2) == 0).sum()
    now = (np.abs(shot.astype(int) - colour).sum(2) == 0).sum()
    assert now > was + 100  # the bubble's border, the icon and the history line


def test_screenshot_writes_a_png(app, tmp_path):
    app.frame()
    path = app.screenshot(tmp_path / "shots" / "frame.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
