"""Python clients of protocol v1: blocking :class:`NpcClient` and asyncio :class:`AsyncNpcClient`.

Both use a DEALER socket, match replies to requests by ``id`` (so requests can be pipelined and a stream can be
cancelled mid-way), time out, close with linger 0, reconnect, retry, and then raise
:class:`~npc_runtime.errors.ServerOffline`. An ``error`` reply raises :class:`~npc_runtime.errors.RequestFailed`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import zmq
import zmq.asyncio

from .errors import RequestFailed, ServerOffline, TransportError
from .protocol import PROTOCOL_VERSION, ProtocolError, decode, encode

__all__ = ["NpcClient", "AsyncNpcClient", "DEFAULT_ENDPOINT", "build_say"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
_ids = itertools.count(1)


def _next_id() -> str:
    return f"py-{next(_ids)}"


def build_say(
    request_id: Any,
    persona: str,
    session: str,
    text: str,
    image: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A ``say`` message; ``options`` are the protocol's (``stream``, ``max_tokens``, ``temperature``, ...)."""
    message: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "id": request_id,
        "type": "say",
        "persona": persona,
        "session": session,
        "text": text,
    }
    if image is not None:
        message["image"] = dict(image)
    if context:
        message["context"] = dict(context)
    opts = {k: v for k, v in options.items() if v is not None}
    if opts:
        message["options"] = opts
    return message


def _check(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("type") == "error":
        raise RequestFailed(str(message.get("code")), str(message.get("message")), message.get("id"))
    return message


class _Base:
    def __init__(self, endpoint: str, timeout_ms: int, retries: int, identity: bytes | None) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.identity = identity
        self._inbox: defaultdict[Any, deque[dict]] = defaultdict(deque)

    def _open(self, ctx: zmq.Context) -> Any:
        """A connected DEALER from ``ctx`` (a plain or an asyncio context)."""
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.identity:
            sock.setsockopt(zmq.IDENTITY, self.identity)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise TransportError(f"cannot connect to {self.endpoint}: {exc}") from exc
        return sock

    def _offline(self, attempts: int) -> ServerOffline:
        return ServerOffline(
            f"NPC server at {self.endpoint} did not answer within {self.timeout_ms} ms "
            f"({attempts} attempt{'s' if attempts != 1 else ''}); is `npc-runtime serve` running?"
        )

    def _pop(self, request_id: Any) -> dict[str, Any]:
        """The oldest filed message for ``request_id`` (there is one)."""
        queue = self._inbox[request_id]
        message = queue.popleft()
        if not queue:
            del self._inbox[request_id]
        return message

    def _file(self, raw: bytes) -> None:
        try:
            message = decode(raw)
        except ProtocolError as exc:
            log.warning("ignored an undecodable reply: %s", exc)
            return
        self._inbox[message.get("id")].append(message)


class NpcClient(_Base):
    """Blocking client; use one per thread."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout_ms: int = 10_000,
        retries: int = 1,
        identity: bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        super().__init__(endpoint, timeout_ms, retries, identity)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def __enter__(self) -> NpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        self._inbox.clear()

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = self._open(self._ctx)
        return self._sock

    def send(self, message: Mapping[str, Any]) -> None:
        """Send one message as it is (for pipelining; read its replies with :meth:`receive`)."""
        try:
            self._socket().send(encode(message), zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send to {self.endpoint}: {exc}") from exc

    def receive(self, request_id: Any, timeout_ms: int | None = None) -> dict[str, Any] | None:
        """The next message for ``request_id``, or None after ``timeout_ms`` of silence."""
        deadline = time.monotonic() + (timeout_ms or self.timeout_ms) / 1000.0
        while not self._inbox[request_id]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock = self._socket()
            if not sock.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
                return None
            self._file(sock.recv())
        return self._pop(request_id)

    def _reconnect(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def request(self, mtype: str, **fields: Any) -> dict[str, Any]:
        """Send a one-reply request, retrying on silence; returns the reply or raises."""
        attempts = 0
        while True:
            attempts += 1
            rid = _next_id()
            self.send({"v": PROTOCOL_VERSION, "id": rid, "type": mtype, **fields})
            reply = self.receive(rid)
            if reply is not None:
                return _check(reply)
            if attempts > self.retries:
                raise self._offline(attempts)
            log.info("no answer from %s; reconnecting (attempt %d)", self.endpoint, attempts + 1)
            self._reconnect()

    def hello(self) -> dict[str, Any]:
        return self.request("hello")

    def personas(self) -> list[dict[str, Any]]:
        return list(self.request("personas")["personas"])

    def reset(self, session: str) -> bool:
        return bool(self.request("reset", session=session)["existed"])

    def get_state(self, session: str) -> dict[str, Any]:
        return dict(self.request("state.get", session=session)["state"])

    def set_state(self, session: str, state: Mapping[str, Any]) -> None:
        self.request("state.set", session=session, state=dict(state))

    def cancel(self, target: Any) -> bool:
        return bool(self.request("cancel", target=target)["found"])

    def stream(
        self,
        persona: str,
        session: str,
        text: str,
        *,
        image: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: Any = None,
        **options: Any,
    ) -> Iterator[dict[str, Any]]:
        """Yield ``chunk`` messages as they arrive, then the final ``reply`` message."""
        options.setdefault("stream", True)
        attempts = 0
        while True:
            attempts += 1
            rid = request_id if request_id is not None else _next_id()
            self.send(build_say(rid, persona, session, text, image, context, **options))
            got_any = False
            while True:
                message = self.receive(rid)
                if message is None:
                    break
                got_any = True
                _check(message)
                yield message
                if message.get("type") == "reply":
                    return
            if got_any or attempts > self.retries:
                raise self._offline(attempts)
            self._reconnect()

    def say(
        self,
        persona: str,
        session: str,
        text: str,
        *,
        image: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: Any = None,
        **options: Any,
    ) -> dict[str, Any]:
        """The final ``reply`` message of a say (streamed or not, the chunks are consumed)."""
        options.setdefault("stream", False)
        reply: dict[str, Any] = {}
        for message in self.stream(
            persona, session, text, image=image, context=context, request_id=request_id, **options
        ):
            reply = message
        return reply


class AsyncNpcClient(_Base):
    """asyncio client over ``zmq.asyncio``; one instance per event loop."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout_ms: int = 10_000,
        retries: int = 1,
        identity: bytes | None = None,
    ) -> None:
        super().__init__(endpoint, timeout_ms, retries, identity)
        self._ctx = zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None

    async def __aenter__(self) -> AsyncNpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        self._inbox.clear()

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            self._sock = self._open(self._ctx)
        return self._sock

    async def send(self, message: Mapping[str, Any]) -> None:
        try:
            await self._socket().send(encode(message))
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send to {self.endpoint}: {exc}") from exc

    async def receive(self, request_id: Any, timeout_ms: int | None = None) -> dict[str, Any] | None:
        deadline = time.monotonic() + (timeout_ms or self.timeout_ms) / 1000.0
        while not self._inbox[request_id]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock = self._socket()
            if not await sock.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
                return None
            self._file(await sock.recv())
        return self._pop(request_id)

    async def request(self, mtype: str, **fields: Any) -> dict[str, Any]:
        attempts = 0
        while True:
            attempts += 1
            rid = _next_id()
            await self.send({"v": PROTOCOL_VERSION, "id": rid, "type": mtype, **fields})
            reply = await self.receive(rid)
            if reply is not None:
                return _check(reply)
            if attempts > self.retries:
                raise self._offline(attempts)
            self.close()

    async def hello(self) -> dict[str, Any]:
        return await self.request("hello")

    async def cancel(self, target: Any) -> bool:
        return bool((await self.request("cancel", target=target))["found"])

    async def reset(self, session: str) -> bool:
        return bool((await self.request("reset", session=session))["existed"])

    async def personas(self) -> list[dict[str, Any]]:
        return list((await self.request("personas"))["personas"])

    async def get_state(self, session: str) -> dict[str, Any]:
        return dict((await self.request("state.get", session=session))["state"])

    async def set_state(self, session: str, state: Mapping[str, Any]) -> None:
        await self.request("state.set", session=session, state=dict(state))

    async def stream(
        self,
        persona: str,
        session: str,
        text: str,
        *,
        image: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: Any = None,
        **options: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        options.setdefault("stream", True)
        rid = request_id if request_id is not None else _next_id()
        await self.send(build_say(rid, persona, session, text, image, context, **options))
        while True:
            message = await self.receive(rid)
            if message is None:
                raise self._offline(1)
            _check(message)
            yield message
            if message.get("type") == "reply":
                return

    async def say(self, persona: str, session: str, text: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("stream", False)
        reply: dict[str, Any] = {}
        async for message in self.stream(persona, session, text, **kwargs):
            reply = message
        return reply
