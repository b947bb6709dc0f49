"""The pygame side of Emberfall: start-up (with SDL's dummy drivers when headless), keyboard and mouse
handling, the frame loop, and screenshots. The loop only ever polls the network worker."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pygame

from sample_game.game import Game
from sample_game.ui import Renderer, UiState, window_size
from sample_game.world import CREATURES

__all__ = ["init_pygame", "App", "FRAME_DT"]

log = logging.getLogger(__name__)

#: Seconds of game time per frame (30 frames per second).
FRAME_DT = 1.0 / 30.0
_MOVE_KEYS = {
    pygame.K_LEFT: (-1, 0), pygame.K_a: (-1, 0),
    pygame.K_RIGHT: (1, 0), pygame.K_d: (1, 0),
    pygame.K_UP: (0, -1), pygame.K_w: (0, -1),
    pygame.K_DOWN: (0, 1), pygame.K_s: (0, 1),
}  # fmt: skip
_SUGGESTION_KEYS = {pygame.K_1: 0, pygame.K_2: 1, pygame.K_3: 2}


def init_pygame(headless: bool) -> None:
    """Starts pygame's display and fonts; ``headless`` selects SDL's dummy video and audio drivers."""
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    pygame.display.init()
    pygame.font.init()


class App:
    """One window (or off-screen surface) showing one game."""

    def __init__(self, game: Game, screenshot_dir: Path | None = None) -> None:
        self.game = game
        self.ui = UiState()
        self.surface = pygame.display.set_mode(window_size(game))
        pygame.display.set_caption("Emberfall: an NPC runtime sample")
        self.renderer = Renderer()
        self.screenshot_dir = screenshot_dir or Path.cwd()
        self.running = True
        self._held: set[int] = set()

    # --- one frame ------------------------------------------------------------------------------------------

    def frame(self, dt: float = FRAME_DT, move: tuple[float, float] | None = None) -> None:
        """Advances the game by ``dt`` and redraws; ``move`` overrides the keyboard (scripted walks)."""
        self.game.update(dt, self._keyboard_move() if move is None else move)
        self.renderer.draw(self.surface, self.game, self.ui)
        pygame.display.flip()

    def screenshot(self, path: str | Path) -> Path:
        """Saves the current frame (map and panel) as PNG."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(target))
        log.info("screenshot saved to %s", target)
        return target

    def flash(self, message: str, seconds: float = 3.0) -> None:
        self.ui.message, self.ui.message_until = message, self.game.clock_s + seconds

    def _keyboard_move(self) -> tuple[float, float]:
        if self.ui.typing is not None:
            return (0.0, 0.0)
        dx = sum(_MOVE_KEYS[k][0] for k in self._held if k in _MOVE_KEYS)
        dy = sum(_MOVE_KEYS[k][1] for k in self._held if k in _MOVE_KEYS)
        return (float(dx), float(dy))

    # --- input ----------------------------------------------------------------------------------------------

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYUP:
            self._held.discard(event.key)
        elif event.type == pygame.MOUSEWHEEL:
            self.game.log.scroll_by(event.y)
        elif event.type == pygame.TEXTINPUT and self.ui.typing is not None:
            self.ui.typing = (self.ui.typing + event.text)[:300]
        elif event.type == pygame.KEYDOWN:
            if self.ui.typing is not None:
                self._typing_key(event)
            else:
                self._held.add(event.key)
                self._command_key(event)

    def _typing_key(self, event: pygame.event.Event) -> None:
        if event.key == pygame.K_RETURN:
            text, self.ui.typing = self.ui.typing or "", None
            if self.game.say(text) is None and text.strip():
                self.flash("Nobody is close enough to hear you.")
        elif event.key == pygame.K_ESCAPE:
            self.ui.typing = None
        elif event.key == pygame.K_BACKSPACE:
            self.ui.typing = (self.ui.typing or "")[:-1]

    def _command_key(self, event: pygame.event.Event) -> None:
        game, key = self.game, event.key
        if key == pygame.K_ESCAPE:
            self.running = False
        elif key == pygame.K_RETURN:
            if game.nearest_npc() is None:
                self.flash("Walk up to someone to talk.")
            else:
                self.ui.typing = ""
                self._held.clear()
        elif key in _SUGGESTION_KEYS:
            near = game.nearest_npc()
            if near is not None and near.persona in game.cast:
                lines = game.cast[near.persona].suggestions
                if _SUGGESTION_KEYS[key] < len(lines):
                    game.say(lines[_SUGGESTION_KEYS[key]], near.persona)
        elif key == pygame.K_t:
            self.flash(f"Time: {game.cycle('time')}")
        elif key == pygame.K_r:
            self.flash(f"Weather: {game.cycle('weather')}")
        elif key == pygame.K_i:
            self.flash(f"Holding: {game.cycle('item')}")
        elif key == pygame.K_c:
            kind = CREATURES[int(game.rng.integers(len(CREATURES)))]
            game.spawn_creature(kind, near=(game.player.x, game.player.y))
            self.flash(f"A {kind} wanders in.")
        elif key == pygame.K_F3:
            self.ui.show_latency = not self.ui.show_latency
        elif key == pygame.K_F12:
            path = self.screenshot(self.screenshot_dir / f"emberfall-{game.frame_index:06d}.png")
            self.flash(f"Saved {path.name}")
        elif key == pygame.K_PAGEUP:
            game.log.scroll_by(1)
        elif key == pygame.K_PAGEDOWN:
            game.log.scroll_by(-1)

    # --- the interactive loop -------------------------------------------------------------------------------

    def run(self, fps: int = 30) -> None:
        clock = pygame.time.Clock()
        while self.running:
            dt = min(0.1, clock.tick(fps) / 1000.0)
            for event in pygame.event.get():
                self.handle(event)
            self.frame(dt)
