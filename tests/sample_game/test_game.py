"""Game rules: a player line becomes a ``say`` whose image is the NPC's view and whose context is the scene."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sample_game.cast import load_cast
from sample_game.dialogue import DONE, FAILED, STREAMING
from sample_game.game import OFFLINE, ONLINE, Game, GameConfig
from sample_game.landmarks import DISTRICT_SIZE
from sample_game.net import Chunk, Replied, Status
from sample_game.scene import compose, scene_rng


def stand_next_to(game: Game, persona: str) -> None:
    place = game.village.npc(persona)
    game.player.x, game.player.y = place.x + 18, place.y + 2


def decode(image: dict) -> np.ndarray:
    pixels = np.asarray(Image.open(io.BytesIO(image["data"])).convert("RGB"))
    assert pixels.shape == (image["height"], image["width"], 3)
    return pixels


def test_say_sends_the_npc_view_and_the_scene_facts(game, fake_net):
    game.set_time("night")
    game.set_weather("fog")
    game.hold("torch")
    stand_next_to(game, "blacksmith")
    place = game.village.npc("blacksmith")
    game.spawn_creature("wolf", near=(place.x, place.y - 10))
    exchange = game.say("  Do you   sell swords? ")
    assert exchange is not None and exchange.player_text == "Do you sell swords?"
    (job,) = fake_net.jobs
    assert job.persona == "blacksmith" and job.session == "emberfall:blacksmith"
    assert job.context == {
        "time_of_day": "night",
        "weather": "fog",
        "location": "forge",
        "nearby": "wolf",
        "player_item": "torch",
    }
    assert job.image["format"] == "png"
    assert decode(job.image).shape == (DISTRICT_SIZE[1], DISTRICT_SIZE[0], 3)


def test_the_attached_image_shows_the_npc_where_it_stands(game, fake_net):
    stand_next_to(game, "guard")
    game.say("Halt?")
    view = decode(fake_net.jobs[0].image)
    # The same frame drawn without the guard: the difference must be the guard's figure, at the guard's spot.
    sprites = [s for s in game.sprites() if not (s.kind == "npc" and s.name == "guard")]
    frame = compose(game.village.background, game.village.lights, sprites, game.time_of_day, game.weather,
                    scene_rng(0))
    x0, y0, x1, y1 = (int(v) for v in game.village.districts["gate"])
    without = frame[y0:y1, x0:x1]
    changed = np.any(np.abs(view.astype(int) - without.astype(int)) > 2, axis=2)
    ys, xs = np.nonzero(changed)
    place = game.village.npc("guard")
    assert changed.sum() > 80  # a whole figure, not a few pixels
    assert abs(xs.mean() - (place.x - x0)) < 10
    assert abs(ys.mean() - (place.y - y0 - 14)) < 12  # the figure stands above its feet
    assert ys.max() <= place.y - y0 + 3


def test_jpeg_views_decode(fake_net):
    game = Game(GameConfig(image_format="jpeg", creatures=0), load_cast(), fake_net)  # type: ignore[arg-type]
    stand_next_to(game, "healer")
    game.say("Hello")
    image = fake_net.jobs[0].image
    assert image["format"] == "jpeg" and image["data"][:2] == b"\xff\xd8"
    assert decode(image).shape == (120, 160, 3)


def test_nobody_in_range_means_no_say(game, fake_net):
    square = game.village.districts["meadow"]
    game.player.x, game.player.y = square[0] + 140, square[1] + 112
    assert game.nearest_npc() is None
    assert game.say("Anyone?") is None
    assert game.say("   ", "guard") is None
    assert fake_net.jobs == []


def test_events_stream_into_the_log_and_set_the_portrait_emotion(game, fake_net):
    stand_next_to(game, "merchant")
    exchange = game.say("Prices?")
    fake_net.events = [Status(True, "ok"), Chunk(exchange.line_id, "Ten ")]
    game.update(0.03)
    assert game.status == ONLINE and exchange.state == STREAMING and exchange.reply_text == "Ten "
    fake_net.events = [Replied(exchange.line_id, "Ten silver.", "anger", 0.8, 4.0, 20.0, {"total": 15.0})]
    game.update(0.03)
    assert exchange.state == DONE and exchange.reply_text == "Ten silver."
    assert game.log.last_emotion("merchant") == "anger"
    assert game.log.last_emotion("guard") == "neutral"
    line = exchange.transcript()
    assert "Tobias" in line or "Merchant" in line
    assert "'Prices?'" in line and "anger 0.80" in line and "first_token 4 ms" in line and "total 20 ms" in line


def test_without_a_network_worker_the_game_is_offline_and_lines_fail():
    game = Game(GameConfig(creatures=0), load_cast(), None)
    assert game.status == OFFLINE
    stand_next_to(game, "child")
    exchange = game.say("Hi!")
    assert exchange is not None and exchange.state == FAILED and "offline" in exchange.transcript()


def test_world_changes_are_validated_and_cycle(game):
    with pytest.raises(ValueError):
        game.set_time("dusk")
    with pytest.raises(ValueError):
        game.hold("bazooka")
    assert game.cycle("time") == "evening"
    assert game.cycle("weather") == "rain"
    assert game.cycle("item") == "sword"


def test_player_cannot_walk_through_walls(game):
    fountain = game.village.districts["square"]
    game.player.x, game.player.y = fountain[0] + 72, fountain[1] + 90
    for _ in range(60):
        game.update(1 / 30, (0.0, -1.0))  # straight north, into the fountain
    assert not game.village.blocked(game.player.x, game.player.y)
    assert game.player.y > fountain[1] + 60


def test_creatures_wander(game):
    creature = game.spawn_creature("dog")
    start = (creature.x, creature.y)
    for _ in range(300):
        game.update(1 / 30)
    assert (creature.x, creature.y) != start
    assert game.village.on_map(creature.x, creature.y)
