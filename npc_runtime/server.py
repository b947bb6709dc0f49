"""The ZeroMQ server: one ROUTER socket, one poll loop, a dispatch table; generation runs on the scheduler.

The loop validates each request, answers the cheap ones at once, hands ``say`` to the scheduler and sends
whatever the scheduler produced. It never waits on inference: the scheduler wakes it through a pipe.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import zmq

from . import __version__
from .engine import RoleModelEngine
from .errors import TransportError
from .personas import PersonaPack
from .prompt import history_pairs
from .protocol import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Cancel,
    Hello,
    Limits,
    PersonasRequest,
    ProtocolError,
    Reset,
    Say,
    StateGet,
    StateSet,
    decode,
    encode,
    error_message,
    parse_request,
    request_id_of,
)
from .scheduler import GenOptions, GenRequest, Overloaded, Scheduler, SchedulerConfig
from .sessions import SessionStore

__all__ = ["ServerConfig", "NpcServer", "DEFAULT_BIND"]

log = logging.getLogger(__name__)

DEFAULT_BIND = "tcp://127.0.0.1:5555"
SERVER_NAME = "npc-runtime"


@dataclass(frozen=True)
class ServerConfig:
    limits: Limits = Limits()
    defaults: GenOptions = GenOptions()
    scheduler: SchedulerConfig = SchedulerConfig()
    poll_timeout_ms: int = 200
    history_turns: int = 8  # exchanges of history given to the model

    def __post_init__(self) -> None:
        if self.poll_timeout_ms <= 0:
            raise ValueError("poll_timeout_ms must be positive")
        if self.history_turns < 0:
            raise ValueError("history_turns must be >= 0")


@dataclass
class _Pending:
    """Where a running say's replies go, and what its reply appends to the session."""

    identity: bytes
    req_envelope: bool
    request_id: Any
    persona: str
    session: str
    text: str


class NpcServer:
    """Serves protocol v1 over a ROUTER socket. ``bind()`` then ``serve_forever()``; ``stop()`` from anywhere."""

    def __init__(
        self,
        engine: RoleModelEngine,
        personas: PersonaPack,
        store: SessionStore,
        config: ServerConfig | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.engine = engine
        self.personas = personas
        self.store = store
        self.config = config or ServerConfig()
        self._ctx = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._outbox: queue.SimpleQueue[tuple[GenRequest, str, dict]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pending: dict[Hashable, _Pending] = {}
        # What the model sees of each card, computed once: cards are immutable and the pack is fixed while serving.
        self._card_inputs = {c.id: (c.fingerprint(), c.card_text(), engine.knowledge_of(c)) for c in personas}
        warm = getattr(engine, "warm_personas", None)  # role models embed every card now, not on first use
        if warm is not None:
            start = time.perf_counter()
            count = warm([(fp, text) for fp, text, _ in self._card_inputs.values()])
            log.info("persona cards embedded at start: %d in %.0f ms", count, (time.perf_counter() - start) * 1000)
        self._running = False
        self.endpoint: str | None = None
        self.scheduler = Scheduler(engine, self._sink, self.config.scheduler, notify=self._wake)
        self._handlers: dict[type, Callable[[bytes, bool, Any], None]] = {
            Hello: self._on_hello,
            Say: self._on_say,
            Cancel: self._on_cancel,
            Reset: self._on_reset,
            PersonasRequest: self._on_personas,
            StateGet: self._on_state_get,
            StateSet: self._on_state_set,
        }

    # ------------------------------------------------------------------------------------------ lifecycle

    def bind(self, endpoint: str = DEFAULT_BIND) -> str:
        """Bind the ROUTER socket; returns the endpoint actually bound (useful with port 0 or ``*``)."""
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # Frames far over the limit are dropped by libzmq itself (the peer is disconnected); anything up to
        # twice the limit reaches us and gets a proper `too_large` reply.
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * self.config.limits.max_message_bytes)
        sock.setsockopt(zmq.SNDHWM, 10_000)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise TransportError(f"cannot bind {endpoint}: {exc}") from exc
        self._socket = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("listening on %s", self.endpoint)
        return self.endpoint

    def stop(self) -> None:
        """Ask the loop to finish; safe from signal handlers and other threads."""
        self._running = False
        self._wake()

    def close(self) -> None:
        self.scheduler.stop()
        self._flush_outbox()
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def serve_forever(self) -> None:
        if self._socket is None:
            raise TransportError("serve_forever() before bind()")
        self.scheduler.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        self._running = True
        try:
            while self._running:
                try:
                    events = dict(poller.poll(self.config.poll_timeout_ms))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        break
                    raise TransportError(f"poll failed: {exc}") from exc
                if self._wake_r in events:
                    self._drain_wake()
                if self._socket in events:
                    self._read_requests()
                self._flush_outbox()  # housekeeping on every wake-up
        finally:
            self._running = False

    # ------------------------------------------------------------------------------------------ socket side

    def _read_requests(self, budget: int = 256) -> None:
        assert self._socket is not None
        for _ in range(budget):
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                log.warning("receive failed: %s", exc)
                return
            self._handle_frames(frames)

    def _handle_frames(self, frames: list[bytes]) -> None:
        identity, rest = frames[0], frames[1:]
        if len(rest) == 1:
            req_envelope, payload = False, rest[0]
        elif len(rest) == 2 and rest[0] == b"":
            req_envelope, payload = True, rest[1]
        else:
            # Unknown envelope: answer in DEALER shape so the peer learns why.
            self._send(identity, False, error_message("bad_message", f"expected 1 payload frame, got {len(rest)}"))
            return
        message: Any = None
        try:
            message = decode(payload, self.config.limits)
            request = parse_request(message, self.config.limits)
            self._handlers[type(request)](identity, req_envelope, request)
        except ProtocolError as exc:
            rid = exc.request_id if exc.request_id is not None else request_id_of(message, self.config.limits)
            self._send(identity, req_envelope, error_message(exc.code, exc.message, rid, exc.field))
        except Exception as exc:  # a bug must not take the server down
            log.exception("request failed")
            rid = request_id_of(message, self.config.limits)
            self._send(identity, req_envelope, error_message("internal", f"{type(exc).__name__}: {exc}", rid))

    def _send(self, identity: bytes, req_envelope: bool, message: dict) -> None:
        assert self._socket is not None
        frames = [identity, b"", encode(message)] if req_envelope else [identity, encode(message)]
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("client %r is not reading; dropped a %s", identity, message.get("type"))
        except zmq.ZMQError as exc:
            log.warning("send failed: %s", exc)

    @staticmethod
    def _reply(request_id: Any, mtype: str, **fields: Any) -> dict:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "type": mtype}
        out.update(fields)
        return out

    # ------------------------------------------------------------------------------------------ handlers

    def welcome_fields(self) -> dict[str, Any]:
        return {
            "server": {"name": SERVER_NAME, "version": __version__},
            "protocol": list(SUPPORTED_VERSIONS),
            "model": self.engine.describe(),
            "provider": self.engine.provider,
            "personas": list(self.personas.ids),
            "emotions": list(self.engine.bundle.emotions),
            "limits": self.config.limits.as_dict(),
        }

    def _on_hello(self, identity: bytes, req_env: bool, req: Hello) -> None:
        self._send(identity, req_env, self._reply(req.id, "welcome", **self.welcome_fields()))

    def _on_personas(self, identity: bytes, req_env: bool, req: PersonasRequest) -> None:
        cards = [card.public_fields() for card in self.personas]
        self._send(identity, req_env, self._reply(req.id, "personas.ok", personas=cards))

    def _on_say(self, identity: bytes, req_env: bool, req: Say) -> None:
        if req.persona not in self.personas:
            known = ", ".join(self.personas.ids)
            raise ProtocolError("unknown_persona", f"no persona '{req.persona}'; known: {known}", req.id, "persona")
        key = (identity, req.id)
        if key in self._pending:
            raise ProtocolError("invalid_field", "field 'id' is already used by a running say", req.id, "id")
        fingerprint, card_text, knowledge = self._card_inputs[req.persona]
        turns = self.store.history(req.session)
        if self.config.history_turns:
            turns = turns[-self.config.history_turns :]
        else:
            turns = []
        history = history_pairs(turns)
        options = GenOptions.from_protocol(req.options, self.config.defaults)
        if req_env and options.stream:
            options = GenOptions(**{**options.__dict__, "stream": False})  # REQ takes one reply only
        gen = GenRequest(
            key=key,
            fingerprint=fingerprint,
            card_text=card_text,
            knowledge=knowledge,
            text=req.text,
            context=dict(req.context),
            history=history,
            image=req.image,
            options=options,
        )
        self._pending[key] = _Pending(identity, req_env, req.id, req.persona, req.session, req.text)
        try:
            self.scheduler.submit(gen)
        except Overloaded as exc:
            del self._pending[key]
            raise ProtocolError("overloaded", str(exc), req.id) from exc

    def _on_cancel(self, identity: bytes, req_env: bool, req: Cancel) -> None:
        found = self.scheduler.cancel((identity, req.target))
        self._send(identity, req_env, self._reply(req.id, "cancel.ok", target=req.target, found=found))

    def _on_reset(self, identity: bytes, req_env: bool, req: Reset) -> None:
        existed = self.store.reset(req.session)
        self._send(identity, req_env, self._reply(req.id, "reset.ok", session=req.session, existed=existed))

    def _on_state_get(self, identity: bytes, req_env: bool, req: StateGet) -> None:
        state = self.store.get_state(req.session)
        self._send(identity, req_env, self._reply(req.id, "state.get.ok", session=req.session, state=state))

    def _on_state_set(self, identity: bytes, req_env: bool, req: StateSet) -> None:
        try:
            self.store.set_state(req.session, dict(req.state))
        except ValueError as exc:
            text = str(exc)
            field = text.split(" ", 1)[0] if text.startswith("state") else "state"
            raise ProtocolError("invalid_field", text, req.id, field) from exc
        self._send(identity, req_env, self._reply(req.id, "state.set.ok", session=req.session))

    # ------------------------------------------------------------------------------------------ scheduler side

    def _sink(self, req: GenRequest, kind: str, payload: dict) -> None:
        """Called on the scheduler thread: queue the event; the scheduler wakes the loop once per batch of events
        (``notify``), so 64 NPCs' tokens of one step cost one wake-up, not 64 GIL hand-overs."""
        self._outbox.put((req, kind, payload))

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full (the loop is already due to wake) or closed (shutting down)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _flush_outbox(self) -> None:
        while True:
            try:
                req, kind, payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            pending = self._pending.get(req.key)
            if pending is None or self._socket is None:
                continue
            if kind == "chunk":
                if not pending.req_envelope:
                    self._send(pending.identity, False, self._reply(pending.request_id, "chunk", **payload))
                continue
            del self._pending[req.key]
            if kind == "error":
                message = error_message(payload["code"], payload["message"], pending.request_id, payload.get("field"))
                self._send(pending.identity, pending.req_envelope, message)
                continue
            try:
                self.store.append(
                    pending.session, pending.persona, pending.text, payload["text"], payload["emotion"]["label"]
                )
            except Exception:  # the reply still goes out; the turn is just not remembered
                log.exception("could not store the exchange of session %s", pending.session)
            message = self._reply(
                pending.request_id,
                "reply",
                text=payload["text"],
                emotion=payload["emotion"],
                persona=pending.persona,
                session=pending.session,
                usage=payload["usage"],
                timing_ms=payload["timing_ms"],
            )
            self._send(pending.identity, pending.req_envelope, message)
