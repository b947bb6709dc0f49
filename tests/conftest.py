"""Shared fixtures: a tiny model bundle built with ``export/``, and the real server on a random loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import zmq

from npc_runtime.bundle import load_bundle
from npc_runtime.engine import RoleModelEngine
from npc_runtime.ort_backend import RuntimeOptions
from npc_runtime.personas import PersonaPack, default_pack_dir
from npc_runtime.server import NpcServer, ServerConfig
from npc_runtime.sessions import SessionStore


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny role model exported as a real bundle (its replies are noise)."""
    from export.tiny import build_tiny_bundle

    return Path(build_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"), seed=0))


@pytest.fixture(scope="session")
def tiny_engine(tiny_bundle: Path) -> RoleModelEngine:
    return RoleModelEngine(load_bundle(tiny_bundle), RuntimeOptions(device="cpu", intra_op_threads=1))


@dataclass
class RunningServer:
    server: NpcServer
    store: SessionStore
    thread: threading.Thread
    endpoint: str
    data_dir: Path

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)
        if self.thread.is_alive():
            raise RuntimeError("server thread did not stop")
        self.server.close()
        self.store.close()


def start_server(engine: RoleModelEngine, data_dir: Path, config: ServerConfig | None = None) -> RunningServer:
    store = SessionStore(data_dir / "sessions.sqlite3")
    server = NpcServer(engine, PersonaPack.load(default_pack_dir()), store, config or ServerConfig(poll_timeout_ms=50))
    endpoint = server.bind("tcp://127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    return RunningServer(server, store, thread, endpoint, data_dir)


@pytest.fixture
def server(tiny_engine: RoleModelEngine, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tiny_engine, tmp_path)
    yield running
    running.stop()


class RawDealer:
    """A bare DEALER for sending arbitrary bytes; every receive has a deadline so tests fail, never hang."""

    def __init__(self, endpoint: str, req: bool = False) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.REQ if req else zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send_raw(self, payload: bytes) -> None:
        self.sock.send(payload)

    def send(self, message: dict) -> None:
        self.sock.send(msgpack.packb(message, use_bin_type=True))

    def recv(self, timeout_ms: int = 10_000) -> dict:
        if not self.sock.poll(timeout_ms):
            raise TimeoutError(f"no message within {timeout_ms} ms")
        return msgpack.unpackb(self.sock.recv(), raw=False)

    def recv_until(self, request_id: object, final_types: tuple[str, ...] = ("reply", "error")) -> list[dict]:
        """Messages for ``request_id`` up to and including the first of ``final_types`` or an error."""
        out: list[dict] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = self.recv()
            if message.get("id") == request_id:
                out.append(message)
                if message["type"] in final_types or message["type"] == "error":
                    return out
        raise TimeoutError(f"no final message for {request_id!r}")

    def close(self) -> None:
        self.sock.close(0)


@pytest.fixture
def dealer(server: RunningServer) -> Iterator[RawDealer]:
    d = RawDealer(server.endpoint)
    yield d
    d.close()


@pytest.fixture
def server_factory(tiny_engine: RoleModelEngine) -> Iterator:
    """Start more servers (e.g. to restart on the same data folder); all are stopped at the end."""
    started: list[RunningServer] = []

    def make(data_dir: Path, config: ServerConfig | None = None) -> RunningServer:
        running = start_server(tiny_engine, data_dir, config)
        started.append(running)
        return running

    yield make
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def dealer_factory() -> Iterator:
    made: list[RawDealer] = []

    def make(endpoint: str, req: bool = False) -> RawDealer:
        d = RawDealer(endpoint, req)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
