"""The game's network worker: a thread that owns the ZeroMQ clients, so the frame loop never waits on the server.

The game puts :class:`SayJob` objects in with :meth:`NetWorker.submit` and takes events out with
:meth:`NetWorker.poll`, both without blocking. While idle the worker pings the server with ``hello``; it reports
``online``/``offline`` changes as :class:`Status` events, and reconnects by itself when the server comes back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from npc_runtime.errors import NpcRuntimeError, RequestFailed, ServerOffline, TransportError

__all__ = [
    "NetConfig",
    "SayJob",
    "Status",
    "Chunk",
    "Replied",
    "Failed",
    "NetEvent",
    "NetWorker",
    "ClientFactory",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetConfig:
    """Where the server is and how patient to be with it."""

    endpoint: str = "tcp://127.0.0.1:5555"
    ping_timeout_ms: int = 700
    say_timeout_ms: int = 20_000
    ping_every_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.endpoint:
            raise ValueError("endpoint must not be empty")
        if self.ping_timeout_ms <= 0 or self.say_timeout_ms <= 0:
            raise ValueError("timeouts must be positive")
        if self.ping_every_s <= 0:
            raise ValueError("ping_every_s must be positive")


@dataclass(frozen=True)
class SayJob:
    """One player line for one NPC, with the NPC's view (protocol ``image`` map) and scene facts."""

    line_id: int
    persona: str
    session: str
    text: str
    image: dict[str, Any] | None = None
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    online: bool
    detail: str = ""


@dataclass(frozen=True)
class Chunk:
    line_id: int
    text: str


@dataclass(frozen=True)
class Replied:
    """The whole reply. ``first_token_ms`` and ``total_ms`` are measured here, from sending to receiving;
    ``server_timing_ms`` is the server's own ``timing_ms`` map."""

    line_id: int
    text: str
    emotion: str
    intensity: float
    first_token_ms: float
    total_ms: float
    server_timing_ms: dict[str, float]


@dataclass(frozen=True)
class Failed:
    line_id: int
    reason: str
    offline: bool


NetEvent = Status | Chunk | Replied | Failed


class _Client(Protocol):
    def hello(self) -> dict[str, Any]: ...

    def stream(self, persona: str, session: str, text: str, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


#: Makes a client: ``factory(endpoint, timeout_ms)``; the default builds :class:`npc_runtime.client.NpcClient`.
ClientFactory = Callable[[str, int], _Client]


def _default_factory(endpoint: str, timeout_ms: int) -> _Client:
    from npc_runtime.client import NpcClient

    return NpcClient(endpoint, timeout_ms=timeout_ms, retries=0)


class NetWorker:
    """Runs the clients in a background thread; every public method returns at once."""

    def __init__(self, config: NetConfig, client_factory: ClientFactory | None = None) -> None:
        self.config = config
        self._factory = client_factory or _default_factory
        self._jobs: queue.Queue[SayJob | None] = queue.Queue()
        self._events: queue.Queue[NetEvent] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the game's side -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the network worker is already started")
        self._thread = threading.Thread(target=self._run, name="npc-net", daemon=True)
        self._thread.start()

    def submit(self, job: SayJob) -> None:
        self._jobs.put(job)

    def poll(self) -> list[NetEvent]:
        """Every event that arrived since the last call, oldest first."""
        events: list[NetEvent] = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def stop(self, timeout_s: float = 5.0) -> None:
        """Asks the thread to finish and waits up to ``timeout_s`` (a say in flight may hold it that long)."""
        self._stop.set()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("network worker still busy after %.1f s; leaving it to exit with the process", timeout_s)
            self._thread = None

    # --- the worker thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        ping = self._factory(self.config.endpoint, self.config.ping_timeout_ms)
        talk = self._factory(self.config.endpoint, self.config.say_timeout_ms)
        online: bool | None = None
        try:
            online = self._ping(ping, online)
            while not self._stop.is_set():
                try:
                    job = self._jobs.get(timeout=self.config.ping_every_s)
                except queue.Empty:
                    online = self._ping(ping, online)
                    continue
                if job is None:
                    break
                if not online:
                    online = self._ping(ping, online)
                if not online:
                    self._events.put(Failed(job.line_id, "server offline", offline=True))
                    continue
                online = self._say(talk, job, online)
        finally:
            ping.close()
            talk.close()

    def _set_status(self, previous: bool | None, online: bool, detail: str) -> bool:
        if previous != online:
            log.info("NPC server %s %s", "online" if online else "offline", detail)
            self._events.put(Status(online, detail))
        return online

    def _ping(self, client: _Client, online: bool | None) -> bool:
        try:
            welcome = client.hello()
        except (ServerOffline, TransportError) as exc:
            client.close()  # a fresh socket next time: that is the reconnect
            return self._set_status(online, False, str(exc))
        except NpcRuntimeError as exc:
            return self._set_status(online, False, str(exc))
        server = welcome.get("server")
        if isinstance(server, dict):
            server = f"{server.get('name', 'server')} {server.get('version', '')}".strip()
        detail = f"{server or 'server'} via {welcome.get('provider', '?')}"
        return self._set_status(online, True, detail)

    def _say(self, client: _Client, job: SayJob, online: bool | None) -> bool:
        start = time.perf_counter()
        first: float | None = None
        try:
            for message in client.stream(job.persona, job.session, job.text, image=job.image, context=job.context):
                now = time.perf_counter()
                if first is None:
                    first = now
                if message.get("type") == "chunk":
                    self._events.put(Chunk(job.line_id, str(message.get("text", ""))))
                elif message.get("type") == "reply":
                    emotion = message.get("emotion") or {}
                    timing = message.get("timing_ms") or {}
                    self._events.put(
                        Replied(
                            line_id=job.line_id,
                            text=str(message.get("text", "")),
                            emotion=str(emotion.get("label", "neutral")),
                            intensity=float(emotion.get("intensity", 0.0)),
                            first_token_ms=(first - start) * 1000.0,
                            total_ms=(now - start) * 1000.0,
                            server_timing_ms={str(k): float(v) for k, v in timing.items()},
                        )
                    )
                    return self._set_status(online, True, "")
            self._events.put(Failed(job.line_id, "the server ended the stream without a reply", offline=False))
            return online is True
        except RequestFailed as exc:
            self._events.put(Failed(job.line_id, f"{exc.code}: {exc.message}", offline=False))
            return self._set_status(online, True, "")
        except (ServerOffline, TransportError) as exc:
            client.close()
            self._events.put(Failed(job.line_id, "server offline", offline=True))
            return self._set_status(online, False, str(exc))
