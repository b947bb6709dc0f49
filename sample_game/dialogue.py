"""The conversation record: one :class:`Exchange` per player line, updated from the network worker's events,
kept in a scrollable :class:`DialogueLog`."""

from __future__ import annotations

from dataclasses import dataclass, field

from npc_runtime.emotion import NEUTRAL
from sample_game.net import Chunk, Failed, NetEvent, Replied

__all__ = ["Exchange", "DialogueLog", "PENDING", "STREAMING", "DONE", "FAILED"]

PENDING, STREAMING, DONE, FAILED = "pending", "streaming", "done", "failed"


@dataclass
class Exchange:
    """A player line and the NPC's answer as it streams in; latencies in milliseconds once done."""

    line_id: int
    persona: str
    npc_name: str
    player_text: str
    reply_text: str = ""
    state: str = PENDING
    emotion: str | None = None
    intensity: float = 0.0
    first_token_ms: float | None = None
    total_ms: float | None = None
    server_timing_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)

    def transcript(self) -> str:
        """The exchange as one line of text (the headless transcript)."""
        head = f"[{self.npc_name}] player: {self.player_text!r} -> "
        if self.state == FAILED:
            return head + f"(no reply: {self.error})"
        if not self.finished:
            return head + f"{self.reply_text!r} (still {self.state})"
        timing = ""
        if self.first_token_ms is not None and self.total_ms is not None:
            timing = f" first_token {self.first_token_ms:.0f} ms, total {self.total_ms:.0f} ms"
        return head + f"{self.reply_text!r} ({self.emotion} {self.intensity:.2f}){timing}"


class DialogueLog:
    """Every exchange of the session in order, with a scroll position for the history panel."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._by_id: dict[int, Exchange] = {}
        self._emotions: dict[str, str] = {}
        self.scroll = 0  # exchanges hidden below the bottom of the history panel

    def add(self, exchange: Exchange) -> None:
        if exchange.line_id in self._by_id:
            raise ValueError(f"line id {exchange.line_id} already used")
        self.exchanges.append(exchange)
        self._by_id[exchange.line_id] = exchange
        self.scroll = 0

    def get(self, line_id: int) -> Exchange | None:
        return self._by_id.get(line_id)

    def apply(self, event: NetEvent) -> Exchange | None:
        """Folds a worker event into its exchange; returns the exchange it changed (None for status events)."""
        if not isinstance(event, (Chunk, Replied, Failed)):
            return None
        exchange = self._by_id.get(event.line_id)
        if exchange is None:
            return None
        if isinstance(event, Chunk):
            if exchange.state in (PENDING, STREAMING):
                exchange.reply_text += event.text
                exchange.state = STREAMING
        elif isinstance(event, Replied):
            exchange.reply_text = event.text
            exchange.emotion = event.emotion
            exchange.intensity = event.intensity
            exchange.first_token_ms = event.first_token_ms
            exchange.total_ms = event.total_ms
            exchange.server_timing_ms = dict(event.server_timing_ms)
            exchange.state = DONE
            self._emotions[exchange.persona] = event.emotion
        else:
            exchange.error = event.reason
            exchange.state = FAILED
        return exchange

    def last_emotion(self, persona: str) -> str:
        """The emotion of ``persona``'s latest finished reply (neutral before any)."""
        return self._emotions.get(persona, NEUTRAL)

    def latest_for(self, persona: str) -> Exchange | None:
        for exchange in reversed(self.exchanges):
            if exchange.persona == persona:
                return exchange
        return None

    def scroll_by(self, steps: int) -> None:
        self.scroll = max(0, min(len(self.exchanges) - 1, self.scroll + steps)) if self.exchanges else 0
