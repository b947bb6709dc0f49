"""Shared fixtures: a tiny model bundle built with ``export/``, and the real server on a random loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
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


def _ragged_greedy(engine: RoleModelEngine, steps: int = 12) -> tuple[list[list[int]], list[np.ndarray]]:
    """Greedy decoding of five prompts: three start, two join at step 4, rows 0 and 2 leave at step 8."""
    cards = list(PersonaPack.load(default_pack_dir()))[:5]
    lines = ["Hello.", "What do you sell?", "Any rumours?", "Where is the well?", "Nice weather."]
    preps = [engine.prepare(c.fingerprint(), c.card_text(), c.knowledge_text(), {"weather": "rain"}, [], line, None)
             for c, line in zip(cards, lines)]
    cache = engine.new_cache()
    first = engine.prefill(preps[:3])
    cache.append(first.kv, first.mask)
    last = np.argmax(first.logits, axis=1)
    positions = np.array([len(p.ids) for p in preps[:3]])
    tokens = [[int(t)] for t in last]
    logits_seen = []
    for step in range(steps):
        if step == 4:
            more = engine.prefill(preps[3:])
            cache.append(more.kv, more.mask)
            last = np.concatenate([last, np.argmax(more.logits, axis=1)])
            positions = np.concatenate([positions, [len(p.ids) for p in preps[3:]]])
            tokens += [[int(t)] for t in np.argmax(more.logits, axis=1)]
        if step == 8:
            order = cache.remove([0, 2])
            last, positions, tokens = last[order], positions[order], [tokens[i] for i in order]
        logits = engine.decode_step(last.astype(np.int64), positions.astype(np.int64), cache)
        logits_seen.append(logits.copy())
        last, positions = np.argmax(logits, axis=1), positions + 1
        for row, token in enumerate(last):
            tokens[row].append(int(token))
    return tokens, logits_seen


@pytest.fixture(scope="session")
def ragged_greedy():
    """Greedy decoding through an engine's running-batch cache while rows join and leave: (tokens, logits)."""
    return _ragged_greedy


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
