"""A small, readable ZMTP 3.1 DEALER (NULL mechanism) in plain Python: the reference the engine clients follow.

The Godot and Unity clients speak ZeroMQ's wire protocol themselves. This module writes down the exact bytes
they send (greeting, READY, message frames, PING/PONG), is tested against libzmq through pyzmq, and writes
``zmtp_vectors.json``, which the C# and GDScript tests compare their own bytes with. It is a reference and a
test tool, not the project's Python client (that one uses pyzmq).

Regenerate the vectors after a deliberate change: ``python -m engine_bridge.zmtp_reference --write``.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.errors import TransportError

__all__ = [
    "GREETING_BYTES",
    "FLAG_MORE",
    "FLAG_LONG",
    "FLAG_COMMAND",
    "Frame",
    "FrameReader",
    "greeting",
    "parse_greeting",
    "ready_command",
    "parse_ready",
    "message_frame",
    "command_frame",
    "ping_command",
    "pong_command",
    "ReferenceDealer",
    "vectors",
    "VECTORS_PATH",
]

logger = logging.getLogger(__name__)

GREETING_BYTES = 64
FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04
SHORT_FRAME_MAX = 255
VECTORS_PATH = Path(__file__).resolve().parent / "zmtp_vectors.json"


@dataclass(frozen=True)
class Frame:
    """One ZMTP frame after the greeting: a command (``is_command``) or one part of a message."""

    flags: int
    body: bytes

    @property
    def is_command(self) -> bool:
        return bool(self.flags & FLAG_COMMAND)

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_MORE)


def greeting() -> bytes:
    """The 64-byte greeting: signature, version 3.1, mechanism NULL, as-server 0, zero filler.

    libzmq reads the whole greeting before it answers, so a client must write all 64 bytes in one go rather than
    stopping after the 10-byte signature to sniff the peer's version.
    """
    signature = b"\xff" + b"\x00" * 8 + b"\x7f"  # 10 bytes
    version = bytes((3, 1))  # 2 bytes
    mechanism = b"NULL".ljust(20, b"\x00")  # 20 bytes
    as_server = b"\x00"  # 1 byte
    filler = b"\x00" * 31  # 31 bytes
    out = signature + version + mechanism + as_server + filler
    if len(out) != GREETING_BYTES:  # a programming error in this function, not a network condition
        raise RuntimeError("greeting must be 64 bytes")
    return out


def parse_greeting(data: bytes) -> tuple[int, int, str]:
    """Check a peer's 64-byte greeting; returns (major, minor, mechanism) or raises TransportError."""
    if len(data) != GREETING_BYTES:
        raise TransportError(f"greeting must be {GREETING_BYTES} bytes, got {len(data)}")
    if data[0] != 0xFF or data[9] != 0x7F:
        raise TransportError("peer is not a ZeroMQ socket (bad greeting signature)")
    major, minor = data[10], data[11]
    if major < 3:
        raise TransportError(f"peer speaks ZMTP {major}.{minor}; 3.0 or newer is needed")
    mechanism = data[12:32].rstrip(b"\x00").decode("ascii", errors="replace")
    if mechanism != "NULL":
        raise TransportError(f"peer wants security mechanism {mechanism!r}; only NULL is supported")
    return major, minor, mechanism


def _length_prefixed(flags: int, body: bytes) -> bytes:
    if len(body) > SHORT_FRAME_MAX:
        return bytes((flags | FLAG_LONG,)) + struct.pack(">Q", len(body)) + body
    return bytes((flags, len(body))) + body


def command_frame(name: str, data: bytes = b"") -> bytes:
    """A command frame: flags, size, then name-length, name, data."""
    raw_name = name.encode("ascii")
    if not 0 < len(raw_name) < 256:
        raise ValueError("command name must be 1..255 ASCII characters")
    return _length_prefixed(FLAG_COMMAND, bytes((len(raw_name),)) + raw_name + data)


def _property(name: str, value: bytes) -> bytes:
    raw_name = name.encode("ascii")
    return bytes((len(raw_name),)) + raw_name + struct.pack(">I", len(value)) + value


def ready_command(socket_type: str = "DEALER", identity: bytes = b"") -> bytes:
    """READY with Socket-Type and Identity (always sent, empty when the server should pick one)."""
    if identity[:1] == b"\x00":
        raise ValueError("a routing identity must not start with a zero byte (libzmq reserves those)")
    if len(identity) > 255:
        raise ValueError("a routing identity is at most 255 bytes")
    metadata = _property("Socket-Type", socket_type.encode("ascii")) + _property("Identity", identity)
    return command_frame("READY", metadata)


def parse_ready(body: bytes) -> dict[str, bytes]:
    """Properties of a READY command body (name-length, 'READY', then name/value pairs)."""
    if body[:6] != b"\x05READY":
        raise TransportError("expected a READY command")
    props: dict[str, bytes] = {}
    pos = 6
    while pos < len(body):
        name_len = body[pos]
        name = body[pos + 1 : pos + 1 + name_len].decode("ascii", errors="replace")
        pos += 1 + name_len
        if pos + 4 > len(body):
            raise TransportError("READY property is truncated")
        (value_len,) = struct.unpack(">I", body[pos : pos + 4])
        pos += 4
        if pos + value_len > len(body):
            raise TransportError("READY property value is truncated")
        props[name] = body[pos : pos + value_len]
        pos += value_len
    return props


def message_frame(body: bytes, more: bool = False) -> bytes:
    """One message frame; short (1-byte size) up to 255 bytes, long (8-byte big-endian size) above."""
    return _length_prefixed(FLAG_MORE if more else 0, body)


def ping_command(ttl_deciseconds: int = 0, context: bytes = b"") -> bytes:
    """PING (ZMTP 3.1): 2-byte TTL in tenths of a second, then up to 16 bytes of context the peer echoes."""
    if len(context) > 16:
        raise ValueError("ping context is at most 16 bytes")
    return command_frame("PING", struct.pack(">H", ttl_deciseconds) + context)


def pong_command(context: bytes = b"") -> bytes:
    """PONG echoing the context of the PING it answers."""
    return command_frame("PONG", context)


class FrameReader:
    """Incremental frame parser: feed it any slices of the stream, take whole frames out."""

    def __init__(self, max_frame_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> Iterator[Frame]:
        while True:
            frame = self._next()
            if frame is None:
                return
            yield frame

    def _next(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        flags = buf[0]
        if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
            raise TransportError(f"reserved frame flag bits set: 0x{flags:02x}")
        if flags & FLAG_LONG:
            if len(buf) < 9:
                return None
            (size,) = struct.unpack(">Q", bytes(buf[1:9]))
            header = 9
        else:
            size = buf[1]
            header = 2
        if size > self._max_frame_bytes:
            raise TransportError(f"frame of {size} bytes is over the {self._max_frame_bytes}-byte limit")
        if len(buf) < header + size:
            return None
        body = bytes(buf[header : header + size])
        del buf[: header + size]
        return Frame(flags=flags, body=body)


class ReferenceDealer:
    """A blocking DEALER over one TCP socket: handshake, single-frame messages, PING/PONG answered."""

    def __init__(self, host: str, port: int, identity: bytes = b"", timeout_ms: int = 5000) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        self.identity = identity
        self.timeout_ms = timeout_ms
        self.peer_properties: dict[str, bytes] = {}
        self.pongs: list[bytes] = []
        self._reader = FrameReader()
        self._pending: list[Frame] = []
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_ms / 1000)
        except OSError as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ReferenceDealer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handshake(self) -> None:
        """Greeting both ways (ours in one write), then READY both ways."""
        self._sock.sendall(greeting())
        parse_greeting(self._read_exact(GREETING_BYTES))
        self._sock.sendall(ready_command("DEALER", self.identity))
        frame = self._next_frame()
        if not frame.is_command:
            raise TransportError("peer sent a message before READY")
        self.peer_properties = parse_ready(frame.body)

    def send(self, payload: bytes) -> None:
        self._sock.sendall(message_frame(payload))

    def send_raw(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self) -> list[bytes]:
        """The next whole message (its frames); commands in between are handled (PING answered)."""
        parts: list[bytes] = []
        while True:
            frame = self._next_frame()
            if frame.is_command:
                self._on_command(frame.body)
                continue
            parts.append(frame.body)
            if not frame.more:
                return parts

    def _on_command(self, body: bytes) -> None:
        name_len = body[0]
        name = body[1 : 1 + name_len]
        data = body[1 + name_len :]
        if name == b"PING":
            self._sock.sendall(pong_command(data[2:]))
        elif name == b"PONG":
            self.pongs.append(data)
        elif name == b"ERROR":
            raise TransportError(f"peer sent ERROR: {data[1:].decode('utf-8', errors='replace')}")
        else:
            logger.debug("ignoring ZMTP command %r", name)

    def wait_pong(self) -> bytes:
        """Block until a PONG arrives (messages that come first are kept for recv)."""
        while not self.pongs:
            frame = self._next_frame()
            if frame.is_command:
                self._on_command(frame.body)
            else:
                self._pending.append(frame)
        return self.pongs.pop(0)

    def _next_frame(self) -> Frame:
        if self._pending:
            return self._pending.pop(0)
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            for frame in self._reader.frames():
                self._pending.append(frame)
            if self._pending:
                return self._pending.pop(0)
            self._reader.feed(self._recv_some(deadline))

    def _read_exact(self, count: int) -> bytes:
        deadline = time.monotonic() + self.timeout_ms / 1000
        out = b""
        while len(out) < count:
            out += self._recv_some(deadline, count - len(out))
        return out

    def _recv_some(self, deadline: float, max_bytes: int = 65536) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransportError(f"no data from the peer within {self.timeout_ms} ms")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise TransportError(f"no data from the peer within {self.timeout_ms} ms") from exc
        if not data:
            raise TransportError("peer closed the connection")
        return data


def vectors() -> dict[str, object]:
    """The byte sequences every engine client must produce, with the inputs that produce them."""
    hello = bytes.fromhex("83a17601a26964a26831a474797065a568656c6c6f")  # {"v":1,"id":"h1","type":"hello"}
    long_payload = bytes(range(256)) + b"npc"  # 259 bytes: one over the short-frame limit, plus two
    cases: list[dict[str, str]] = [
        {"name": "greeting", "bytes": greeting().hex()},
        {"name": "ready_dealer", "identity": "", "bytes": ready_command("DEALER").hex()},
        {
            "name": "ready_dealer_identity",
            "identity": b"npc-client-1".hex(),
            "bytes": ready_command("DEALER", b"npc-client-1").hex(),
        },
        {"name": "message_short", "payload": hello.hex(), "bytes": message_frame(hello).hex()},
        {"name": "message_empty", "payload": "", "bytes": message_frame(b"").hex()},
        {
            "name": "message_255",
            "payload": (b"x" * 255).hex(),
            "bytes": message_frame(b"x" * 255).hex(),
        },
        {"name": "message_long", "payload": long_payload.hex(), "bytes": message_frame(long_payload).hex()},
        {"name": "ping", "ttl_deciseconds": "0", "context": b"npc1".hex(), "bytes": ping_command(0, b"npc1").hex()},
        {"name": "pong", "context": b"npc1".hex(), "bytes": pong_command(b"npc1").hex()},
    ]
    return {
        "about": "ZMTP 3.1 byte sequences the engine clients send; written by engine_bridge/zmtp_reference.py",
        "encoding": "every byte string is lowercase hex",
        "vectors": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {VECTORS_PATH.name} next to this module")
    args = parser.parse_args(argv)
    text = json.dumps(vectors(), indent=2) + "\n"
    if args.write:
        VECTORS_PATH.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
