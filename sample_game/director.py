"""Scripted play for headless runs and demos: parses a script of walks, lines and world changes and plays it
frame by frame, writing a transcript (one line per exchange, with emotion and latencies).

Script format (one command per line; ``#`` starts a comment; see ``docs/sample_game.md``)::

    time night              weather rain            hold torch          spawn wolf [count]
    walk_to blacksmith      walk 240 180            wait 1.5            latency on|off
    say Do you sell swords? suggest 2               screenshot out.png
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from npc_runtime.errors import ConfigError
from sample_game.actors import TALK_RANGE, find_path, walkable_grid
from sample_game.app import FRAME_DT, App
from sample_game.dialogue import FAILED, Exchange
from sample_game.game import CONNECTING, Game
from sample_game.world import CREATURES, PERSONA_IDS, PLAYER_ITEMS, TIMES_OF_DAY, WEATHERS

__all__ = ["Command", "parse_script", "load_script", "Director", "COMMANDS"]

log = logging.getLogger(__name__)

#: Command name -> (least, most) arguments after splitting on whitespace (``say`` keeps the rest as one text).
COMMANDS: dict[str, tuple[int, int]] = {
    "time": (1, 1),
    "weather": (1, 1),
    "hold": (1, 2),
    "spawn": (1, 2),
    "walk_to": (1, 1),
    "walk": (2, 2),
    "wait": (1, 1),
    "say": (1, 1),
    "suggest": (1, 1),
    "screenshot": (1, 1),
    "latency": (1, 1),
}


@dataclass(frozen=True)
class Command:
    """One script line: command name, its arguments, and the 1-based line number for error messages."""

    name: str
    args: tuple[str, ...]
    line: int


def _check(command: Command) -> None:
    name, args = command.name, command.args
    allowed: dict[str, tuple[str, ...]] = {
        "time": TIMES_OF_DAY,
        "weather": WEATHERS,
        "walk_to": PERSONA_IDS,
        "latency": ("on", "off"),
    }
    if name in allowed and args[0] not in allowed[name]:
        raise ValueError(f"{name} expects one of {', '.join(allowed[name])}, got {args[0]!r}")
    if name == "hold" and " ".join(args) not in PLAYER_ITEMS:
        raise ValueError(f"hold expects one of {', '.join(PLAYER_ITEMS)}, got {' '.join(args)!r}")
    if name == "spawn":
        if args[0] not in CREATURES:
            raise ValueError(f"spawn expects one of {', '.join(CREATURES)}, got {args[0]!r}")
        if len(args) == 2 and not (args[1].isdigit() and 1 <= int(args[1]) <= 10):
            raise ValueError(f"spawn count must be 1..10, got {args[1]!r}")
    if name in ("walk", "wait"):
        try:
            values = [float(a) for a in args]
        except ValueError:
            raise ValueError(f"{name} expects numbers, got {' '.join(args)!r}") from None
        if name == "wait" and not 0 <= values[0] <= 600:
            raise ValueError("wait must be within 0..600 seconds")
    if name == "suggest" and args[0] not in ("1", "2", "3"):
        raise ValueError(f"suggest expects 1, 2 or 3, got {args[0]!r}")


def parse_script(text: str, source: str = "<script>") -> list[Command]:
    """Commands of a script; a bad line raises :class:`~npc_runtime.errors.ConfigError` naming it."""
    commands = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, rest = line.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name not in COMMANDS:
            raise ConfigError(f"{source}:{number}: unknown command {name!r}; expected one of {', '.join(COMMANDS)}")
        args = (rest,) if name in ("say", "screenshot") and rest else tuple(rest.split())
        least, most = COMMANDS[name]
        if not least <= len(args) <= most:
            raise ConfigError(f"{source}:{number}: {name} takes {least}..{most} arguments, got {len(args)}")
        command = Command(name, args, number)
        try:
            _check(command)
        except ValueError as exc:
            raise ConfigError(f"{source}:{number}: {exc}") from exc
        commands.append(command)
    return commands


def load_script(path: str | Path) -> list[Command]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read script {path}: {exc}") from exc
    return parse_script(text, str(path))


class Director:
    """Plays commands on an :class:`App`, one fixed-length frame at a time, writing the transcript to ``out``."""

    def __init__(self, app: App, out: TextIO, reply_timeout_s: float = 60.0, max_walk_frames: int = 1500) -> None:
        if reply_timeout_s <= 0:
            raise ValueError("reply_timeout_s must be positive")
        self.app = app
        self.out = out
        self.reply_timeout_s = reply_timeout_s
        self.max_walk_frames = max_walk_frames
        self.status_wait_s = 3.0
        self._free: np.ndarray | None = None
        self._status = CONNECTING

    @property
    def game(self) -> Game:
        return self.app.game

    def run(self, commands: list[Command]) -> list[Exchange]:
        """Plays every command, then waits for replies still on their way; returns the exchanges."""
        deadline = time.monotonic() + self.status_wait_s
        self._frame()
        while self.game.status == CONNECTING and time.monotonic() < deadline:
            self._frame()  # give the worker's first ping a moment, so the transcript starts with the status
        for command in commands:
            log.debug("script line %d: %s %s", command.line, command.name, " ".join(command.args))
            getattr(self, f"_do_{command.name}")(*command.args)
        self._wait_for_replies()
        return list(self.game.log.exchanges)

    # --- commands -------------------------------------------------------------------------------------------

    def _do_time(self, value: str) -> None:
        self.game.set_time(value)
        self.out.write(f"* time: {value}\n")

    def _do_weather(self, value: str) -> None:
        self.game.set_weather(value)
        self.out.write(f"* weather: {value}\n")

    def _do_hold(self, *words: str) -> None:
        self.game.hold(" ".join(words))
        self.out.write(f"* player holds: {' '.join(words)}\n")

    def _do_spawn(self, kind: str, count: str = "1") -> None:
        for _ in range(int(count)):
            self.game.spawn_creature(kind, near=(self.game.player.x, self.game.player.y))
        self.out.write(f"* spawned: {count} {kind}\n")

    def _do_latency(self, value: str) -> None:
        self.app.ui.show_latency = value == "on"

    def _do_wait(self, seconds: str) -> None:
        for _ in range(max(1, round(float(seconds) / FRAME_DT))):
            self._frame()

    def _do_screenshot(self, path: str) -> None:
        self._frame()
        self.app.screenshot(path)
        self.out.write(f"* screenshot: {path}\n")

    def _do_walk(self, x: str, y: str) -> None:
        self._walk((float(x), float(y)), arrive_within=3.0)

    def _do_walk_to(self, persona: str) -> None:
        self._walk(self._spot_next_to(persona), arrive_within=3.0)
        near = self.game.nearest_npc()
        where = f"next to {self.game.name_of(persona)}" if near and near.persona == persona else "but got stuck"
        self.out.write(f"* walked to the {self.game.village.npc(persona).location}, {where}\n")

    def _do_say(self, text: str) -> None:
        exchange = self.game.say(text)
        if exchange is None:
            self.out.write(f"* nobody in range heard: {text!r}\n")
            return
        self._wait_for(exchange)

    def _do_suggest(self, number: str) -> None:
        near = self.game.nearest_npc()
        if near is None or near.persona not in self.game.cast:
            self.out.write("* no suggestions: nobody in range\n")
            return
        lines = self.game.cast[near.persona].suggestions
        index = int(number) - 1
        if index >= len(lines):
            self.out.write(f"* {self.game.name_of(near.persona)} has no suggestion {number}\n")
            return
        self._do_say(lines[index])

    # --- helpers --------------------------------------------------------------------------------------------

    def _frame(self, move: tuple[float, float] | None = None) -> None:
        self.app.frame(move=move)
        if self.game.status != self._status:
            self._status = self.game.status
            detail = f" ({self.game.status_detail})" if self.game.status_detail else ""
            self.out.write(f"* server: {self._status}{detail}\n")

    def _spot_next_to(self, persona: str) -> tuple[float, float]:
        """A free spot beside ``persona`` where no other NPC stands closer (so ``say`` reaches the right one),
        on the side the player comes from when possible."""
        village, player = self.game.village, self.game.player
        place = village.npc(persona)
        side = -1.0 if player.x < place.x else 1.0
        offsets = [(26 * side, 2), (-26 * side, 2), (14 * side, 18), (-14 * side, 18), (0, 22)]
        for dx, dy in offsets:
            x, y = place.x + dx, place.y + dy
            if village.blocked(x, y):
                continue
            nearest = min(village.npcs, key=lambda p: math.hypot(p.x - x, p.y - y))
            if nearest.persona == persona:
                return (x, y)
        return (place.x + offsets[0][0], place.y + offsets[0][1])

    def _walk(self, goal: tuple[float, float], arrive_within: float) -> None:
        if self._free is None:
            self._free = walkable_grid(self.game.village)
        player = self.game.player
        waypoints = find_path(self.game.village, (player.x, player.y), goal, self._free)
        waypoints.append(goal)
        frames = 0
        for wx, wy in waypoints:
            while math.hypot(wx - player.x, wy - player.y) > arrive_within and frames < self.max_walk_frames:
                before = (player.x, player.y)
                self._frame(move=(wx - player.x, wy - player.y))
                frames += 1
                if (player.x, player.y) == before:
                    break  # walled in: take the next waypoint
        if math.hypot(goal[0] - player.x, goal[1] - player.y) > TALK_RANGE:
            log.warning("scripted walk stopped %.0f px short of %s", math.hypot(goal[0] - player.x,
                                                                                 goal[1] - player.y), goal)

    def _wait_for(self, exchange: Exchange) -> None:
        deadline = time.monotonic() + self.reply_timeout_s
        next_frame = time.monotonic()
        while not exchange.finished and time.monotonic() < deadline:
            # Frames keep running while the reply streams in, at the game's real pace: drawing flat out would
            # take CPU from a server on the same machine and inflate the latencies we report.
            next_frame += FRAME_DT
            time.sleep(max(0.0, next_frame - time.monotonic()))
            self._frame()
        if not exchange.finished:
            exchange.error, exchange.state = f"no reply within {self.reply_timeout_s:.0f} s", FAILED
        self.out.write(exchange.transcript() + "\n")
        self.out.flush()

    def _wait_for_replies(self) -> None:
        for exchange in self.game.log.exchanges:
            if not exchange.finished:
                self._wait_for(exchange)
