"""Draws a :class:`~sample_game.game.Game` into a pygame surface: the map, speech bubbles, the side panel with
portrait, status light and history log, the input line, and the F3 latency overlay.

Only reads the game; needs ``pygame.font`` initialised (the caller owns pygame's start-up and shut-down).
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame
from PIL import Image

from sample_game.dialogue import FAILED, Exchange
from sample_game.game import CONNECTING, OFFLINE, ONLINE, Game
from sample_game.portraits import EMOTION_COLORS, draw_emotion_icon, draw_portrait
from sample_game.text import wrap_text
from sample_game.world import LOCATION_TEXT

__all__ = ["UiState", "Renderer", "MAP_SCALE", "PANEL_WIDTH", "STATUS_COLORS", "status_light_center", "window_size"]

MAP_SCALE = 2
PANEL_WIDTH = 320
BUBBLE_SECONDS = 7.0
TALK_FOCUS = 60.0  # the panel shows an NPC's portrait from a little further away than talking range
STATUS_COLORS = {ONLINE: (60, 200, 90), OFFLINE: (220, 60, 50), CONNECTING: (240, 190, 40)}
PANEL_BG = (34, 30, 40)
TEXT = (235, 232, 225)
DIM = (160, 155, 150)
HELP = "WASD/arrows move · Enter talk · 1-3 suggestions · T time · R weather · I item · C creature · " \
       "PgUp/PgDn history · F3 latency · F12 screenshot · Esc quit"


def status_light_center(window_width: int) -> tuple[int, int]:
    """Where the connected/offline light sits in a window ``window_width`` pixels wide."""
    return (window_width - 100, 22)


def window_size(game: Game) -> tuple[int, int]:
    width, height = game.village.size
    return (width * MAP_SCALE + PANEL_WIDTH, height * MAP_SCALE)


def to_surface(image: Image.Image) -> pygame.Surface:
    return pygame.image.frombytes(image.tobytes(), image.size, image.mode)


@dataclass
class UiState:
    """What the player is doing with the interface: typing a line (``typing`` not None) and the F3 overlay."""

    typing: str | None = None
    show_latency: bool = False
    message: str = ""
    message_until: float = 0.0


class Renderer:
    """Holds fonts and cached portraits/icons; :meth:`draw` paints one whole frame."""

    def __init__(self) -> None:
        self.font = pygame.font.Font(None, 22)
        self.small = pygame.font.Font(None, 18)
        self.title = pygame.font.Font(None, 34)
        self._portraits: dict[tuple[str, str], pygame.Surface] = {}
        self._icons: dict[str, pygame.Surface] = {}

    def portrait(self, persona: str, emotion: str) -> pygame.Surface:
        key = (persona, emotion)
        if key not in self._portraits:
            self._portraits[key] = to_surface(draw_portrait(persona, emotion, 112))
        return self._portraits[key]

    def icon(self, emotion: str) -> pygame.Surface:
        if emotion not in self._icons:
            self._icons[emotion] = to_surface(draw_emotion_icon(emotion, 18))
        return self._icons[emotion]

    def wrap(self, text: str, font: pygame.font.Font, width: int, max_lines: int | None = None) -> list[str]:
        return wrap_text(text, lambda s: font.size(s)[0], width, max_lines)

    # --- the whole frame ------------------------------------------------------------------------------------

    def draw(self, surface: pygame.Surface, game: Game, ui: UiState) -> None:
        frame = game.compose_frame()  # (H, W, 3) uint8
        height, width = frame.shape[:2]
        world = pygame.image.frombuffer(frame.tobytes(), (width, height), "RGB")
        surface.blit(pygame.transform.scale(world, (width * MAP_SCALE, height * MAP_SCALE)), (0, 0))
        self._name_tags(surface, game)
        self._bubbles(surface, game)
        self._hint(surface, game, ui)
        self._panel(surface, game, ui, pygame.Rect(width * MAP_SCALE, 0, PANEL_WIDTH, height * MAP_SCALE))
        if ui.show_latency:
            self._latency(surface, game)

    # --- on the map -----------------------------------------------------------------------------------------

    def _name_tags(self, surface: pygame.Surface, game: Game) -> None:
        for place in game.village.npcs:
            label = self.small.render(game.name_of(place.persona), True, (255, 255, 255))
            x = int(place.x * MAP_SCALE - label.get_width() / 2)
            y = int(place.y * MAP_SCALE + 4)
            back = pygame.Surface((label.get_width() + 6, label.get_height() + 2), pygame.SRCALPHA)
            back.fill((0, 0, 0, 140))
            surface.blit(back, (x - 3, y - 1))
            surface.blit(label, (x, y))

    def _bubbles(self, surface: pygame.Surface, game: Game) -> None:
        width, height = game.village.size
        bounds = pygame.Rect(0, 0, width * MAP_SCALE, height * MAP_SCALE)
        shown = []
        for place in game.village.npcs:
            exchange = game.log.latest_for(place.persona)
            if exchange is None:
                continue
            ended = game.finished_at.get(exchange.line_id)
            if ended is not None and game.clock_s - ended > BUBBLE_SECONDS:
                continue
            shown.append((exchange.line_id, exchange, (int(place.x * MAP_SCALE), int((place.y - 40) * MAP_SCALE))))
        taken: list[pygame.Rect] = []
        for _, exchange, anchor in sorted(shown, key=lambda item: item[0]):  # the newest is drawn on top
            taken.append(self._bubble(surface, exchange, anchor, bounds, taken))

    def _bubble(
        self,
        surface: pygame.Surface,
        exchange: Exchange,
        anchor: tuple[int, int],
        bounds: pygame.Rect,
        taken: list[pygame.Rect],
    ) -> pygame.Rect:
        if exchange.state == FAILED:
            text, emotion = f"({exchange.error})", "neutral"
        else:
            text = exchange.reply_text or "…"
            emotion = exchange.emotion or "neutral"
        color = EMOTION_COLORS[emotion]
        lines = self.wrap(text, self.font, 240, max_lines=4)
        line_h = self.font.get_linesize()
        text_w = max(self.font.size(line)[0] for line in lines)
        box = pygame.Rect(0, 0, text_w + 40, line_h * len(lines) + 12)
        box.midbottom = anchor
        box.clamp_ip(bounds)
        for other in taken:  # a neighbour's bubble is already there: stack above it
            if box.colliderect(other) and other.top - box.height - 4 >= bounds.top:
                box.bottom = other.top - 4
        pygame.draw.polygon(surface, (250, 248, 240), [(anchor[0] - 8, box.bottom - 1), (anchor[0] + 8, box.bottom - 1),
                                                       (anchor[0], box.bottom + 12)])
        pygame.draw.rect(surface, (250, 248, 240), box, border_radius=8)
        pygame.draw.rect(surface, color, box, width=3, border_radius=8)
        if exchange.emotion is not None:
            surface.blit(self.icon(emotion), (box.x + 8, box.y + 6))
        for index, line in enumerate(lines):
            surface.blit(self.font.render(line, True, (30, 28, 26)), (box.x + 32, box.y + 6 + index * line_h))
        return box

    def _hint(self, surface: pygame.Surface, game: Game, ui: UiState) -> None:
        near = game.nearest_npc()
        text = ui.message if ui.message and game.clock_s < ui.message_until else ""
        if not text and near is not None and ui.typing is None:
            text = f"Enter: talk to {game.name_of(near.persona)}"
        if not text:
            return
        label = self.font.render(text, True, (255, 255, 255))
        box = label.get_rect(midbottom=(game.village.size[0] * MAP_SCALE // 2, surface.get_height() - 10))
        pygame.draw.rect(surface, (20, 20, 30), box.inflate(16, 8), border_radius=6)
        surface.blit(label, box)

    # --- the side panel -------------------------------------------------------------------------------------

    def _panel(self, surface: pygame.Surface, game: Game, ui: UiState, rect: pygame.Rect) -> None:
        pygame.draw.rect(surface, PANEL_BG, rect)
        x, y = rect.x + 12, rect.y + 10
        surface.blit(self.title.render("Emberfall", True, (250, 200, 120)), (x, y))
        light = STATUS_COLORS[game.status]
        center = status_light_center(rect.right)
        pygame.draw.circle(surface, light, center, 8)
        pygame.draw.circle(surface, (20, 20, 20), center, 8, 2)
        label = {ONLINE: "connected", OFFLINE: "offline", CONNECTING: "connecting"}[game.status]
        surface.blit(self.small.render(label, True, light), (center[0] + 14, center[1] - 6))
        y += 40
        scene = f"{game.time_of_day} · {game.weather} · holding {game.player.item}"
        surface.blit(self.small.render(scene, True, DIM), (x, y))
        y += 20
        near = game.nearest_npc(TALK_FOCUS)
        persona = near.persona if near else (game.log.exchanges[-1].persona if game.log.exchanges else None)
        if persona is not None:
            emotion = game.log.last_emotion(persona)
            surface.blit(self.portrait(persona, emotion), (x, y))
            surface.blit(self.font.render(game.name_of(persona), True, TEXT), (x + 122, y + 4))
            where = LOCATION_TEXT[game.village.npc(persona).location]
            surface.blit(self.small.render(f"{game.cast[persona].role if persona in game.cast else persona}",
                                           True, DIM), (x + 122, y + 26))
            surface.blit(self.small.render(where, True, DIM), (x + 122, y + 44))
            surface.blit(self.icon(emotion), (x + 122, y + 66))
            surface.blit(self.small.render(emotion, True, EMOTION_COLORS[emotion]), (x + 146, y + 70))
        y += 122
        history = pygame.Rect(x, y, rect.width - 24, rect.bottom - y - 130)
        self._history(surface, game, ui, history)
        self._input(surface, game, ui, pygame.Rect(x, history.bottom + 8, rect.width - 24, 118))

    def _history(self, surface: pygame.Surface, game: Game, ui: UiState, rect: pygame.Rect) -> None:
        pygame.draw.rect(surface, (24, 21, 28), rect, border_radius=6)
        clip = surface.get_clip()
        surface.set_clip(rect)
        y = rect.bottom - 6
        visible = game.log.exchanges[: len(game.log.exchanges) - game.log.scroll]
        for exchange in reversed(visible):
            rows = self._history_rows(exchange, ui.show_latency, rect.width - 34)
            for text, color, icon in reversed(rows):
                y -= self.small.get_linesize()
                if icon:
                    surface.blit(self.icon(icon), (rect.x + 6, y - 2))
                surface.blit(self.small.render(text, True, color), (rect.x + 28, y))
            y -= 6
            if y < rect.y:
                break
        surface.set_clip(clip)
        if game.log.scroll:
            note = self.small.render(f"▼ {game.log.scroll} newer (PgDn)", True, DIM)
            surface.blit(note, (rect.right - note.get_width() - 6, rect.bottom - 18))

    def _history_rows(self, exchange: Exchange, latency: bool, width: int) -> list[tuple[str, tuple, str | None]]:
        rows: list[tuple[str, tuple, str | None]] = []
        for line in self.wrap(f"You: {exchange.player_text}", self.small, width):
            rows.append((line, (150, 190, 250), None))
        if exchange.state == FAILED:
            reply, color, emotion = f"{exchange.npc_name}: ({exchange.error})", DIM, None
        else:
            emotion = exchange.emotion
            color = EMOTION_COLORS[emotion] if emotion else TEXT
            reply = f"{exchange.npc_name}: {exchange.reply_text or '…'}"
        for index, line in enumerate(self.wrap(reply, self.small, width)):
            rows.append((line, color, emotion if index == 0 else None))
        if latency and exchange.total_ms is not None and exchange.first_token_ms is not None:
            rows.append((f"  first {exchange.first_token_ms:.0f} ms · total {exchange.total_ms:.0f} ms", DIM, None))
        return rows

    def _input(self, surface: pygame.Surface, game: Game, ui: UiState, rect: pygame.Rect) -> None:
        near = game.nearest_npc()
        y = rect.y
        if ui.typing is not None:
            box = pygame.Rect(rect.x, y, rect.width, 28)
            pygame.draw.rect(surface, (250, 248, 240), box, border_radius=4)
            caret = "|" if int(game.clock_s * 2) % 2 == 0 else " "
            shown = self.wrap(ui.typing + caret, self.font, rect.width - 12, max_lines=1)[0]
            surface.blit(self.font.render(shown, True, (20, 20, 20)), (box.x + 6, box.y + 6))
            y += 34
        if near is not None and near.persona in game.cast:
            for index, line in enumerate(game.cast[near.persona].suggestions[:3]):
                text = self.wrap(f"{index + 1}) {line}", self.small, rect.width, max_lines=1)[0]
                surface.blit(self.small.render(text, True, (240, 220, 160)), (rect.x, y))
                y += 18
        for line in self.wrap(HELP, self.small, rect.width):
            if y > rect.bottom - 14:
                break
            surface.blit(self.small.render(line, True, DIM), (rect.x, y))
            y += 16

    # --- F3 -------------------------------------------------------------------------------------------------

    def _latency(self, surface: pygame.Surface, game: Game) -> None:
        rows = ["latency per line (client: first token / whole reply; server)"]
        for exchange in game.log.exchanges[-8:]:
            if exchange.total_ms is None or exchange.first_token_ms is None:
                rows.append(f"{exchange.npc_name[:18]:<18} {exchange.state}")
                continue
            server = exchange.server_timing_ms
            rows.append(
                f"{exchange.npc_name[:18]:<18} {exchange.first_token_ms:6.0f} / {exchange.total_ms:6.0f} ms"
                f"   server {server.get('first_token', 0):.0f} / {server.get('total', 0):.0f} ms"
            )
        line_h = self.small.get_linesize()
        width = max(self.small.size(r)[0] for r in rows) + 16
        back = pygame.Surface((width, line_h * len(rows) + 12), pygame.SRCALPHA)
        back.fill((0, 0, 0, 180))
        surface.blit(back, (8, 8))
        for index, row in enumerate(rows):
            surface.blit(self.small.render(row, True, (200, 255, 200)), (16, 14 + index * line_h))

