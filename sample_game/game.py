"""Emberfall's game state and rules, without any drawing or input handling: who is where, what time and weather
it is, what the player holds, and how a player line becomes a ``say`` with the NPC's view and scene facts.

The frame loop (:mod:`sample_game.app`) and the script director (:mod:`sample_game.director`) both drive a
:class:`Game` through :meth:`Game.update` and :meth:`Game.say`; neither ever waits on the network.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sample_game.actors import TALK_RANGE, Creature, Player
from sample_game.cast import CastMember
from sample_game.dialogue import FAILED, DialogueLog, Exchange
from sample_game.net import NetWorker, SayJob, Status
from sample_game.scene import SceneFacts, Sprite, compose, scene_rng
from sample_game.village import NpcPlace, Village, build_village
from sample_game.world import CREATURES, NOTHING, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

__all__ = ["GameConfig", "Game", "CONNECTING", "ONLINE", "OFFLINE"]

log = logging.getLogger(__name__)

CONNECTING, ONLINE, OFFLINE = "connecting", "online", "offline"
IMAGE_FORMATS = ("png", "jpeg")


@dataclass(frozen=True)
class GameConfig:
    """How a game starts. ``day_length_s`` > 0 advances the time of day by itself every that many seconds."""

    seed: int = 0
    time_of_day: str = "morning"
    weather: str = "clear"
    player_item: str = NOTHING
    creatures: int = 8
    day_length_s: float = 0.0
    session_prefix: str = "emberfall"
    image_format: str = "png"

    def __post_init__(self) -> None:
        if self.time_of_day not in TIMES_OF_DAY:
            raise ValueError(f"unknown time of day {self.time_of_day!r}; expected one of {TIMES_OF_DAY}")
        if self.weather not in WEATHERS:
            raise ValueError(f"unknown weather {self.weather!r}; expected one of {WEATHERS}")
        if self.player_item not in PLAYER_ITEMS:
            raise ValueError(f"unknown item {self.player_item!r}; expected one of {PLAYER_ITEMS}")
        if not 0 <= self.creatures <= 40:
            raise ValueError(f"creatures must be within 0..40, got {self.creatures}")
        if self.day_length_s < 0:
            raise ValueError("day_length_s must be >= 0")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}")


class Game:
    """The whole game state; ``net`` may be None (then the game is simply offline)."""

    def __init__(self, config: GameConfig, cast: Mapping[str, CastMember], net: NetWorker | None = None) -> None:
        self.config = config
        self.cast = dict(cast)
        self.net = net
        self.village: Village = build_village(config.seed)
        square = self.village.districts["square"]
        self.player = Player(square[0] + 120.0, square[1] + 112.0, config.player_item)
        self.time_of_day = config.time_of_day
        self.weather = config.weather
        self.rng = scene_rng(config.seed, "game")
        self.creatures: list[Creature] = []
        for _ in range(config.creatures):
            self.spawn_creature(CREATURES[int(self.rng.integers(len(CREATURES)))])
        self.log = DialogueLog()
        self.status = CONNECTING if net is not None else OFFLINE
        self.status_detail = ""
        self.clock_s = 0.0
        self.frame_index = 0
        self.frame: np.ndarray | None = None  # (H, W, 3) uint8, the last composed map frame
        self.finished_at: dict[int, float] = {}  # line id -> game clock when its reply ended
        self._next_line_id = 1
        self._day_timer = 0.0

    # --- who and what is where ------------------------------------------------------------------------------

    def name_of(self, persona: str) -> str:
        member = self.cast.get(persona)
        return member.name if member else persona.capitalize()

    def nearest_npc(self, max_distance: float = TALK_RANGE) -> NpcPlace | None:
        """The NPC closest to the player within ``max_distance`` base pixels, if any."""
        best, best_distance = None, max_distance
        for place in self.village.npcs:
            distance = math.hypot(place.x - self.player.x, place.y - self.player.y)
            if distance <= best_distance:
                best, best_distance = place, distance
        return best

    def creatures_in(self, location: str) -> tuple[str, ...]:
        """Kinds of the creatures inside ``location``'s district, nearest to its NPC spot first."""
        x0, y0, x1, y1 = self.village.districts[location]
        inside = [c for c in self.creatures if x0 <= c.x < x1 and y0 <= c.y < y1]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        inside.sort(key=lambda c: math.hypot(c.x - cx, c.y - cy))
        return tuple(c.kind for c in inside[:8])

    def facts_for(self, persona: str) -> SceneFacts:
        """What ``persona`` can see right now, as scene facts."""
        place = self.village.npc(persona)
        return SceneFacts(
            location=place.location,
            time_of_day=self.time_of_day,
            weather=self.weather,
            nearby=self.creatures_in(place.location),
            player_item=self.player.item,
            npc=persona,
        )

    def sprites(self) -> list[Sprite]:
        npcs = [
            Sprite("npc", p.persona, p.x, p.y, flip=self.player.x < p.x) for p in self.village.npcs
        ]
        return npcs + [c.sprite() for c in self.creatures] + [self.player.sprite()]

    # --- pictures -------------------------------------------------------------------------------------------

    def compose_frame(self) -> np.ndarray:
        """Draws the whole map as it is now: (H, W, 3) uint8, also kept in :attr:`frame`."""
        weather_rng = scene_rng(self.config.seed, "weather", str(self.frame_index))
        self.frame = compose(
            self.village.background, self.village.lights, self.sprites(), self.time_of_day, self.weather, weather_rng
        )
        return self.frame

    def npc_view(self, persona: str) -> np.ndarray:
        """The NPC's view: the district it stands in, cut from a freshly composed frame. (120, 160, 3) uint8."""
        frame = self.compose_frame()
        x0, y0, x1, y1 = (int(v) for v in self.village.districts[self.village.npc(persona).location])
        return frame[y0:y1, x0:x1].copy()

    def encode_view(self, pixels: np.ndarray) -> dict:
        """The protocol's ``image`` map for an (H, W, 3) uint8 picture."""
        buffer = io.BytesIO()
        image = Image.fromarray(pixels)
        if self.config.image_format == "png":
            image.save(buffer, format="PNG")
        else:
            image.save(buffer, format="JPEG", quality=90)
        return {"format": self.config.image_format, "data": buffer.getvalue(), "width": image.width,
                "height": image.height}

    # --- changing the world ---------------------------------------------------------------------------------

    def set_time(self, time_of_day: str) -> None:
        if time_of_day not in TIMES_OF_DAY:
            raise ValueError(f"unknown time of day {time_of_day!r}; expected one of {TIMES_OF_DAY}")
        self.time_of_day = time_of_day

    def set_weather(self, weather: str) -> None:
        if weather not in WEATHERS:
            raise ValueError(f"unknown weather {weather!r}; expected one of {WEATHERS}")
        self.weather = weather

    def hold(self, item: str) -> None:
        if item not in PLAYER_ITEMS:
            raise ValueError(f"unknown item {item!r}; expected one of {PLAYER_ITEMS}")
        self.player.item = item

    def cycle(self, what: str) -> str:
        """Steps ``"time"``, ``"weather"`` or ``"item"`` to its next value; returns the new value."""
        options = {"time": TIMES_OF_DAY, "weather": WEATHERS, "item": PLAYER_ITEMS}[what]
        current = {"time": self.time_of_day, "weather": self.weather, "item": self.player.item}[what]
        value = options[(options.index(current) + 1) % len(options)]
        {"time": self.set_time, "weather": self.set_weather, "item": self.hold}[what](value)
        return value

    def spawn_creature(self, kind: str, near: tuple[float, float] | None = None) -> Creature:
        """Adds a creature on a walkable spot (within 40 px of ``near`` when given)."""
        width, height = self.village.size
        for _ in range(200):
            if near is None:
                x, y = float(self.rng.uniform(0, width)), float(self.rng.uniform(0, height))
            else:
                x = near[0] + float(self.rng.uniform(-40, 40))
                y = near[1] + float(self.rng.uniform(-30, 30))
            if not self.village.blocked(x, y):
                break
        creature = Creature(kind, x, y, rng=np.random.default_rng(self.rng.integers(2**63)))
        self.creatures.append(creature)
        return creature

    # --- talking --------------------------------------------------------------------------------------------

    def say(self, text: str, persona: str | None = None) -> Exchange | None:
        """Sends ``text`` to ``persona`` (the nearest NPC by default) with its view and facts; never blocks.

        Returns the new exchange, or None when no NPC is in range or the text is blank.
        """
        text = " ".join(text.split())
        if not text:
            return None
        if persona is None:
            place = self.nearest_npc()
            if place is None:
                return None
            persona = place.persona
        exchange = Exchange(self._next_line_id, persona, self.name_of(persona), text)
        self._next_line_id += 1
        self.log.add(exchange)
        if self.net is None:
            exchange.state, exchange.error = FAILED, "server offline"
            self.finished_at[exchange.line_id] = self.clock_s
            return exchange
        facts = self.facts_for(persona)
        image = self.encode_view(self.npc_view(persona))
        session = f"{self.config.session_prefix}:{persona}"
        self.net.submit(SayJob(exchange.line_id, persona, session, text, image, facts.to_context()))
        return exchange

    # --- time passing ---------------------------------------------------------------------------------------

    def update(self, dt: float, move: tuple[float, float] = (0.0, 0.0)) -> None:
        """Advances the world by ``dt`` seconds: network events, the player's step, creatures, the day."""
        self.clock_s += dt
        self.frame_index += 1
        if self.net is not None:
            for event in self.net.poll():
                if isinstance(event, Status):
                    self.status = ONLINE if event.online else OFFLINE
                    self.status_detail = event.detail
                    continue
                exchange = self.log.apply(event)
                if exchange is not None and exchange.finished:
                    self.finished_at[exchange.line_id] = self.clock_s
        self.player.move(self.village, move[0], move[1], dt)
        for creature in self.creatures:
            creature.update(self.village, dt)
        if self.config.day_length_s > 0:
            self._day_timer += dt
            if self._day_timer >= self.config.day_length_s:
                self._day_timer = 0.0
                self.cycle("time")

    def pending(self) -> bool:
        """Whether any exchange still waits for its reply."""
        return any(not e.finished for e in self.log.exchanges)
